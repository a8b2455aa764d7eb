//! The HTTP client of the http/protobuf exporters: reqwest over rustls (ring), configured from
//! the signal's TLS files, and wrapped so that the reason of a failed request (the TLS error
//! chain, or the server's refusal page) reaches `Diagnosis` instead of "network error".

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};

use super::diagnosis::{Diagnosis, chain, refusal};
use super::tls::{Loaded, TlsError};

/// A reqwest client with the rustls configuration from `tls` (or, for http:// URLs, one that
/// trusts nothing: it never makes a TLS connection). `timeout` bounds a whole request.
pub fn reqwest_client(
    tls: Option<&Loaded>,
    timeout: Duration,
) -> Result<reqwest::Client, TlsError> {
    let config = match tls {
        Some(loaded) => loaded.rustls_config()?,
        None => super::tls::plaintext_config()?,
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(timeout)
        .build()
        .map_err(|e| TlsError::Config(chain(&e)))
}

#[derive(Debug)]
pub struct DiagnosedClient {
    inner: reqwest::Client,
    diagnosis: Arc<Diagnosis>,
}

impl DiagnosedClient {
    pub fn new(inner: reqwest::Client, diagnosis: Arc<Diagnosis>) -> Self {
        DiagnosedClient { inner, diagnosis }
    }
}

#[async_trait]
impl HttpClient for DiagnosedClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        match self.inner.send_bytes(request).await {
            Ok(response) => {
                let status = response.status();
                if status.is_client_error() || status.is_server_error() {
                    let body = String::from_utf8_lossy(response.body());
                    self.diagnosis.record(refusal(status.as_u16(), &body));
                }
                Ok(response)
            }
            Err(e) => {
                self.diagnosis.record(chain(e.as_ref()));
                Err(e)
            }
        }
    }
}
