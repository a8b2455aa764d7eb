//! `[export.otlp]`: where metrics and alert events go. Standard `OTEL_*` variables fill what the
//! file leaves unset; the file wins when both are set.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tls::{self, tls_client_section};
use crate::fields::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// Request body compression (the OTLP specification's `none` and `gzip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
}

tls_client_section! {
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Collector endpoint, e.g. `http://127.0.0.1:4318`; unset (and no OTEL_EXPORTER_OTLP_ENDPOINT)
    /// means no export.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// "http/protobuf" (the OTLP specification's default) or "grpc".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Metric export interval.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Export request timeout.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body compression, "none" or "gzip".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
}
}

impl OtlpConfig {
    /// Checks relative to `[export.otlp]`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            errors.push(FieldError::new(
                "endpoint",
                format!("\"{e}\" is not an http:// or https:// URL"),
            ));
        }
        if self
            .interval
            .is_some_and(|i| i < Duration::from_millis(100))
        {
            errors.push(FieldError::new("interval", "must be at least 100ms"));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            errors.push(FieldError::new("timeout", "must be longer than 0s"));
        }
        // Checked here, not first at export time: a header that cannot be sent (CR/LF would
        // split the request) is a config error.
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(FieldError::new(
                    format!("headers.{name}"),
                    format!("{name:?} is not an HTTP header name"),
                ));
            } else if http::HeaderValue::from_str(value).is_err() {
                errors.push(FieldError::new(
                    format!("headers.{name}"),
                    "is not an HTTP header value (control characters such as CR or LF)",
                ));
            }
        }
        // The TLS files are read and checked here, so `check-config` and a reload refuse what
        // the first handshake would, rather than the exporter failing on every export.
        let plaintext = self
            .endpoint
            .as_deref()
            .filter(|e| e.starts_with("http://"));
        tls::check_files(&mut errors, &self.tls(), plaintext);
        errors
    }
}
