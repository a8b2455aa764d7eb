//! Assembles the OTLP pipeline from resolved settings: a meter provider whose periodic reader
//! exports the observable instruments, and the alert sink task. Nothing is built when no
//! endpoint is configured.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry::metrics::MeterProvider;
use opentelemetry_otlp::{
    ExporterBuildError, LogExporter, MetricExporter, WithExportConfig, WithHttpConfig,
    WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::config::{Compression, Protocol};
use super::diagnosis::{Diagnosis, TlsFailureCounts};
use super::http_client::{DiagnosedClient, reqwest_client};
use super::logs::{AlertSink, SharedOutbox};
use super::metrics::{CountingExporter, Instruments, Snapshots, register};
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
    #[error("invalid OTLP header {name:?}: {reason}")]
    Header { name: String, reason: String },
    #[error("cannot set up TLS for the OTLP {signal} exporter to {url}: {source}")]
    Tls {
        signal: &'static str,
        url: String,
        source: TlsError,
    },
}

/// The running pipeline; `shutdown` flushes the last metrics.
pub struct Otlp {
    meters: Option<(SdkMeterProvider, Instruments)>,
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
        let handle = Handle::current();
        let meters = match &settings.metrics {
            Some(t) => {
                let transport = Transport::new("metrics", t, tls_failures.clone())?;
                let exporter =
                    CountingExporter::new(metric_exporter(t, &transport)?, failures.clone())
                        .with_diagnosis(transport.diagnosis.clone());
                // Outermost: the diagnosis's probe needs the runtime too.
                let exporter = InRuntime {
                    inner: exporter,
                    handle: handle.clone(),
                };
                let reader = PeriodicReader::builder(exporter)
                    .with_interval(settings.interval)
                    .build();
                let provider = SdkMeterProvider::builder()
                    .with_resource(resource.clone())
                    .with_reader(reader)
                    .build();
                let instruments = register(&provider.meter("hostwarden"), snapshots);
                info!(endpoint = %t.url, protocol = ?t.protocol, compression = ?t.compression, tls = t.url.starts_with("https://"), interval = ?settings.interval, "OTLP metric export started.");
                Some((provider, instruments))
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
        Ok(Otlp { meters, sink })
    }

    /// Stops the sink and flushes the meter provider (on the blocking pool: the SDK's
    /// shutdown blocks until the reader thread has exported).
    pub async fn shutdown(self) {
        if let Some(sink) = self.sink {
            sink.abort();
        }
        if let Some((provider, instruments)) = self.meters {
            let done = tokio::task::spawn_blocking(move || {
                let result = provider.shutdown_with_timeout(Duration::from_secs(5));
                drop(instruments);
                result
            })
            .await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "Final OTLP metric export failed."),
                Err(e) => warn!(error = %e, "OTLP shutdown task failed."),
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
            (Some(loaded), Protocol::Grpc) => Some((
                reqwest_client(Some(loaded), t.timeout).map_err(tls_error)?,
                t.url.clone(),
            )),
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
            reqwest_client(self.tls.as_ref(), t.timeout).map_err(|source| OtlpError::Tls {
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

fn metric_exporter(t: &SignalTarget, tr: &Transport) -> Result<MetricExporter, OtlpError> {
    let built = match t.protocol {
        Protocol::Grpc => tonic_setup(MetricExporter::builder().with_tonic(), t, tr)?.build(),
        Protocol::HttpProtobuf => {
            http_setup(MetricExporter::builder().with_http(), t, tr, "metrics")?.build()
        }
    };
    built.map_err(|source| OtlpError::Build {
        signal: "metrics",
        url: t.url.clone(),
        source,
    })
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

fn metadata(
    headers: &BTreeMap<String, String>,
) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap, OtlpError> {
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
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map))
}

/// The periodic reader exports from its own thread, outside tokio; the OTLP clients need the
/// runtime's timers and I/O. This wrapper enters the runtime for every poll of the export
/// (never across an await, so the future stays `Send`).
#[derive(Debug)]
struct InRuntime<E> {
    inner: E,
    handle: Handle,
}

struct Entered<'a, F> {
    fut: Pin<Box<F>>,
    handle: &'a Handle,
}

impl<F: Future> Future for Entered<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _in_runtime = self.handle.enter();
        self.fut.as_mut().poll(cx)
    }
}

impl<E: PushMetricExporter> PushMetricExporter for InRuntime<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        Entered {
            fut: Box::pin(self.inner.export(metrics)),
            handle: &self.handle,
        }
        .await
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
