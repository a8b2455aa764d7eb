//! The agent's one HTTP client (Ollama's API, Alertmanager, OTLP http/protobuf and the TLS
//! probe): hyper's HTTP/1.1 client with hyper-util's connection pool over our own connector
//! (TCP, and TLS through tokio-rustls with the caller's rustls configuration). Every request
//! is bounded twice: in time, from the first byte sent to the last byte of the body read, and
//! in size, the body read up to the caller's limit (refused from its Content-Length when that
//! is already over). HTTP/1.1 is what Ollama, Alertmanager and OTLP/HTTP receivers are spoken
//! to with; h2 is offered only by the TLS probe of a gRPC endpoint, whose server may refuse a
//! handshake without it (h2 is in the binary anyway, for tonic).

mod connector;
mod error;
pub mod url;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use self::connector::Connector;
pub use self::error::HttpError;

/// How long an idle connection stays in the pool: below nginx's default keep-alive (75 s), so
/// the pool seldom hands out a connection the server is just closing.
const IDLE: Duration = Duration::from_secs(30);

/// Idle connections kept per host: the clients send one request at a time per host (the
/// Ollama collector and the tuner may overlap), so a few are enough.
const MAX_IDLE_PER_HOST: usize = 2;

/// An HTTP/1.1 client. Cloning shares the connection pool.
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
        Client::build(Connector::new(tls, false), timeout, body_limit)
    }

    /// As `new`, but offering h2 before HTTP/1.1 by ALPN and speaking it when the server picks
    /// it: the probe of a gRPC endpoint's TLS (grpc-go refuses a handshake that offers no h2,
    /// which would read as a TLS failure).
    pub fn offering_h2(tls: ClientConfig, timeout: Duration, body_limit: usize) -> Client {
        Client::build(Connector::new(tls, true), timeout, body_limit)
    }

    fn build(connector: Connector, timeout: Duration, body_limit: usize) -> Client {
        let inner = legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(connector);
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
        tokio::time::timeout(timeout, self.exchange(request))
            .await
            .map_err(|_| HttpError::Timeout(timeout))?
    }

    async fn exchange(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
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
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    HttpError::TooLarge { limit }
                } else {
                    HttpError::Body(e)
                }
            })?
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

#[cfg(test)]
mod tests;
