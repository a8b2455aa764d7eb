//! The HTTP side of the endpoint, in mini-redis's shape: one accept loop, a task per
//! connection. Everything from outside is bounded: connections (a fixed number at once; the
//! rest are closed at accept), request headers (size and time to arrive), and a connection's
//! life (after which it is closed between requests). Request bodies are never read.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::debug;

use super::auth::{self, PasswordHash};
use super::encode::{Cache, Format, Identity};
use crate::model::Snapshot;

/// Connections served at once; Prometheus keeps one per target.
const MAX_CONNECTIONS: usize = 16;
/// Longest a client may take to send a request's headers (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Request line and headers beyond this are refused (hyper's floor is 8 KiB).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// A kept-alive connection is closed, between two requests, after this long.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// How long a response in flight may still take once the lifetime is up.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// What every request reads: the last snapshot and its encodings.
pub struct Scrape {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub identity: Arc<Identity>,
    pub cache: Cache,
    /// Basic-auth users; empty means no authentication.
    pub users: BTreeMap<String, PasswordHash>,
}

impl Scrape {
    /// Answers one request. Never collects: the body is the last snapshot, encoded once.
    pub fn respond<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.uri().path() != "/metrics" {
            return plain(StatusCode::NOT_FOUND, "hostwarden serves /metrics\n");
        }
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|a| a.as_bytes());
        if !auth::admits(&self.users, authorization) {
            let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"hostwarden\""),
            );
            return r;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok());
        let format = Format::from_accept(accept);
        let snapshot = Arc::clone(&self.snapshots.borrow());
        let body = self.cache.get(snapshot, &self.identity, format);
        let mut r = Response::new(Full::new(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(format.content_type()),
        );
        r
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Accepts connections until the task is aborted.
pub async fn run(listener: TcpListener, scrape: Arc<Scrape>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, mostly: give the connections in flight a moment.
                debug!(error = %e, "Prometheus endpoint: accept failed.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            debug!(%peer, "Prometheus endpoint: too many connections; closing this one.");
            continue;
        };
        let scrape = Arc::clone(&scrape);
        tokio::spawn(async move {
            serve(stream, peer, scrape).await;
            drop(slot);
        });
    }
}

async fn serve(stream: TcpStream, peer: SocketAddr, scrape: Arc<Scrape>) {
    let service = service_fn(move |req: Request<Incoming>| {
        let r = scrape.respond(&req);
        async move { Ok::<_, Infallible>(r) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = tokio::time::sleep(CONNECTION_LIFETIME) => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "Prometheus endpoint: connection ended with an error.");
    }
}
