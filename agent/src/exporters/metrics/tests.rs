use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Read;
use std::time::UNIX_EPOCH;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, metric::Data, number_data_point,
};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::exporters::diagnosis::TlsFailureCounts;
use crate::exporters::http_client::{DiagnosedClient, client, grpc_client};
use crate::exporters::otlp::send::Signal;
use crate::model::{AttrKey, Attrs, InstrumentKind, MetricPoint};
use crate::sys::http::Client;

mod prost_oracle;

const STARTED_NANOS: u64 = 1_700_000_000_000_000_000;

fn started() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(STARTED_NANOS)
}

fn resource() -> Resource {
    Resource::new([
        ("service.name".to_owned(), "hostwarden".into()),
        ("host.wsl".to_owned(), false.into()),
    ])
}

fn snapshot(timestamp_ms: u64) -> Snapshot {
    Snapshot {
        timestamp_ms,
        collectors: Vec::new(),
        points: vec![
            MetricPoint::new(
                MetricName::SystemMemoryLimit,
                Attrs::new(),
                8_000_000_000u64,
            ),
            MetricPoint::new(
                MetricName::SystemMemoryUsage,
                Attrs::new().with(AttrKey::SystemMemoryState, "used"),
                123u64,
            ),
            MetricPoint::new(
                MetricName::SystemCpuUtilization,
                Attrs::new().with(AttrKey::CpuMode, "idle"),
                0.25,
            ),
            MetricPoint::new(
                MetricName::SystemCpuTime,
                Attrs::new()
                    .with(AttrKey::CpuMode, "user")
                    .with(AttrKey::CpuLogicalNumber, 1u32),
                0.5,
            ),
            MetricPoint::new(
                MetricName::SystemCpuTime,
                Attrs::new()
                    .with(AttrKey::CpuMode, "system")
                    .with(AttrKey::CpuLogicalNumber, 1u32),
                0.25,
            ),
            MetricPoint::new(MetricName::SystemCpuLinuxPressureTotal, Attrs::new(), 1.5),
            MetricPoint::new(MetricName::SystemMemoryLinuxOomKills, Attrs::new(), 2u64),
        ],
    }
}

fn decode(bytes: &[u8]) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest::decode(bytes).expect("a valid ExportMetricsServiceRequest")
}

fn encode(encoder: &mut Encoder, s: &Snapshot) -> (usize, ExportMetricsServiceRequest) {
    let mut buf = BytesMut::new();
    let n = encoder.encode(s, &mut buf);
    (n, decode(&buf))
}

fn metrics(req: &ExportMetricsServiceRequest) -> BTreeMap<String, Metric> {
    assert_eq!(req.resource_metrics.len(), 1);
    assert_eq!(req.resource_metrics[0].scope_metrics.len(), 1);
    req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| (m.name.clone(), m.clone()))
        .collect()
}

/// "key=value" of each attribute, in wire order.
fn attrs(p: &NumberDataPoint) -> Vec<String> {
    p.attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => format!("int:{i}"),
                other => panic!("unexpected attribute value {other:?}"),
            };
            format!("{}={v}", kv.key)
        })
        .collect()
}

/// (monotonic, points) of a cumulative sum; panics on anything else.
fn sum(m: &Metric) -> (bool, &[NumberDataPoint]) {
    match &m.data {
        Some(Data::Sum(s)) => {
            assert_eq!(
                s.aggregation_temporality,
                AggregationTemporality::Cumulative as i32,
                "{}",
                m.name
            );
            (s.is_monotonic, &s.data_points)
        }
        other => panic!("{} is not a sum: {other:?}", m.name),
    }
}

fn gauge(m: &Metric) -> &[NumberDataPoint] {
    match &m.data {
        Some(Data::Gauge(g)) => &g.data_points,
        other => panic!("{} is not a gauge: {other:?}", m.name),
    }
}

use number_data_point::Value::{AsDouble, AsInt};

