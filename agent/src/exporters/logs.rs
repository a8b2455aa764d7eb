//! Alert events as OTLP log records, delivered at least once. The sink reads a batch from the
//! outbox, encodes it (`encode`), sends it, and acknowledges it only when the export succeeded.
//! On failure it retries with a doubling delay capped at the export interval, so events wait in
//! the (bounded) outbox during an outage and arrive after it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use tracing::{debug, info, warn};

use super::diagnosis::Diagnosis;
use super::otlp::send::{SendError, Sender};
use super::resource::Resource;
use crate::rules::event::AlertEvent;
use crate::rules::outbox::Outbox;

pub mod encode;

use encode::Encoder;

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

/// Where the sink's encoded requests go: the OTLP `Sender`; the tests' receivers stand in.
pub trait Deliver {
    /// Sends the `ExportLogsServiceRequest` encoded in `buf`, taking it; the sink bounds it
    /// with its timeout.
    fn deliver(&mut self, buf: &mut BytesMut)
    -> impl Future<Output = Result<(), SendError>> + Send;
}

impl Deliver for Sender {
    fn deliver(
        &mut self,
        buf: &mut BytesMut,
    ) -> impl Future<Output = Result<(), SendError>> + Send {
        self.send(buf)
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

pub struct AlertSink<D> {
    sender: D,
    outbox: SharedOutbox,
    encoder: Encoder,
    /// Reused for every request; the sent `Bytes` give its memory back when dropped.
    buf: BytesMut,
    /// The bound of one export.
    timeout: Duration,
    failures: Arc<AtomicU64>,
    backoff: Backoff,
    diagnosis: Option<Arc<Diagnosis>>,
}

impl<D: Deliver> AlertSink<D> {
    /// `retry_cap` is the export interval: an outage is retried at least that often.
    /// `timeout` bounds each export.
    pub fn new(
        sender: D,
        resource: &Resource,
        outbox: SharedOutbox,
        failures: Arc<AtomicU64>,
        retry_cap: Duration,
        timeout: Duration,
    ) -> Self {
        AlertSink {
            sender,
            outbox,
            encoder: Encoder::new(resource),
            buf: BytesMut::new(),
            timeout,
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
    pub async fn drain(&mut self) -> Result<usize, String> {
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

    async fn export(&mut self, batch: &[AlertEvent]) -> Result<(), String> {
        self.encoder.encode(batch, SystemTime::now(), &mut self.buf);
        let timeout = self.timeout;
        let result = match tokio::time::timeout(timeout, self.sender.deliver(&mut self.buf)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_elapsed) => Err(format!("no answer within {timeout:?}")),
        };
        if let Some(d) = &self.diagnosis {
            match &result {
                Ok(()) => d.succeeded(),
                Err(e) => d.failed(e),
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
