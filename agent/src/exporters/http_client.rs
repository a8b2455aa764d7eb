//! The HTTP client of the http/protobuf exporters: reqwest over rustls (ring), configured from
//! the signal's TLS files, and wrapped so that the reason of a failed request (the TLS error
//! chain, or the server's refusal page) reaches `Diagnosis` instead of "network error".

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};

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

/// Why a request failed, with its source chain intact (`chain` reads it).
pub type HttpError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A longer response body is refused: an OTLP export response is a few bytes, and a wrong URL
/// may stream anything (the SDK's client had the same limit).
const MAX_RESPONSE_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct DiagnosedClient {
    inner: reqwest::Client,
    diagnosis: Arc<Diagnosis>,
}

impl DiagnosedClient {
    pub fn new(inner: reqwest::Client, diagnosis: Arc<Diagnosis>) -> Self {
        DiagnosedClient { inner, diagnosis }
    }

    /// Sends `request` and reads the whole response. An error status is still a response; it
    /// and a failed request are told to the diagnosis with their reason.
    pub async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        match self.exchange(request).await {
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

    async fn exchange(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let mut response = self
            .inner
            .execute(reqwest::Request::try_from(request)?)
            .await?;
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BODY_BYTES {
                return Err("the response body exceeds 4 MiB".into());
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = Response::new(body.freeze());
        *out.status_mut() = response.status();
        *out.headers_mut() = std::mem::take(response.headers_mut());
        Ok(out)
    }
}
