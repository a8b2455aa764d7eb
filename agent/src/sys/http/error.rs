//! What a request can fail with. The texts are the ones `Diagnosis` sorts into causes and the
//! collectors show: the connector's error ("tcp connect error", "tls connect error") carries the
//! io error under it (rustls's reason, or "Connection refused") as its source, so a caller that
//! walks the chain reads the whole reason.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No connection, or the request or the response head broke off (hyper's reason under it).
    #[error("error sending request")]
    Send(#[source] hyper_util::client::legacy::Error),
    #[error("cannot read the response body")]
    Body(#[source] Box<dyn StdError + Send + Sync>),
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("the response body is larger than {} KiB; refused", .limit / 1024)]
    TooLarge { limit: usize },
}

impl HttpError {
    /// Nothing listens on the address: the connect was refused.
    pub fn is_refused(&self) -> bool {
        let mut source = self.source();
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                return io.kind() == io::ErrorKind::ConnectionRefused;
            }
            source = s.source();
        }
        false
    }
}

/// Why the connector made no connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("tcp connect error")]
    Tcp(#[source] io::Error),
    /// The handshake failed; rustls's reason (an invalid peer certificate, an alert the
    /// server sent) is the io error's text.
    #[error("tls connect error")]
    Tls(#[source] io::Error),
    #[error("{0:?} is not a name TLS can verify")]
    ServerName(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("scheme {0:?} is neither http nor https")]
    Scheme(String),
}