#[test]
fn a_snapshot_becomes_one_request_with_each_metric_s_kind_values_and_attributes() {
    let mut encoder = Encoder::new(&resource(), started());
    let (n, req) = encode(&mut encoder, &snapshot(1_700_000_123_456));
    assert_eq!(n, 7);
    let rm = &req.resource_metrics[0];
    let res = rm.resource.as_ref().unwrap();
    let res_attrs: BTreeMap<_, _> = res
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone().unwrap().value.unwrap()))
        .collect();
    assert_eq!(
        res_attrs["service.name"],
        any_value::Value::StringValue("hostwarden".into())
    );
    assert_eq!(res_attrs["host.wsl"], any_value::Value::BoolValue(false));
    let scope = rm.scope_metrics[0].scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("hostwarden", "")
    );

    let m = metrics(&req);
    assert_eq!(m.len(), 6, "{:?}", m.keys());
    let time = 1_700_000_123_456 * 1_000_000;
    for metric in m.values() {
        let name = MetricName::from_name(&metric.name).unwrap();
        assert_eq!(metric.unit, name.unit());
        assert_eq!(metric.description, name.description());
        let points = match &metric.data {
            Some(Data::Gauge(g)) => &g.data_points,
            Some(Data::Sum(s)) => &s.data_points,
            other => panic!("{other:?}"),
        };
        for p in points {
            assert_eq!(p.time_unix_nano, time, "{}", metric.name);
            assert_eq!(p.start_time_unix_nano, STARTED_NANOS, "{}", metric.name);
        }
    }

    // Up-down counters in bytes: non-monotonic integer sums.
    let (mono, pts) = sum(&m["system.memory.limit"]);
    assert!(!mono);
    assert_eq!(pts[0].value, Some(AsInt(8_000_000_000)));
    assert!(pts[0].attributes.is_empty());
    let (mono, pts) = sum(&m["system.memory.usage"]);
    assert!(!mono);
    assert_eq!(pts[0].value, Some(AsInt(123)));
    assert_eq!(attrs(&pts[0]), ["system.memory.state=used"]);
    // A ratio gauge: double.
    let pts = gauge(&m["system.cpu.utilization"]);
    assert_eq!(pts[0].value, Some(AsDouble(0.25)));
    assert_eq!(attrs(&pts[0]), ["cpu.mode=idle"]);
    // Counters in seconds: monotonic double sums, one point per snapshot point, in order.
    let (mono, pts) = sum(&m["system.cpu.time"]);
    assert!(mono);
    assert_eq!(pts.len(), 2);
    assert_eq!(pts[0].value, Some(AsDouble(0.5)));
    assert_eq!(
        attrs(&pts[0]),
        ["cpu.logical_number=int:1", "cpu.mode=user"]
    );
    assert_eq!(pts[1].value, Some(AsDouble(0.25)));
    assert_eq!(
        attrs(&pts[1]),
        ["cpu.logical_number=int:1", "cpu.mode=system"]
    );
    let (mono, pts) = sum(&m["system.cpu.linux.pressure.total"]);
    assert!(mono);
    assert_eq!(pts[0].value, Some(AsDouble(1.5)));
    // A count counter: monotonic integer sum.
    let (mono, pts) = sum(&m["system.memory.linux.oom_kills"]);
    assert!(mono);
    assert_eq!(pts[0].value, Some(AsInt(2)));
}

#[test]
fn values_follow_the_instruments_the_sdk_had() {
    let points = vec![
        // A negative float counter (a reset read mid-way) is clamped to 0, as before.
        MetricPoint::new(MetricName::SystemCpuLinuxPressureTotal, Attrs::new(), -0.5),
        // An integral counter read as a float is rounded; a negative one becomes 0.
        MetricPoint::new(MetricName::SystemMemoryLinuxOomKills, Attrs::new(), -3.0),
        // An integral up-down counter given a float is rounded, sign kept.
        MetricPoint::new(MetricName::SystemMemoryLimit, Attrs::new(), -2.6),
        // A gauge given an integer is a double.
        MetricPoint::new(MetricName::SystemCpuUtilization, Attrs::new(), 1u32),
    ];
    let s = Snapshot {
        points,
        ..Snapshot::default()
    };
    let (_, req) = encode(&mut Encoder::new(&resource(), started()), &s);
    let m = metrics(&req);
    assert_eq!(
        sum(&m["system.cpu.linux.pressure.total"]).1[0].value,
        Some(AsDouble(0.0))
    );
    assert_eq!(
        sum(&m["system.memory.linux.oom_kills"]).1[0].value,
        Some(AsInt(0))
    );
    assert_eq!(sum(&m["system.memory.limit"]).1[0].value, Some(AsInt(-3)));
    assert_eq!(
        gauge(&m["system.cpu.utilization"])[0].value,
        Some(AsDouble(1.0))
    );
}

#[test]
fn an_empty_snapshot_encodes_nothing() {
    let mut buf = BytesMut::from(&b"stale"[..]);
    let n = Encoder::new(&resource(), started()).encode(&Snapshot::default(), &mut buf);
    assert_eq!(n, 0);
    assert!(buf.is_empty());
}

