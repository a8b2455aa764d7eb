//! Assembles the OTLP pipeline from resolved settings: the metric export task (see `metrics`)
//! and the alert sink task (see `logs`), each with its own encoder and a `send::Sender` for its
//! signal. Nothing is built when no endpoint is configured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::config::{Compression, Protocol};
use super::diagnosis::{Diagnosis, TlsFailureCounts};
use super::http_client::{self, DiagnosedClient};
use super::logs::{AlertSink, SharedOutbox};
use super::metrics::{FINAL_EXPORT_LIMIT, MetricExport, Snapshots};
use super::resource::Resource;
use super::settings::{ExportSettings, SignalTarget};
use super::tls::{self, Loaded, TlsError};

mod grpc;
pub mod send;
pub(crate) mod wire;

use send::{Sender, Signal};

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("invalid OTLP {signal} endpoint {url}: {reason}")]
    Endpoint {
        signal: &'static str,
        url: String,
        reason: String,
    },
    #[error("invalid OTLP header {name:?}: {reason}")]
    Header { name: String, reason: String },
    #[error("cannot set up TLS for the OTLP {signal} exporter to {url}: {source}")]
    Tls {
        signal: &'static str,
        url: String,
        source: TlsError,
    },
}

/// The running pipeline; `shutdown` sends the last metrics.
pub struct Otlp {
    /// The metric export task and what tells it to stop.
    metrics: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    sink: Option<JoinHandle<()>>,
}

impl Otlp {
    /// Builds the senders and starts both tasks. Must run inside the tokio runtime: the OTLP
    /// clients bind to it. `tick` is `[agent] interval`: exports go out with the ticks.
    pub fn start(
        settings: &ExportSettings,
        tick: std::time::Duration,
        resource: &Resource,
        snapshots: &Snapshots,
        outbox: SharedOutbox,
        failures: Arc<AtomicU64>,
        tls_failures: &Arc<TlsFailureCounts>,
    ) -> Result<Otlp, OtlpError> {
        let metrics = match &settings.metrics {
            Some(t) => {
                let transport = Transport::new(Signal::Metrics.name(), t, tls_failures.clone())?;
                let sender = sender(Signal::Metrics, t, &transport)?;
                let export = MetricExport::new(
                    resource,
                    sender,
                    snapshots.clone(),
                    t.timeout,
                    failures.clone(),
                )
                .with_diagnosis(transport.diagnosis.clone());
                let (stop, stopped) = oneshot::channel();
                let task = tokio::spawn(export.run(settings.interval, tick, stopped));
                info!(endpoint = %t.url, protocol = ?t.protocol, compression = ?t.compression, tls = t.url.starts_with("https://"), interval = ?settings.interval, "OTLP metric export started.");
                Some((stop, task))
            }
            None => None,
        };
        let sink = match &settings.logs {
            Some(t) => {
                let transport = Transport::new(Signal::Logs.name(), t, tls_failures.clone())?;
                let sender = sender(Signal::Logs, t, &transport)?;
                let sink = AlertSink::new(
                    sender,
                    resource,
                    outbox,
                    failures,
                    settings.interval,
                    t.timeout,
                )
                .with_diagnosis(transport.diagnosis.clone());
                info!(endpoint = %t.url, protocol = ?t.protocol, compression = ?t.compression, tls = t.url.starts_with("https://"), "OTLP alert export started.");
                Some(tokio::spawn(sink.run(snapshots.clone())))
            }
            None => None,
        };
        Ok(Otlp { metrics, sink })
    }

    /// Stops the sink, then lets the metric task send its final export (bounded by
    /// `FINAL_EXPORT_LIMIT`).
    pub async fn shutdown(self) {
        if let Some(sink) = self.sink {
            sink.abort();
        }
        if let Some((stop, mut task)) = self.metrics {
            if stop.send(()).is_err() {
                warn!("The OTLP metric task had already ended.");
            }
            match tokio::time::timeout(FINAL_EXPORT_LIMIT, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "OTLP metric task failed."),
                Err(_elapsed) => {
                    task.abort();
                    warn!(limit = ?FINAL_EXPORT_LIMIT, "Final OTLP metric export did not finish in time.");
                }
            }
        }
    }
}

/// What a signal's sender needs besides the target.
struct Transport {
    /// Present for https:// URLs.
    tls: Option<Loaded>,
    diagnosis: Arc<Diagnosis>,
}

impl Transport {
    fn new(
        signal: &'static str,
        t: &SignalTarget,
        counts: Arc<TlsFailureCounts>,
    ) -> Result<Transport, OtlpError> {
        let tls_error = |source| OtlpError::Tls {
            signal,
            url: t.url.clone(),
            source,
        };
        let tls = if t.url.starts_with("https://") {
            Some(tls::load(&t.tls).map_err(tls_error)?)
        } else {
            None
        };
        Ok(Transport {
            tls,
            diagnosis: Arc::new(Diagnosis::new(signal, counts)),
        })
    }

    /// The client of `t.protocol`: h2 for gRPC, HTTP/1.1 for http/protobuf.
    fn client(&self, t: &SignalTarget, signal: &'static str) -> Result<DiagnosedClient, OtlpError> {
        let make = match t.protocol {
            Protocol::Grpc => http_client::grpc_client,
            Protocol::HttpProtobuf => http_client::client,
        };
        let client = make(self.tls.as_ref(), t.timeout).map_err(|source| OtlpError::Tls {
            signal,
            url: t.url.clone(),
            source,
        })?;
        Ok(DiagnosedClient::new(client, self.diagnosis.clone()))
    }
}

/// A signal's sender, configured as the SDK's exporter was: the same endpoint, TLS files,
/// headers, compression and timeout.
fn sender(signal: Signal, t: &SignalTarget, tr: &Transport) -> Result<Sender, OtlpError> {
    let name = signal.name();
    let bad = |reason: String| OtlpError::Endpoint {
        signal: name,
        url: t.url.clone(),
        reason,
    };
    let headers = header_map(&t.headers)?;
    let gzip = t.compression == Some(Compression::Gzip);
    let url: http::Uri = t
        .url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
    let client = tr.client(t, name)?;
    match t.protocol {
        Protocol::Grpc => Sender::grpc(signal, client, url, headers, gzip).map_err(bad),
        Protocol::HttpProtobuf => Ok(Sender::http(signal, client, url, headers, gzip)),
    }
}

/// The configured headers, checked once at start.
fn header_map(headers: &BTreeMap<String, String>) -> Result<http::HeaderMap, OtlpError> {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        let bad = |reason: String| OtlpError::Header {
            name: k.clone(),
            reason,
        };
        let name = http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|e| bad(e.to_string()))?;
        let value = http::HeaderValue::from_str(v).map_err(|e| bad(e.to_string()))?;
        map.insert(name, value);
    }
    Ok(map)
}
