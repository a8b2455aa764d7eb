//! The HTTP client of the exporters (OTLP over http/protobuf and gRPC, Alertmanager): the
//! agent's client (sys/http.rs) over rustls (ring), configured from the signal's TLS files, and
//! wrapped so that the reason of a failed request (the TLS error chain, or the server's refusal
//! page) reaches `Diagnosis` instead of "network error".

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};

use super::diagnosis::{Diagnosis, chain, refusal};
use super::tls::{Loaded, TlsError};
use crate::sys::http::{Client, HttpError};

/// Largest answer body read from a collector or an Alertmanager. What they send is
/// small: OTLP's export response (a partial-success count and message), Alertmanager's empty
/// or one-line answer, a proxy's error page of a few KiB. 1 MiB is far above any of them and
/// still bounds what a wrong or hostile endpoint makes the agent hold.
pub const ANSWER_LIMIT: usize = 1024 * 1024;

/// A client with the rustls configuration from `tls` (or, for http:// URLs, one that trusts
/// nothing: it never makes a TLS connection). `timeout` bounds a whole request.
pub fn client(tls: Option<&Loaded>, timeout: Duration) -> Result<Client, TlsError> {
    Ok(Client::new(rustls_config(tls)?, timeout, ANSWER_LIMIT))
}

/// As `client`, speaking only h2: a gRPC collector's.
pub fn grpc_client(tls: Option<&Loaded>, timeout: Duration) -> Result<Client, TlsError> {
    Ok(Client::h2(rustls_config(tls)?, timeout, ANSWER_LIMIT))
}

fn rustls_config(tls: Option<&Loaded>) -> Result<rustls::ClientConfig, TlsError> {
    match tls {
        Some(loaded) => loaded.rustls_config(),
        None => super::tls::plaintext_config(),
    }
}

#[derive(Debug)]
pub struct DiagnosedClient {
    inner: Client,
    diagnosis: Arc<Diagnosis>,
}

impl DiagnosedClient {
    pub fn new(inner: Client, diagnosis: Arc<Diagnosis>) -> Self {
        DiagnosedClient { inner, diagnosis }
    }

    /// Sends `request` and returns the answer with its trailers (gRPC's status); a failure or
    /// a refusal is recorded for `Diagnosis` on the way.
    pub async fn send_for_trailers(
        &self,
        request: Request<Bytes>,
    ) -> Result<(Response<Bytes>, Option<HeaderMap>), HttpError> {
        match self.inner.send_for_trailers(request).await {
            Ok((response, trailers)) => {
                let status = response.status();
                if status.is_client_error() || status.is_server_error() {
                    let body = String::from_utf8_lossy(response.body());
                    self.diagnosis.record(refusal(status.as_u16(), &body));
                }
                Ok((response, trailers))
            }
            Err(e) => {
                self.diagnosis.record(chain(&e));
                Err(e)
            }
        }
    }
}
