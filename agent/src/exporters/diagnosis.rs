//! Why an export failed, in words an operator can act on. An export error says little ("the
//! HTTP request failed", a gRPC code); the HTTP client under both protocols records the full
//! error chain (rustls's reason for a TLS failure) or the server's refusal page, and this module
//! sorts it into a cause. Each cause is logged once per outage and counted in
//! `hostwarden.export.tls_failures`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::{info, warn};

/// What went wrong, as a bounded set (the self-metric's `error.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// The collector's certificate does not chain to a trusted CA.
    UnknownCa,
    /// The collector's certificate is expired or not yet valid.
    Expired,
    /// The collector's certificate is not valid for the endpoint's host name.
    WrongName,
    /// The collector refused our client certificate (or wanted one and got none).
    ClientCertificateRefused,
    /// Another TLS failure (protocol versions, a bad alert, a certificate rustls rejects).
    Tls,
    /// Anything else (connection refused, timeout, an HTTP error status).
    Other,
}

impl Cause {
    pub const TLS: [Cause; 5] = [
        Cause::UnknownCa,
        Cause::Expired,
        Cause::WrongName,
        Cause::ClientCertificateRefused,
        Cause::Tls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::UnknownCa => "unknown_ca",
            Cause::Expired => "certificate_expired",
            Cause::WrongName => "certificate_name_mismatch",
            Cause::ClientCertificateRefused => "client_certificate_refused",
            Cause::Tls => "tls",
            Cause::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Sorts an error text (rustls's messages, a server's refusal) into a cause.
pub fn classify(text: &str) -> Cause {
    let t = text.to_ascii_lowercase();
    let refused_client = t.contains("no required ssl certificate")
        || t.contains("ssl certificate error")
        || t.contains("alert: certificaterequired")
        || t.contains("alert: badcertificate")
        || t.contains("alert: unknownca")
        || t.contains("alert: certificateexpired")
        || t.contains("alert: certificateunknown");
    if refused_client {
        Cause::ClientCertificateRefused
    } else if t.contains("unknownissuer") || t.contains("unknown issuer") {
        Cause::UnknownCa
    } else if t.contains("certificate expired") || (t.contains("expired") && t.contains("cert")) {
        Cause::Expired
    } else if t.contains("not valid for name") || t.contains("notvalidforname") {
        Cause::WrongName
    } else if t.contains("invalid peer certificate")
        || t.contains("tls handshake")
        || t.contains("received fatal alert")
    {
        Cause::Tls
    } else {
        Cause::Other
    }
}

/// Failures per TLS cause, shared by both signals, read by the self-metrics.
#[derive(Debug, Default)]
pub struct TlsFailureCounts([AtomicU64; 5]);

impl TlsFailureCounts {
    pub fn add(&self, cause: Cause) {
        if let Some(c) = self.0.get(cause.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (cause, count) for every TLS cause.
    pub fn snapshot(&self) -> Vec<(Cause, u64)> {
        Cause::TLS
            .iter()
            .map(|&c| (c, self.0[c.index()].load(Ordering::Relaxed)))
            .collect()
    }
}

/// One signal's failure reasons.
#[derive(Debug)]
pub struct Diagnosis {
    signal: &'static str,
    /// What the HTTP client saw on its last failed request.
    last: Mutex<Option<String>>,
    /// Causes already logged in this outage.
    logged: Mutex<BTreeSet<Cause>>,
    counts: Arc<TlsFailureCounts>,
}

impl Diagnosis {
    pub fn new(signal: &'static str, counts: Arc<TlsFailureCounts>) -> Self {
        Diagnosis {
            signal,
            last: Mutex::new(None),
            logged: Mutex::new(BTreeSet::new()),
            counts,
        }
    }

    /// Called by the HTTP client with the full reason of a failed request.
    pub fn record(&self, detail: String) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(detail);
    }

    /// Called after a failed export with the exporter's own message: finds the reason,
    /// counts it, and logs it when it is new in this outage.
    pub fn failed(&self, error: &str) {
        let detail = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        let cause = match classify(&detail) {
            Cause::Other => classify(error),
            c => c,
        };
        if cause != Cause::Other {
            self.counts.add(cause);
        }
        let new = self
            .logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cause);
        if new {
            let reason = if detail.is_empty() { error } else { &detail };
            warn!(
                signal = self.signal,
                cause = cause.as_str(),
                reason,
                "OTLP export failed; logged once per cause until an export succeeds."
            );
        }
    }

    /// Called after a successful export: the next outage logs its causes again.
    pub fn succeeded(&self) {
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        if !logged.is_empty() {
            info!(signal = self.signal, "OTLP export delivered again.");
            logged.clear();
        }
    }
}

/// An error and all its sources, `: `-separated (a Display stops at the first).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// A refused request in words: the status and the body's text without markup, shortened.
pub fn refusal(status: u16, body: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for ch in body.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut summary = words.join(" ");
    if summary.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|&i| summary.is_char_boundary(i))
            .unwrap_or(0);
        summary.truncate(cut);
    }
    format!("HTTP status {status}: {summary}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_and_nginx_reasons_are_sorted() {
        let cases = [
            (
                "client error (Connect): invalid peer certificate: UnknownIssuer",
                Cause::UnknownCa,
            ),
            (
                "invalid peer certificate: certificate expired: verification time 1 (UNIX), but certificate is not valid after 0 (1 seconds ago)",
                Cause::Expired,
            ),
            (
                "invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate is only valid for wrong.invalid",
                Cause::WrongName,
            ),
            (
                "HTTP status 400: 400 No required SSL certificate was sent 400 Bad Request nginx",
                Cause::ClientCertificateRefused,
            ),
            (
                "HTTP status 400: 400 The SSL certificate error nginx",
                Cause::ClientCertificateRefused,
            ),
            (
                "received fatal alert: CertificateRequired",
                Cause::ClientCertificateRefused,
            ),
            ("received fatal alert: HandshakeFailure", Cause::Tls),
            (
                "tcp connect error: Connection refused (os error 111)",
                Cause::Other,
            ),
        ];
        for (text, cause) in cases {
            assert_eq!(classify(text), cause, "{text}");
        }
    }

    #[test]
    fn a_refusal_page_becomes_one_line() {
        let page = "<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n</body>\r\n</html>\r\n";
        assert_eq!(
            refusal(400, page),
            "HTTP status 400: 400 No required SSL certificate was sent 400 Bad Request"
        );
    }

    #[test]
    fn counts_tls_causes_and_logs_each_once_per_outage() {
        let counts = Arc::new(TlsFailureCounts::default());
        let d = Diagnosis::new("metrics", counts.clone());
        for _ in 0..3 {
            d.record("invalid peer certificate: UnknownIssuer".to_owned());
            d.failed("network error");
        }
        d.failed("connection refused");
        assert_eq!(d.logged.lock().unwrap().len(), 2);
        d.succeeded();
        assert!(d.logged.lock().unwrap().is_empty());
        let snap = counts.snapshot();
        assert_eq!(snap[0], (Cause::UnknownCa, 3));
        assert!(snap[1..].iter().all(|(_, n)| *n == 0));
    }
}
