use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::logs::InMemoryLogExporter;
use tokio::sync::{mpsc, watch};

use super::*;

fn event(id: u64, state: AlertState, severity: AlertSeverity) -> AlertEvent {
    AlertEvent {
        id,
        rule: "memory_high".into(),
        metric: "system.memory.utilization".into(),
        severity,
        state,
        attributes: BTreeMap::from([("hw.id".to_owned(), "GPU-1".to_owned())]),
        value: 0.97,
        threshold: Some(0.95),
        baseline: None,
        since_ms: 1_700_000_000_000,
        at_ms: 1_700_000_060_000,
        summary: format!("memory at 97% (event {id})"),
    }
}

fn outbox_with(events: impl IntoIterator<Item = AlertEvent>) -> SharedOutbox {
    let mut o = Outbox::new(1000);
    for e in events {
        o.push(e);
    }
    Arc::new(Mutex::new(o))
}

fn attr(r: &SdkLogRecord, key: &str) -> Option<String> {
    r.attributes_iter()
        .find(|(k, _)| k.as_str() == key)
        .map(|(_, v)| match v {
            AnyValue::String(s) => s.to_string(),
            AnyValue::Double(d) => d.to_string(),
            AnyValue::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

#[test]
fn severity_follows_state_and_level() {
    let s = |st, sev| severity(&event(1, st, sev)).1;
    assert_eq!(s(AlertState::Firing, AlertSeverity::Critical), "ERROR");
    assert_eq!(s(AlertState::Firing, AlertSeverity::Warning), "WARN");
    assert_eq!(s(AlertState::Resolved, AlertSeverity::Critical), "INFO");
    assert_eq!(s(AlertState::Pending, AlertSeverity::Warning), "INFO");
}

#[test]
fn a_record_carries_every_field_of_the_event() {
    let r = RecordMaker::default().record(&event(7, AlertState::Firing, AlertSeverity::Critical));
    assert_eq!(r.event_name(), Some(EVENT_NAME));
    assert_eq!(r.severity_number(), Some(Severity::Error));
    assert_eq!(r.severity_text(), Some("ERROR"));
    assert_eq!(
        r.body(),
        Some(&AnyValue::String(
            "memory at 97% (event 7)".to_owned().into()
        ))
    );
    assert_eq!(attr(&r, "alert.id").as_deref(), Some("7"));
    assert_eq!(attr(&r, "alert.rule").as_deref(), Some("memory_high"));
    assert_eq!(attr(&r, "alert.state").as_deref(), Some("firing"));
    assert_eq!(attr(&r, "alert.severity").as_deref(), Some("critical"));
    assert_eq!(
        attr(&r, "alert.metric").as_deref(),
        Some("system.memory.utilization")
    );
    assert_eq!(attr(&r, "alert.value").as_deref(), Some("0.97"));
    assert_eq!(attr(&r, "alert.threshold").as_deref(), Some("0.95"));
    assert_eq!(attr(&r, "alert.baseline"), None);
    assert_eq!(
        attr(&r, "alert.since").as_deref(),
        Some("2023-11-14T22:13:20.000Z")
    );
    assert_eq!(attr(&r, "hw.id").as_deref(), Some("GPU-1"));
    assert_eq!(r.timestamp(), Some(at(1_700_000_060_000)));
}

#[tokio::test]
async fn drain_delivers_in_batches_and_acks() {
    let exporter = InMemoryLogExporter::default();
    let events = (1..=150).map(|i| event(i, AlertState::Firing, AlertSeverity::Warning));
    let outbox = outbox_with(events);
    let failures = Arc::new(AtomicU64::new(0));
    let mut sink = AlertSink::new(
        exporter.clone(),
        &Resource::builder_empty().build(),
        outbox.clone(),
        failures.clone(),
        Duration::from_secs(1),
    );
    assert_eq!(sink.drain().await.unwrap(), 150);
    assert_eq!(lock(&outbox).depth(), 0);
    let logs = exporter.get_emitted_logs().unwrap();
    assert_eq!(logs.len(), 150);
    assert_eq!(attr(&logs[149].record, "alert.id").as_deref(), Some("150"));
    assert_eq!(failures.load(Ordering::Relaxed), 0);
}

/// Fails its first `fail` exports, then reports each delivered batch's size on `delivered`.
#[derive(Debug)]
struct Flaky {
    fail: usize,
    calls: Arc<AtomicUsize>,
    delivered: mpsc::UnboundedSender<Vec<String>>,
}

impl LogExporter for Flaky {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
            return Err(OTelSdkError::InternalFailure("connection refused".into()));
        }
        let ids = batch
            .iter()
            .filter_map(|(r, _)| attr(r, "alert.id"))
            .collect();
        self.delivered
            .send(ids)
            .map_err(|_| OTelSdkError::InternalFailure("test ended".into()))
    }
}

#[tokio::test]
async fn a_failed_export_leaves_the_batch_queued() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let calls = Arc::new(AtomicUsize::new(0));
    let exporter = Flaky {
        fail: 1,
        calls,
        delivered: tx,
    };
    let outbox = outbox_with([event(1, AlertState::Firing, AlertSeverity::Critical)]);
    let failures = Arc::new(AtomicU64::new(0));
    let resource = Resource::builder_empty().build();
    let mut sink = AlertSink::new(
        exporter,
        &resource,
        outbox.clone(),
        failures,
        Duration::from_secs(1),
    );
    assert!(sink.drain().await.is_err());
    assert_eq!(lock(&outbox).depth(), 1);
    assert_eq!(sink.drain().await.unwrap(), 1);
    assert_eq!(lock(&outbox).depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn run_retries_with_backoff_until_the_receiver_is_back() {
    let (tx, mut delivered) = mpsc::unbounded_channel();
    let calls = Arc::new(AtomicUsize::new(0));
    let exporter = Flaky {
        fail: 5,
        calls: calls.clone(),
        delivered: tx,
    };
    let outbox = outbox_with([]);
    let failures = Arc::new(AtomicU64::new(0));
    let resource = Resource::builder_empty().build();
    let sink = AlertSink::new(
        exporter,
        &resource,
        outbox.clone(),
        failures.clone(),
        Duration::from_secs(1),
    );
    let (wake_tx, wake_rx) = watch::channel(0u64);
    let task = tokio::spawn(sink.run(wake_rx));
    lock(&outbox).push(event(1, AlertState::Firing, AlertSeverity::Critical));
    lock(&outbox).push(event(2, AlertState::Resolved, AlertSeverity::Critical));
    wake_tx.send_replace(1);
    let started = tokio::time::Instant::now();
    let ids = delivered.recv().await.unwrap();
    assert_eq!(ids, vec!["1".to_owned(), "2".to_owned()]);
    // 250 + 500 + 1000 + 1000 + 1000 ms of backoff, never longer than the cap.
    assert_eq!(started.elapsed(), Duration::from_millis(3750));
    assert_eq!(failures.load(Ordering::Relaxed), 5);
    assert_eq!(lock(&outbox).depth(), 0);
    drop(wake_tx);
    task.await.unwrap();
}

#[test]
fn backoff_doubles_up_to_the_cap_and_resets() {
    let mut b = Backoff::new(Duration::from_millis(600));
    let got: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
    assert_eq!(got, vec![250, 500, 600, 600]);
    b.reset();
    assert_eq!(b.next_delay(), Duration::from_millis(250));
    assert_eq!(
        Backoff::new(Duration::from_millis(100)).next_delay(),
        Duration::from_millis(100)
    );
}
