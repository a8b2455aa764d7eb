//! Assembles the OTLP pipeline from resolved settings: the metric export task (our own
//! encoder and sender, see `metrics`) and the alert sink task (the SDK's log exporter).
//! Nothing is built when no endpoint is configured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use opentelemetry_otlp::{
    ExporterBuildError, LogExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::config::{Compression, Protocol};
use super::diagnosis::{Diagnosis, TlsFailureCounts, chain};
use super::http_client::{self, DiagnosedClient};
use super::logs::{AlertSink, SharedOutbox};
use super::metrics::send::Sender;
use super::metrics::{FINAL_EXPORT_LIMIT, MetricExport, Snapshots};
use super::settings::{ExportSettings, SignalTarget};
use super::tls::{self, Loaded, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("cannot build the OTLP {signal} exporter for {url}: {source}")]
    Build {
        signal: &'static str,
        url: String,
        source: ExporterBuildError,
    },
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
    /// Builds the exporters and starts the sink. Must run inside the tokio runtime: the OTLP
    /// clients bind to it.
    pub fn start(
        settings: &ExportSettings,
        resource: &Resource,
        snapshots: &Snapshots,
        outbox: SharedOutbox,
        failures: Arc<AtomicU64>,
        tls_failures: &Arc<TlsFailureCounts>,
    ) -> Result<Otlp, OtlpError> {
        let metrics = match &settings.metrics {
            Some(t) => {
                let transport = Transport::new("metrics", t, tls_failures.clone())?;
                let sender = metric_sender(t, &transport)?;
                let export = MetricExport::new(
                    resource,
                    sender,
                    snapshots.clone(),
                    t.timeout,
                    failures.clone(),
                )
                .with_diagnosis(transport.diagnosis.clone());
                let (stop, stopped) = oneshot::channel();
                let task = tokio::spawn(export.run(settings.interval, stopped));
                info!(endpoint = %t.url, protocol = ?t.protocol, compression = ?t.compression, tls = t.url.starts_with("https://"), interval = ?settings.interval, "OTLP metric export started.");
                Some((stop, task))
            }
            None => None,
        };
        let sink = match &settings.logs {
            Some(t) => {
                let transport = Transport::new("logs", t, tls_failures.clone())?;
                let exporter = log_exporter(t, &transport)?;
                let sink = AlertSink::new(exporter, resource, outbox, failures, settings.interval)
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

/// What both exporter builders of a signal need besides the target.
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
        // For gRPC over TLS the probe asks the same host with the same files.
        let probe = match (&tls, t.protocol) {
            (Some(loaded), Protocol::Grpc) => {
                let url =
                    t.url
                        .parse()
                        .map_err(|e: http::uri::InvalidUri| OtlpError::Endpoint {
                            signal,
                            url: t.url.clone(),
                            reason: e.to_string(),
                        })?;
                Some((
                    http_client::probe_client(loaded, t.timeout).map_err(tls_error)?,
                    url,
                ))
            }
            _ => None,
        };
        Ok(Transport {
            tls,
            diagnosis: Arc::new(Diagnosis::new(signal, counts, probe)),
        })
    }

    fn http_client(
        &self,
        t: &SignalTarget,
        signal: &'static str,
    ) -> Result<DiagnosedClient, OtlpError> {
        let client =
            http_client::client(self.tls.as_ref(), t.timeout).map_err(|source| OtlpError::Tls {
                signal,
                url: t.url.clone(),
                source,
            })?;
        Ok(DiagnosedClient::new(client, self.diagnosis.clone()))
    }
}

fn compression(t: &SignalTarget) -> Option<opentelemetry_otlp::Compression> {
    t.compression
        .filter(|c| *c == Compression::Gzip)
        .map(|_| opentelemetry_otlp::Compression::Gzip)
}

/// What a gRPC exporter of either signal is built with (the builders share the traits).
fn tonic_setup<B: WithExportConfig + WithTonicConfig>(
    b: B,
    t: &SignalTarget,
    tr: &Transport,
) -> Result<B, OtlpError> {
    let mut b = b
        .with_endpoint(&t.url)
        .with_timeout(t.timeout)
        .with_metadata(metadata(&t.headers)?);
    if let Some(c) = compression(t) {
        b = b.with_compression(c);
    }
    if let Some(tls) = &tr.tls {
        b = b.with_tls_config(tls.tonic_config());
    }
    Ok(b)
}

/// What an http/protobuf exporter of either signal is built with.
fn http_setup<B: WithExportConfig + WithHttpConfig>(
    b: B,
    t: &SignalTarget,
    tr: &Transport,
    signal: &'static str,
) -> Result<B, OtlpError> {
    let mut b = b
        .with_http_client(tr.http_client(t, signal)?)
        .with_endpoint(&t.url)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(t.timeout)
        .with_headers(t.headers.clone().into_iter().collect());
    if let Some(c) = compression(t) {
        b = b.with_compression(c);
    }
    Ok(b)
}

/// Our own metric sender (see `metrics`), configured as the SDK's exporter was: the same
/// endpoint, TLS files, headers, compression and timeout.
fn metric_sender(t: &SignalTarget, tr: &Transport) -> Result<Sender, OtlpError> {
    let bad = |reason: String| OtlpError::Endpoint {
        signal: "metrics",
        url: t.url.clone(),
        reason,
    };
    let headers = header_map(&t.headers)?;
    let gzip = compression(t).is_some();
    match t.protocol {
        Protocol::Grpc => {
            let mut endpoint = tonic::transport::Endpoint::from_shared(t.url.clone())
                .map_err(|e| bad(chain(&e)))?;
            if let Some(tls) = &tr.tls {
                endpoint = endpoint
                    .tls_config(tls.tonic_config())
                    .map_err(|e| bad(chain(&e)))?;
            }
            let channel = endpoint.timeout(t.timeout).connect_lazy();
            Ok(Sender::grpc(channel, headers, gzip))
        }
        Protocol::HttpProtobuf => {
            let url = t
                .url
                .parse()
                .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
            Ok(Sender::http(
                tr.http_client(t, "metrics")?,
                url,
                headers,
                gzip,
            ))
        }
    }
}

fn log_exporter(t: &SignalTarget, tr: &Transport) -> Result<LogExporter, OtlpError> {
    let built = match t.protocol {
        Protocol::Grpc => tonic_setup(LogExporter::builder().with_tonic(), t, tr)?.build(),
        Protocol::HttpProtobuf => {
            http_setup(LogExporter::builder().with_http(), t, tr, "logs")?.build()
        }
    };
    built.map_err(|source| OtlpError::Build {
        signal: "logs",
        url: t.url.clone(),
        source,
    })
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

fn metadata(
    headers: &BTreeMap<String, String>,
) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap, OtlpError> {
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(header_map(headers)?))
}