#[test]
fn every_name_encodes_once_with_its_registry_entry() {
    let points = MetricName::ALL
        .iter()
        .map(|n| MetricPoint::new(*n, Attrs::new(), 1u32))
        .collect();
    let s = Snapshot {
        points,
        ..Snapshot::default()
    };
    let (n, req) = encode(&mut Encoder::new(&resource(), started()), &s);
    assert_eq!(n, MetricName::ALL.len());
    let m = metrics(&req);
    assert_eq!(m.len(), MetricName::ALL.len());
    for name in MetricName::ALL {
        let metric = &m[name.as_str()];
        let kind = match &metric.data {
            Some(Data::Gauge(_)) => InstrumentKind::Gauge,
            Some(Data::Sum(s)) if s.is_monotonic => InstrumentKind::Counter,
            Some(Data::Sum(_)) => InstrumentKind::UpDownCounter,
            other => panic!("{other:?}"),
        };
        assert_eq!(kind, name.kind(), "{}", name.as_str());
        assert!(!metric.description.is_empty(), "{}", name.as_str());
    }
}

#[test]
fn reused_buffers_carry_nothing_over_to_the_next_export() {
    let mut encoder = Encoder::new(&resource(), started());
    encode(&mut encoder, &snapshot(1));
    // Fewer points, other attributes, an int where a string was, a metric gone.
    let s = Snapshot {
        timestamp_ms: 2,
        collectors: Vec::new(),
        points: vec![MetricPoint::new(
            MetricName::SystemCpuTime,
            Attrs::new().with(AttrKey::CpuMode, "idle"),
            7.0,
        )],
    };
    let (n, req) = encode(&mut encoder, &s);
    assert_eq!(n, 1);
    let m = metrics(&req);
    assert_eq!(m.keys().collect::<Vec<_>>(), ["system.cpu.time"]);
    let (_, pts) = sum(&m["system.cpu.time"]);
    assert_eq!(pts.len(), 1);
    assert_eq!(attrs(&pts[0]), ["cpu.mode=idle"]);
    assert_eq!(pts[0].time_unix_nano, 2_000_000);
    // And back: the earlier shape again, exactly.
    let (n, again) = encode(&mut encoder, &snapshot(1));
    let (_, first) = encode(&mut Encoder::new(&resource(), started()), &snapshot(1));
    assert_eq!(n, 7);
    assert_eq!(again, first);
}

/// What the test receiver saw of one request.
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// The test receivers' answer body: empty, or gRPC's frames.
type Answer = Response<BoxBody<Bytes, Infallible>>;

/// A receiver on 127.0.0.1:0, speaking HTTP/1.1 or (`h2`) h2 with prior knowledge as gRPC over
/// http:// does: records each request (checking its path) and answers it with `answer()`.
/// Returns the base URL.
async fn serve(
    h2: bool,
    path: &'static str,
    answer: impl Fn() -> Answer + Clone + Send + Sync + 'static,
) -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (tx, answer) = (tx.clone(), answer.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<Incoming>| {
                    let (tx, answer) = (tx.clone(), answer.clone());
                    async move {
                        assert_eq!(req.uri().path(), path);
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        tx.send(Received { headers, body }).unwrap();
                        Ok::<_, Infallible>(answer())
                    }
                });
                let io = TokioIo::new(stream);
                let _served = if h2 {
                    http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await
                } else {
                    http1::Builder::new().serve_connection(io, service).await
                };
            });
        }
    });
    (url, rx)
}

/// An http/protobuf receiver answering every request with `status`; the signal URL.
async fn receiver(status: StatusCode) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (base, rx) = serve(false, "/v1/metrics", move || {
        let mut r = Response::new(Full::new(Bytes::new()).boxed());
        *r.status_mut() = status;
        r
    })
    .await;
    (format!("{base}/v1/metrics"), rx)
}

/// A client as the pipeline builds it (diagnosed), with the test's `x-tenant` header.
fn diagnosed(client: Client) -> (DiagnosedClient, Arc<Diagnosis>, HeaderMap) {
    let diagnosis = Arc::new(Diagnosis::new(
        "metrics",
        Arc::new(TlsFailureCounts::default()),
    ));
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", HeaderValue::from_static("lab"));
    (
        DiagnosedClient::new(client, diagnosis.clone()),
        diagnosis,
        headers,
    )
}

