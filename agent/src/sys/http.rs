//! The agent's one HTTP client (Ollama's API, Alertmanager, OTLP over http/protobuf and over
//! gRPC): hyper's client with hyper-util's connection pool over our own connector (TCP, and
//! TLS through tokio-rustls with the caller's rustls configuration). Every request is bounded
//! twice: in time, from the first byte sent to the last byte of the body read, and in size,
//! the body read up to the caller's limit (refused from its Content-Length when that is
//! already over). HTTP/1.1 is what Ollama, Alertmanager and OTLP/HTTP receivers are spoken to
//! with; a gRPC collector gets a client that speaks only h2.

mod connector;
mod error;
pub mod url;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use self::connector::{Connector, Protocol};
pub use self::error::HttpError;

/// How long an idle connection stays in the pool: below nginx's default keep-alive (75 s), so
/// the pool seldom hands out a connection the server is just closing.
const IDLE: Duration = Duration::from_secs(30);

/// Idle connections kept per host: the clients send one request at a time per host (the
/// Ollama collector and the tuner may overlap), so a few are enough.
const MAX_IDLE_PER_HOST: usize = 2;

/// An HTTP/1.1 or an h2 client. Cloning shares the connection pool.
#[derive(Clone)]
pub struct Client {
    /// Boxed in an Arc: hyper-util's client is some 400 bytes of settings, and the exporters
    /// keep ours inside enums.
    inner: Arc<legacy::Client<Connector, Full<Bytes>>>,
    timeout: Duration,
    body_limit: usize,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client whose https:// connections use `tls`; `timeout` bounds each request unless
    /// the caller gives its own, `body_limit` each response body in bytes.
    pub fn new(tls: ClientConfig, timeout: Duration, body_limit: usize) -> Client {
        Client::build(tls, Protocol::Http1, timeout, body_limit)
    }

    /// As `new`, speaking only h2 (a gRPC collector): one connection per host, its requests
    /// multiplexed on it.
    pub fn h2(tls: ClientConfig, timeout: Duration, body_limit: usize) -> Client {
        Client::build(tls, Protocol::H2, timeout, body_limit)
    }

    fn build(
        tls: ClientConfig,
        protocol: Protocol,
        timeout: Duration,
        body_limit: usize,
    ) -> Client {
        let inner = legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .http2_only(protocol == Protocol::H2)
            .build(Connector::new(tls, protocol));
        Client {
            inner: Arc::new(inner),
            timeout,
            body_limit,
        }
    }

    /// Sends `request` under the client's timeout and reads the whole answer.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        self.send_within(request, self.timeout).await
    }

    /// Sends `request` and reads the whole answer, all within `timeout`.
    pub async fn send_within(
        &self,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> Result<Response<Bytes>, HttpError> {
        Ok(self.bounded(request, timeout).await?.0)
    }

    /// As `send`, keeping the trailers that came after the body (gRPC's status).
    pub async fn send_for_trailers(
        &self,
        request: Request<Bytes>,
    ) -> Result<(Response<Bytes>, Option<HeaderMap>), HttpError> {
        self.bounded(request, self.timeout).await
    }

    async fn bounded(
        &self,
        request: Request<Bytes>,
        timeout: Duration,
    ) -> Result<(Response<Bytes>, Option<HeaderMap>), HttpError> {
        tokio::time::timeout(timeout, self.exchange(request))
            .await
            .map_err(|_| HttpError::Timeout(timeout))?
    }

    async fn exchange(
        &self,
        request: Request<Bytes>,
    ) -> Result<(Response<Bytes>, Option<HeaderMap>), HttpError> {
        let response = self
            .inner
            .request(request.map(Full::new))
            .await
            .map_err(HttpError::Send)?;
        let (parts, body) = response.into_parts();
        let limit = self.body_limit;
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(HttpError::TooLarge { limit });
        }
        // A chunked body without end stops at the limit too.
        let collected = Limited::new(body, limit).collect().await.map_err(|e| {
            if e.is::<LengthLimitError>() {
                HttpError::TooLarge { limit }
            } else {
                HttpError::Body(e)
            }
        })?;
        let trailers = collected.trailers().cloned();
        Ok((Response::from_parts(parts, collected.to_bytes()), trailers))
    }
}

#[cfg(test)]
mod tests;
