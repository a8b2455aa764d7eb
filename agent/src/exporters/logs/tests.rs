use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::time::UNIX_EPOCH;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use prost::Message;
use tokio::sync::{mpsc, watch};

use super::encode::{EVENT_NAME, severity};
use super::*;
use crate::rules::event::{AlertState, Severity as AlertSeverity};

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

fn resource() -> Resource {
    Resource::new([
        ("service.name".to_owned(), "hostwarden".into()),
        ("host.wsl".to_owned(), false.into()),
    ])
}

fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::IntValue(i)) => format!("int:{i}"),
        other => format!("{other:?}"),
    }
}

fn attr(r: &LogRecord, key: &str) -> Option<String> {
    r.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(text)
}

/// The records of a request with one resource and one scope.
fn records(req: &ExportLogsServiceRequest) -> &[LogRecord] {
    assert_eq!(req.resource_logs.len(), 1);
    assert_eq!(req.resource_logs[0].scope_logs.len(), 1);
    &req.resource_logs[0].scope_logs[0].log_records
}

fn ids(req: &ExportLogsServiceRequest) -> Vec<String> {
    records(req)
        .iter()
        .filter_map(|r| attr(r, "alert.id"))
        .collect()
}

/// Decodes each request as a receiver would; fails the first `fail` as a refused connection.
struct Receiver {
    fail: usize,
    calls: Arc<AtomicUsize>,
    delivered: mpsc::UnboundedSender<ExportLogsServiceRequest>,
}

impl Receiver {
    fn new(fail: usize) -> (Self, mpsc::UnboundedReceiver<ExportLogsServiceRequest>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let r = Receiver {
            fail,
            calls: Arc::new(AtomicUsize::new(0)),
            delivered: tx,
        };
        (r, rx)
    }
}

impl Deliver for Receiver {
    fn deliver(
        &mut self,
        buf: &mut BytesMut,
    ) -> impl Future<Output = Result<(), SendError>> + Send {
        let body = buf.split().freeze();
        let result = if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
            Err(SendError::Http("connection refused".into()))
        } else {
            let req = ExportLogsServiceRequest::decode(body).expect("a valid request");
            self.delivered
                .send(req)
                .map_err(|_| SendError::Http("test ended".into()))
        };
        std::future::ready(result)
    }
}

fn sink(
    receiver: Receiver,
    outbox: &SharedOutbox,
    failures: &Arc<AtomicU64>,
) -> AlertSink<Receiver> {
    AlertSink::new(
        receiver,
        &resource(),
        outbox.clone(),
        failures.clone(),
        Duration::from_secs(1),
        Duration::from_secs(5),
    )
}

#[test]
fn severity_follows_state_and_level() {
    let s = |st, sev| severity(&event(1, st, sev)).1;
    assert_eq!(s(AlertState::Firing, AlertSeverity::Critical), "ERROR");
    assert_eq!(s(AlertState::Firing, AlertSeverity::Warning), "WARN");
    assert_eq!(s(AlertState::Resolved, AlertSeverity::Critical), "INFO");
    assert_eq!(s(AlertState::Pending, AlertSeverity::Warning), "INFO");
}

#[tokio::test]
async fn a_record_carries_every_field_of_the_event_under_the_resource_and_scope() {
    let (receiver, mut delivered) = Receiver::new(0);
    let outbox = outbox_with([event(7, AlertState::Firing, AlertSeverity::Critical)]);
    let before = SystemTime::now();
    let mut sink = sink(receiver, &outbox, &Arc::new(AtomicU64::new(0)));
    assert_eq!(sink.drain().await.unwrap(), 1);
    let req = delivered.recv().await.unwrap();

    let rl = &req.resource_logs[0];
    let res: BTreeMap<_, _> = rl
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone().unwrap().value.unwrap()))
        .collect();
    assert_eq!(
        res["service.name"],
        any_value::Value::StringValue("hostwarden".into())
    );
    assert_eq!(res["host.wsl"], any_value::Value::BoolValue(false));
    let scope = rl.scope_logs[0].scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("hostwarden", env!("CARGO_PKG_VERSION"))
    );

    let [r] = records(&req) else {
        panic!("one record: {req:?}")
    };
    assert_eq!(r.event_name, EVENT_NAME);
    assert_eq!(r.severity_number, SeverityNumber::Error as i32);
    assert_eq!(r.severity_text, "ERROR");
    assert_eq!(
        r.body.as_ref().map(text).as_deref(),
        Some("memory at 97% (event 7)")
    );
    assert_eq!(attr(r, "alert.id").as_deref(), Some("int:7"));
    assert_eq!(attr(r, "alert.rule").as_deref(), Some("memory_high"));
    assert_eq!(attr(r, "alert.state").as_deref(), Some("firing"));
    assert_eq!(attr(r, "alert.severity").as_deref(), Some("critical"));
    assert_eq!(
        attr(r, "alert.metric").as_deref(),
        Some("system.memory.utilization")
    );
    assert_eq!(attr(r, "alert.value").as_deref(), Some("0.97"));
    assert_eq!(attr(r, "alert.threshold").as_deref(), Some("0.95"));
    assert_eq!(attr(r, "alert.baseline"), None);
    assert_eq!(
        attr(r, "alert.since").as_deref(),
        Some("2023-11-14T22:13:20.000Z")
    );
    assert_eq!(attr(r, "hw.id").as_deref(), Some("GPU-1"));
    assert_eq!(r.time_unix_nano, 1_700_000_060_000 * 1_000_000);
    let observed = UNIX_EPOCH + Duration::from_nanos(r.observed_time_unix_nano);
    assert!(observed >= before && observed <= SystemTime::now());
    assert!(r.trace_id.is_empty() && r.span_id.is_empty() && r.flags == 0);
}