fn http_export(url: &str, gzip: bool, snapshots: Snapshots) -> (MetricExport, Arc<AtomicU64>) {
    let (client, diagnosis, headers) = diagnosed(client(None, Duration::from_secs(5)).unwrap());
    let sender = Sender::http(Signal::Metrics, client, url.parse().unwrap(), headers, gzip);
    let failures = Arc::new(AtomicU64::new(0));
    let export = MetricExport::new(
        &resource(),
        sender,
        snapshots,
        Duration::from_secs(5),
        failures.clone(),
    )
    .with_diagnosis(diagnosis);
    (export, failures)
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn http_protobuf_posts_the_gzipped_request_once_per_new_snapshot() {
    let (url, mut seen) = receiver(StatusCode::OK).await;
    let (tx, rx) = watch::channel(Arc::new(snapshot(10)));
    let (mut export, failures) = http_export(&url, true, rx);

    assert_eq!(
        export.export(Duration::from_secs(5)).await,
        Outcome::Delivered(7)
    );
    let got = seen.recv().await.unwrap();
    assert_eq!(got.headers["content-type"], "application/x-protobuf");
    assert_eq!(got.headers["content-encoding"], "gzip");
    assert_eq!(got.headers["x-tenant"], "lab");
    let req = decode(&gunzip(&got.body));
    assert_eq!(metrics(&req).len(), 6);

    // No new tick: nothing is sent again.
    assert_eq!(
        export.export(Duration::from_secs(5)).await,
        Outcome::Nothing
    );
    // A new tick: its points, with its timestamp.
    tx.send_replace(Arc::new(snapshot(20)));
    assert_eq!(
        export.export(Duration::from_secs(5)).await,
        Outcome::Delivered(7)
    );
    let req = decode(&gunzip(&seen.recv().await.unwrap().body));
    let m = metrics(&req);
    assert_eq!(sum(&m["system.cpu.time"]).1[0].time_unix_nano, 20_000_000);
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(seen.try_recv().is_err(), "one request per export");
}

#[tokio::test]
async fn a_refused_export_is_counted_and_the_snapshot_sent_again_next_interval() {
    let (url, mut seen) = receiver(StatusCode::SERVICE_UNAVAILABLE).await;
    let (_tx, rx) = watch::channel(Arc::new(snapshot(10)));
    let (mut export, failures) = http_export(&url, false, rx);
    assert_eq!(export.export(Duration::from_secs(5)).await, Outcome::Failed);
    assert_eq!(export.export(Duration::from_secs(5)).await, Outcome::Failed);
    assert_eq!(failures.load(Ordering::Relaxed), 2);
    // Uncompressed when gzip is off.
    let got = seen.recv().await.unwrap();
    assert!(got.headers.get("content-encoding").is_none());
    assert_eq!(metrics(&decode(&got.body)).len(), 6);
    assert!(seen.recv().await.is_some());
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_given_up_on_at_the_timeout() {
    // Accepts the connection, never reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/metrics", listener.local_addr().unwrap());
    let (_tx, rx) = watch::channel(Arc::new(snapshot(10)));
    let (mut export, failures) = http_export(&url, false, rx);
    let held = tokio::spawn(async move {
        let conn = listener.accept().await;
        std::future::pending::<()>().await;
        drop(conn);
    });
    let outcome = export.export(Duration::from_millis(200)).await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(failures.load(Ordering::Relaxed), 1);
    held.abort();
}

#[tokio::test]
async fn a_due_export_goes_out_with_each_tick_s_snapshot() {
    let (url, mut seen) = receiver(StatusCode::OK).await;
    let (tx, rx) = watch::channel(Arc::new(snapshot(10)));
    let (export, _failures) = http_export(&url, false, rx);
    let (stop, stopped) = oneshot::channel();
    let every = Duration::from_millis(600);
    let task = tokio::spawn(export.run(every, every, stopped));
    // Ticks out of phase with the export's schedule (the first a third of an interval before
    // it is due): each one's snapshot is exported at once, none waits for a timer.
    tokio::time::sleep(every * 2 / 3).await;
    for t in 11..14u64 {
        let published = Instant::now();
        tx.send_replace(Arc::new(snapshot(t)));
        let got = tokio::time::timeout(every, seen.recv()).await;
        let got = got
            .expect("exported with the tick, not a timer later")
            .unwrap();
        // On its own schedule it would have come a third of an interval after the tick.
        assert!(published.elapsed() < every / 6, "tick {t}");
        let req = decode(&got.body);
        let ts = sum(&metrics(&req)["system.cpu.time"]).1[0].time_unix_nano;
        assert_eq!(ts, t * 1_000_000, "tick {t}'s own snapshot");
        tokio::time::sleep(every.saturating_sub(published.elapsed())).await;
    }
    // No tick: nothing new, nothing sent.
    assert!(
        tokio::time::timeout(every * 2, seen.recv()).await.is_err(),
        "no export without a new snapshot once delivered"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn stopping_sends_the_last_snapshot_once() {
    let (url, mut seen) = receiver(StatusCode::OK).await;
    let (_tx, rx) = watch::channel(Arc::new(snapshot(10)));
    let (export, failures) = http_export(&url, false, rx);
    let (stop, stopped) = oneshot::channel();
    // An interval far beyond the test: only the final export can send.
    let task = tokio::spawn(export.run(Duration::from_secs(3600), Duration::from_secs(1), stopped));
    stop.send(()).unwrap();
    task.await.unwrap();
    let req = decode(&seen.recv().await.unwrap().body);
    assert_eq!(metrics(&req).len(), 6);
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(seen.try_recv().is_err(), "one final export");
}

/// A gRPC receiver answering every call with an empty export response and `grpc-status:
/// code`, the status in the trailers as a gRPC server sends it.
async fn grpc_receiver(code: &'static str) -> (String, mpsc::UnboundedReceiver<Received>) {
    let path = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    serve(true, path, move || {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(code));
        trailers.insert("grpc-message", HeaderValue::from_static("receiver%20full"));
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
            Ok(Frame::trailers(trailers)),
        ];
        let mut r = Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        r
    })
    .await
}

fn grpc_sender(url: &str) -> Sender {
    let (client, _, headers) = diagnosed(grpc_client(None, Duration::from_secs(5)).unwrap());
    Sender::grpc(Signal::Metrics, client, url.parse().unwrap(), headers, true).unwrap()
}

fn grpc_export(url: &str, snapshots: Snapshots) -> (MetricExport, Arc<AtomicU64>) {
    let failures = Arc::new(AtomicU64::new(0));
    let export = MetricExport::new(
        &resource(),
        grpc_sender(url),
        snapshots,
        Duration::from_secs(5),
        failures.clone(),
    );
    (export, failures)
}

#[tokio::test]
async fn grpc_sends_one_gzipped_message_and_reads_the_status_from_the_trailers() {
    let (url, mut seen) = grpc_receiver("0").await;
    let (_tx, rx) = watch::channel(Arc::new(snapshot(10)));
    let (mut export, failures) = grpc_export(&url, rx);
    assert_eq!(
        export.export(Duration::from_secs(5)).await,
        Outcome::Delivered(7)
    );
    let got = seen.recv().await.unwrap();
    assert_eq!(got.headers["content-type"], "application/grpc");
    assert_eq!(got.headers["te"], "trailers");
    assert_eq!(got.headers["grpc-encoding"], "gzip");
    assert_eq!(got.headers["x-tenant"], "lab");
    // One message: the compressed flag, its length, then the gzipped request.
    let (prefix, message) = got.body.split_at(5);
    assert_eq!(prefix[0], 1);
    assert_eq!(
        u32::from_be_bytes(prefix[1..5].try_into().unwrap()) as usize,
        message.len()
    );
    assert_eq!(metrics(&decode(&gunzip(message))).len(), 6);
    assert_eq!(failures.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_grpc_status_other_than_ok_is_a_counted_failure_in_its_own_words() {
    let (url, mut seen) = grpc_receiver("14").await;
    let e = grpc_sender(&url)
        .send(&mut BytesMut::from(&b"\x0a\x00"[..]))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the gRPC server returned Unavailable: receiver full"
    );
    let (_tx, rx) = watch::channel(Arc::new(snapshot(10)));
    let (mut export, failures) = grpc_export(&url, rx);
    assert_eq!(export.export(Duration::from_secs(5)).await, Outcome::Failed);
    assert_eq!(failures.load(Ordering::Relaxed), 1);
    assert_eq!(seen.recv().await.map(|r| r.body.len() > 5), Some(true));
}

#[tokio::test]
async fn a_grpc_receiver_that_is_not_there_is_a_counted_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_tx, rx) = watch::channel(Arc::new(snapshot(10)));
    let (mut export, failures) = grpc_export(&format!("http://127.0.0.1:{port}"), rx);
    assert_eq!(export.export(Duration::from_secs(5)).await, Outcome::Failed);
    assert_eq!(failures.load(Ordering::Relaxed), 1);
}
