//! OTLP metric export without the SDK's meter provider: a tokio task encodes the last published
//! snapshot straight into an OTLP `ExportMetricsServiceRequest` (`encode`) and sends it
//! (`otlp::send`) once per `[export.otlp] interval`. No instruments, no aggregation maps, no reader
//! thread: the snapshot already holds one value per series (issue 20: the SDK's periodic
//! reader cost about as much CPU as collecting). Names, units and kinds come from
//! `MetricName` and nowhere else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::diagnosis::Diagnosis;
use super::resource::Resource;
use crate::model::{MetricName, Snapshot, Value};

pub mod encode;

use super::otlp::send::{SendError, Sender};
use encode::Encoder;

/// Where the exporters read from: the runtime publishes each tick's snapshot here.
pub type Snapshots = watch::Receiver<Arc<Snapshot>>;

/// The bound of the export at shutdown (the SDK's `shutdown_with_timeout` used the same).
pub const FINAL_EXPORT_LIMIT: Duration = Duration::from_secs(5);

/// Byte and count units carry whole numbers; everything else (ratios, seconds, degrees,
/// watts, joules, hertz) is a float. Decided per name, so one data point type per name.
pub fn is_integral(name: MetricName) -> bool {
    let unit = name.unit();
    unit == "By" || unit.starts_with('{')
}

fn as_i64(v: Value) -> i64 {
    match v {
        Value::Int(i) => i,
        // Saturating float-to-int conversion; a fraction of a byte or count is noise.
        #[allow(clippy::cast_possible_truncation)]
        Value::Float(f) => f.round() as i64,
    }
}

/// What one export attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This many points were acknowledged.
    Delivered(usize),
    /// The latest snapshot was delivered already, or holds no points.
    Nothing,
    Failed,
}

/// The metric export: encoder, sender and the failure accounting. `run` drives it.
pub struct MetricExport {
    encoder: Encoder,
    sender: Sender,
    snapshots: Snapshots,
    /// Reused for every request; the sent `Bytes` give its memory back when dropped.
    buf: BytesMut,
    timeout: Duration,
    failures: Arc<AtomicU64>,
    diagnosis: Option<Arc<Diagnosis>>,
    /// Whether the snapshot last seen on `snapshots` has been delivered.
    delivered: bool,
}

impl MetricExport {
    pub fn new(
        resource: &Resource,
        sender: Sender,
        snapshots: Snapshots,
        timeout: Duration,
        failures: Arc<AtomicU64>,
    ) -> Self {
        MetricExport {
            encoder: Encoder::new(resource, SystemTime::now()),
            sender,
            snapshots,
            buf: BytesMut::new(),
            timeout,
            failures,
            diagnosis: None,
            delivered: false,
        }
    }

    /// Also report each outcome to `diagnosis` (the reason of a failure, logged per cause).
    #[must_use]
    pub fn with_diagnosis(mut self, diagnosis: Arc<Diagnosis>) -> Self {
        self.diagnosis = Some(diagnosis);
        self
    }

    /// Exports every `interval` (the first one interval after start, as the SDK's periodic
    /// reader did) until `stop` fires or its sender is dropped, then exports once more,
    /// bounded by `FINAL_EXPORT_LIMIT`.
    ///
    /// An export that is due goes out with the first snapshot published from half a `tick`
    /// before it on, in the wake-up of the tick that published it: a timer of its own woke the
    /// thread a second time per tick (issue 20). Before the first export, and while the last
    /// one failed, the timer fires too, so a retry never waits for a slower tick.
    pub async fn run(
        mut self,
        interval: Duration,
        tick: Duration,
        mut stop: oneshot::Receiver<()>,
    ) {
        // Its own receiver: marking a snapshot seen here leaves `export`'s freshness as it was.
        let mut published = self.snapshots.clone();
        let mut open = true;
        let slack = tick / 2;
        let mut due = Instant::now() + interval;
        loop {
            tokio::select! {
                biased;
                _stopped = &mut stop => break,
                changed = published.changed(), if open => {
                    if changed.is_err() {
                        open = false;
                        continue;
                    }
                    if Instant::now() + slack < due {
                        continue;
                    }
                }
                () = tokio::time::sleep_until(due), if !self.delivered => {}
            }
            // The next one counts from this one, so ticks that drift keep taking it.
            due = Instant::now() + interval;
            self.export(self.timeout).await;
        }
        self.export(self.timeout.min(FINAL_EXPORT_LIMIT)).await;
    }

    /// Sends the latest snapshot unless it was delivered already. The SDK re-read its
    /// observables every interval and so re-sent an unchanged snapshot with a new timestamp;
    /// we stamp points with the tick's own time, and the same points with the same timestamp
    /// again tell a receiver nothing (Prometheus-style stores drop them as duplicates). With
    /// `interval` equal to the tick, this is one export per tick. A failed export is dropped,
    /// never queued: the next interval sends whatever is latest then (possibly the same
    /// snapshot, which never arrived).
    pub async fn export(&mut self, timeout: Duration) -> Outcome {
        let fresh = self.snapshots.has_changed().unwrap_or(false);
        if self.delivered && !fresh {
            return Outcome::Nothing;
        }
        let snapshot = Arc::clone(&self.snapshots.borrow_and_update());
        let points = self.encoder.encode(&snapshot, &mut self.buf);
        drop(snapshot);
        if points == 0 {
            self.delivered = true;
            return Outcome::Nothing;
        }
        let result = match tokio::time::timeout(timeout, self.sender.send(&mut self.buf)).await {
            Ok(r) => r.map_err(|e: SendError| e.to_string()),
            Err(_elapsed) => Err(format!("no answer within {timeout:?}")),
        };
        self.delivered = result.is_ok();
        self.account(&result).await;
        match result {
            Ok(()) => Outcome::Delivered(points),
            Err(_) => Outcome::Failed,
        }
    }

    /// Counts a failure in hostwarden.export.failures (a warning on the first and at every
    /// power of two, so an outage does not flood the log) and tells the diagnosis.
    async fn account(&self, result: &Result<(), String>) {
        if let Some(d) = &self.diagnosis {
            match result {
                Ok(()) => d.succeeded(),
                Err(e) => d.failed(e),
            }
        }
        if let Err(e) = result {
            let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_power_of_two() {
                warn!(failures = n, error = %e, "OTLP metric export failed; retrying next interval.");
            } else {
                debug!(failures = n, error = %e, "OTLP metric export failed.");
            }
        }
    }
}

#[cfg(test)]
mod tests;
