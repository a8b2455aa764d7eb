//! Alert events as OTLP log records, delivered at least once. The sink reads a batch from the
//! outbox, exports it by calling the log exporter directly (a batch processor would drop it on
//! failure), and acknowledges it only when the export succeeded. On failure it retries with a
//! doubling delay capped at the export interval, so events wait in the (bounded) outbox during
//! an outage and arrive after it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use tracing::{debug, info, warn};

use super::diagnosis::Diagnosis;
use crate::rules::event::{AlertEvent, AlertState, Severity as AlertSeverity};
use crate::rules::outbox::Outbox;

/// The log record's event name.
pub const EVENT_NAME: &str = "hostwarden.alert";

/// Events exported per request.
pub const BATCH: usize = 64;

/// The outbox as the rules engine and the sink share it.
pub type SharedOutbox = Arc<Mutex<Outbox>>;

/// Locks the outbox; a panic elsewhere while holding it leaves a usable queue, so poisoning is
/// ignored rather than spread.
pub fn lock(outbox: &SharedOutbox) -> MutexGuard<'_, Outbox> {
    outbox
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// WARN for a firing warning, ERROR for a firing critical, INFO for pending and resolved.
pub fn severity(e: &AlertEvent) -> (Severity, &'static str) {
    match (e.state, e.severity) {
        (AlertState::Firing, AlertSeverity::Critical) => (Severity::Error, "ERROR"),
        (AlertState::Firing, AlertSeverity::Warning) => (Severity::Warn, "WARN"),
        (AlertState::Pending | AlertState::Resolved, _) => (Severity::Info, "INFO"),
    }
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Builds log records. The SDK only hands out records through a logger; this provider has no
/// processor, so the logger is used for nothing else.
pub struct RecordMaker {
    _provider: SdkLoggerProvider,
    logger: SdkLogger,
    scope: InstrumentationScope,
}

impl Default for RecordMaker {
    fn default() -> Self {
        let provider = SdkLoggerProvider::builder().build();
        let logger = provider.logger("hostwarden");
        RecordMaker {
            _provider: provider,
            logger,
            scope: InstrumentationScope::builder("hostwarden")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        }
    }
}

impl RecordMaker {
    pub fn record(&self, e: &AlertEvent) -> SdkLogRecord {
        let mut r = self.logger.create_log_record();
        let (number, text) = severity(e);
        r.set_event_name(EVENT_NAME);
        r.set_severity_number(number);
        r.set_severity_text(text);
        r.set_timestamp(at(e.at_ms));
        r.set_observed_timestamp(SystemTime::now());
        r.set_body(AnyValue::String(e.summary.clone().into()));
        r.add_attribute("alert.id", i64::try_from(e.id).unwrap_or(i64::MAX));
        r.add_attribute("alert.rule", e.rule.clone());
        r.add_attribute("alert.state", e.state.as_str());
        r.add_attribute("alert.severity", e.severity.as_str());
        r.add_attribute("alert.metric", e.metric.clone());
        r.add_attribute("alert.value", e.value);
        if let Some(t) = e.threshold {
            r.add_attribute("alert.threshold", t);
        }
        if let Some(b) = e.baseline {
            r.add_attribute("alert.baseline", b);
        }
        r.add_attribute(
            "alert.since",
            humantime::format_rfc3339_millis(at(e.since_ms)).to_string(),
        );
        for (k, v) in &e.attributes {
            r.add_attribute(k.clone(), v.clone());
        }
        r
    }
}

/// Doubling retry delay, from `min` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        let min = Duration::from_millis(250).min(max);
        Backoff {
            min,
            max,
            next: min,
        }
    }
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

pub struct AlertSink<E> {
    exporter: E,
    outbox: SharedOutbox,
    records: RecordMaker,
    failures: Arc<AtomicU64>,
    backoff: Backoff,
    diagnosis: Option<Arc<Diagnosis>>,
}

impl<E: LogExporter> AlertSink<E> {
    /// `retry_cap` is the export interval: an outage is retried at least that often.
    pub fn new(
        mut exporter: E,
        resource: &Resource,
        outbox: SharedOutbox,
        failures: Arc<AtomicU64>,
        retry_cap: Duration,
    ) -> Self {
        exporter.set_resource(resource);
        AlertSink {
            exporter,
            outbox,
            records: RecordMaker::default(),
            failures,
            backoff: Backoff::new(retry_cap),
            diagnosis: None,
        }
    }

    /// Also report each outcome to `diagnosis` (the reason of a failure, logged per cause).
    #[must_use]
    pub fn with_diagnosis(mut self, diagnosis: Arc<Diagnosis>) -> Self {
        self.diagnosis = Some(diagnosis);
        self
    }

    /// Exports everything queued, batch by batch, acknowledging each delivered batch. Returns
    /// how many events were delivered, or the first failure (the failed batch stays queued).
    pub async fn drain(&mut self) -> Result<usize, opentelemetry_sdk::error::OTelSdkError> {
        let mut delivered = 0;
        loop {
            let batch = lock(&self.outbox).peek(BATCH);
            let Some(last) = batch.last().map(|e| e.id) else {
                return Ok(delivered);
            };
            self.export(&batch).await?;
            lock(&self.outbox).ack(last);
            delivered += batch.len();
        }
    }

    async fn export(&self, batch: &[AlertEvent]) -> OTelSdkResult {
        let records: Vec<SdkLogRecord> = batch.iter().map(|e| self.records.record(e)).collect();
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            records.iter().map(|r| (r, &self.records.scope)).collect();
        let result = self.exporter.export(LogBatch::new(&refs)).await;
        if let Some(d) = &self.diagnosis {
            match &result {
                Ok(()) => d.succeeded(),
                Err(e) => d.failed(&e.to_string()).await,
            }
        }
        result
    }

    /// Drains after every wake-up (the runtime publishes a snapshot after pushing the tick's
    /// events), retrying failures with backoff. Ends when the wake-up channel closes.
    pub async fn run<T>(mut self, mut wake: tokio::sync::watch::Receiver<T>) {
        let mut failing = false;
        loop {
            match self.drain().await {
                Ok(n) => {
                    self.backoff.reset();
                    if failing {
                        info!(
                            delivered = n,
                            "OTLP alert export recovered; queued events delivered."
                        );
                        failing = false;
                    }
                    if wake.changed().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                    let depth = lock(&self.outbox).depth();
                    if failing {
                        debug!(failures = n, queued = depth, error = %e, "OTLP alert export failed.");
                    } else {
                        warn!(queued = depth, error = %e, "OTLP alert export failed; events wait in the outbox and are retried.");
                        failing = true;
                    }
                    tokio::time::sleep(self.backoff.next_delay()).await;
                    if wake.has_changed().is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
