//! One observable instrument per `MetricName`, registered once at start. Each callback only
//! reads the last published snapshot (a clone of an `Arc` under the watch channel's brief read
//! lock): it never waits on a collector, never allocates beyond the attribute list, never
//! panics. Names, units and kinds come from `MetricName` and nowhere else.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use tokio::sync::watch;

use super::diagnosis::Diagnosis;
use crate::model::{AttrValue, Attrs, InstrumentKind, MetricName, Snapshot, Value};

/// Where callbacks read from: the runtime publishes each tick's snapshot here.
pub type Snapshots = watch::Receiver<Arc<Snapshot>>;

/// Keeps the registered instruments alive for the life of the meter provider.
pub struct Instruments(#[allow(dead_code)] Vec<Box<dyn Any + Send + Sync>>);

/// Byte and count units carry whole numbers; everything else (ratios, seconds, degrees,
/// watts, joules, hertz) is a float. Decided per name, so one instrument type per name.
pub fn is_integral(name: MetricName) -> bool {
    let unit = name.unit();
    unit == "By" || unit.starts_with('{')
}

pub fn key_values(attrs: &Attrs) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| match v {
            AttrValue::Int(i) => KeyValue::new(k.as_str(), *i),
            AttrValue::Str(s) => KeyValue::new(k.as_str(), s.clone()),
        })
        .collect()
}

fn as_i64(v: Value) -> i64 {
    match v {
        Value::Int(i) => i,
        // Saturating float-to-int conversion; a fraction of a byte or count is noise.
        #[allow(clippy::cast_possible_truncation)]
        Value::Float(f) => f.round() as i64,
    }
}

fn as_u64(v: Value) -> u64 {
    u64::try_from(as_i64(v)).unwrap_or(0)
}

/// Calls `observe` for every point of `name` in the last snapshot.
fn each_point(
    snapshots: &Snapshots,
    name: MetricName,
    mut observe: impl FnMut(Value, &[KeyValue]),
) {
    let snapshot = Arc::clone(&snapshots.borrow());
    for p in snapshot.points_named(name) {
        observe(p.value, &key_values(&p.attributes));
    }
}

/// Registers one instrument per metric name on `meter`.
pub fn register(meter: &Meter, snapshots: &Snapshots) -> Instruments {
    let mut kept: Vec<Box<dyn Any + Send + Sync>> = Vec::new();
    for &name in MetricName::ALL {
        let rx = snapshots.clone();
        let (n, u, d) = (name.as_str(), name.unit(), name.description());
        match (name.kind(), is_integral(name)) {
            (InstrumentKind::Gauge, _) => kept.push(Box::new(
                meter
                    .f64_observable_gauge(n)
                    .with_unit(u)
                    .with_description(d)
                    .with_callback(move |o| each_point(&rx, name, |v, a| o.observe(v.as_f64(), a)))
                    .build(),
            )),
            (InstrumentKind::UpDownCounter, true) => kept.push(Box::new(
                meter
                    .i64_observable_up_down_counter(n)
                    .with_unit(u)
                    .with_description(d)
                    .with_callback(move |o| each_point(&rx, name, |v, a| o.observe(as_i64(v), a)))
                    .build(),
            )),
            (InstrumentKind::UpDownCounter, false) => kept.push(Box::new(
                meter
                    .f64_observable_up_down_counter(n)
                    .with_unit(u)
                    .with_description(d)
                    .with_callback(move |o| each_point(&rx, name, |v, a| o.observe(v.as_f64(), a)))
                    .build(),
            )),
            (InstrumentKind::Counter, true) => kept.push(Box::new(
                meter
                    .u64_observable_counter(n)
                    .with_unit(u)
                    .with_description(d)
                    .with_callback(move |o| each_point(&rx, name, |v, a| o.observe(as_u64(v), a)))
                    .build(),
            )),
            (InstrumentKind::Counter, false) => kept.push(Box::new(
                meter
                    .f64_observable_counter(n)
                    .with_unit(u)
                    .with_description(d)
                    .with_callback(move |o| {
                        each_point(&rx, name, |v, a| o.observe(v.as_f64().max(0.0), a))
                    })
                    .build(),
            )),
        }
    }
    Instruments(kept)
}

/// Wraps the OTLP exporter to count failed exports (hostwarden.export.failures). The periodic
/// reader drops a failed batch: observables are re-read next interval, so nothing piles up.
#[derive(Debug)]
pub struct CountingExporter<E> {
    inner: E,
    failures: Arc<AtomicU64>,
    diagnosis: Option<Arc<Diagnosis>>,
}

impl<E> CountingExporter<E> {
    pub fn new(inner: E, failures: Arc<AtomicU64>) -> Self {
        CountingExporter {
            inner,
            failures,
            diagnosis: None,
        }
    }

    /// Also report each outcome to `diagnosis` (the reason of a failure, logged per cause).
    #[must_use]
    pub fn with_diagnosis(mut self, diagnosis: Arc<Diagnosis>) -> Self {
        self.diagnosis = Some(diagnosis);
        self
    }
}

impl<E: PushMetricExporter> PushMetricExporter for CountingExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if let Some(d) = &self.diagnosis {
            match &result {
                Ok(()) => d.succeeded(),
                Err(e) => d.failed(&e.to_string()).await,
            }
        }
        if let Err(e) = &result {
            let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            // The first failure of an outage is worth a warning; the rest are counted.
            if n == 1 || n.is_power_of_two() {
                tracing::warn!(failures = n, error = %e, "OTLP metric export failed; retrying next interval.");
            } else {
                tracing::debug!(failures = n, error = %e, "OTLP metric export failed.");
            }
        }
        result
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

#[cfg(test)]
mod tests;