#[tokio::test]
async fn drain_delivers_in_batches_and_acks() {
    let (receiver, mut delivered) = Receiver::new(0);
    let events = (1..=150).map(|i| event(i, AlertState::Firing, AlertSeverity::Warning));
    let outbox = outbox_with(events);
    let failures = Arc::new(AtomicU64::new(0));
    let mut sink = sink(receiver, &outbox, &failures);
    assert_eq!(sink.drain().await.unwrap(), 150);
    assert_eq!(lock(&outbox).depth(), 0);
    let mut sizes = Vec::new();
    let mut last = Vec::new();
    while let Ok(req) = delivered.try_recv() {
        sizes.push(records(&req).len());
        last = ids(&req);
    }
    assert_eq!(sizes, [BATCH, BATCH, 150 - 2 * BATCH]);
    assert_eq!(last.last().map(String::as_str), Some("int:150"));
    assert_eq!(failures.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_failed_export_leaves_the_batch_queued() {
    let (receiver, _delivered) = Receiver::new(1);
    let outbox = outbox_with([event(1, AlertState::Firing, AlertSeverity::Critical)]);
    let mut sink = sink(receiver, &outbox, &Arc::new(AtomicU64::new(0)));
    assert!(sink.drain().await.is_err());
    assert_eq!(lock(&outbox).depth(), 1);
    assert_eq!(sink.drain().await.unwrap(), 1);
    assert_eq!(lock(&outbox).depth(), 0);
}

/// Never answers: the export is given up at the timeout and the batch stays queued.
struct Silent;

impl Deliver for Silent {
    fn deliver(
        &mut self,
        _buf: &mut BytesMut,
    ) -> impl Future<Output = Result<(), SendError>> + Send {
        std::future::pending()
    }
}

#[tokio::test(start_paused = true)]
async fn an_export_without_an_answer_fails_at_the_timeout() {
    let outbox = outbox_with([event(1, AlertState::Firing, AlertSeverity::Critical)]);
    let mut sink = AlertSink::new(
        Silent,
        &resource(),
        outbox.clone(),
        Arc::new(AtomicU64::new(0)),
        Duration::from_secs(1),
        Duration::from_secs(3),
    );
    let started = tokio::time::Instant::now();
    let err = sink.drain().await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert!(err.contains("no answer"), "{err}");
    assert_eq!(lock(&outbox).depth(), 1);
}

#[tokio::test(start_paused = true)]
async fn run_retries_with_backoff_until_the_receiver_is_back() {
    let (receiver, mut delivered) = Receiver::new(5);
    let outbox = outbox_with([]);
    let failures = Arc::new(AtomicU64::new(0));
    let sink = sink(receiver, &outbox, &failures);
    let (wake_tx, wake_rx) = watch::channel(0u64);
    let task = tokio::spawn(sink.run(wake_rx));
    lock(&outbox).push(event(1, AlertState::Firing, AlertSeverity::Critical));
    lock(&outbox).push(event(2, AlertState::Resolved, AlertSeverity::Critical));
    wake_tx.send_replace(1);
    let started = tokio::time::Instant::now();
    let req = delivered.recv().await.unwrap();
    assert_eq!(ids(&req), ["int:1", "int:2"]);
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
