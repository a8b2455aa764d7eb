use super::*;
use crate::model::{AttrKey, MetricPoint};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

fn snapshot() -> Snapshot {
    Snapshot {
        timestamp_ms: 1,
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
            MetricPoint::new(MetricName::SystemCpuLinuxPressureTotal, Attrs::new(), 1.5),
            MetricPoint::new(MetricName::SystemMemoryLinuxOomKills, Attrs::new(), 2u64),
        ],
    }
}

/// (name, unit, kind letter, value, attributes) of every exported point.
fn exported(
    exporter: &InMemoryMetricExporter,
) -> Vec<(String, String, &'static str, f64, Vec<String>)> {
    let mut out = Vec::new();
    let all = exporter.get_finished_metrics().unwrap();
    let last = all.last().expect("one export");
    for scope in last.scope_metrics() {
        for m in scope.metrics() {
            let mut push = |kind, v: f64, attrs: Vec<String>| {
                out.push((m.name().to_owned(), m.unit().to_owned(), kind, v, attrs))
            };
            let attrs = |it: &mut dyn Iterator<Item = &KeyValue>| {
                let mut v: Vec<String> = it.map(|kv| format!("{}={}", kv.key, kv.value)).collect();
                v.sort();
                v
            };
            match m.data() {
                AggregatedMetrics::F64(MetricData::Gauge(g)) => {
                    for p in g.data_points() {
                        push("gauge", p.value(), attrs(&mut p.attributes()));
                    }
                }
                AggregatedMetrics::F64(MetricData::Sum(s)) => {
                    let kind = if s.is_monotonic() {
                        "counter"
                    } else {
                        "updown"
                    };
                    for p in s.data_points() {
                        push(kind, p.value(), attrs(&mut p.attributes()));
                    }
                }
                AggregatedMetrics::I64(MetricData::Sum(s)) => {
                    assert!(!s.is_monotonic());
                    for p in s.data_points() {
                        push("updown", p.value() as f64, attrs(&mut p.attributes()));
                    }
                }
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    assert!(s.is_monotonic());
                    for p in s.data_points() {
                        push("counter", p.value() as f64, attrs(&mut p.attributes()));
                    }
                }
                other => panic!("unexpected data for {}: {other:?}", m.name()),
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.4).cmp(&(&b.0, &b.4)));
    out
}

#[test]
fn every_point_is_exported_with_its_name_unit_kind_and_attributes() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let _instruments = register(&provider.meter("test"), &rx);
    tx.send_replace(Arc::new(snapshot()));
    provider.force_flush().unwrap();
    let got = exported(&exporter);
    let s = |x: &str| x.to_owned();
    assert_eq!(
        got,
        vec![
            (
                s("system.cpu.linux.pressure.total"),
                s("s"),
                "counter",
                1.5,
                vec![]
            ),
            (
                s("system.cpu.time"),
                s("s"),
                "counter",
                0.5,
                vec![s("cpu.logical_number=1"), s("cpu.mode=user")]
            ),
            (
                s("system.cpu.utilization"),
                s("1"),
                "gauge",
                0.25,
                vec![s("cpu.mode=idle")]
            ),
            (s("system.memory.limit"), s("By"), "updown", 8e9, vec![]),
            (
                s("system.memory.linux.oom_kills"),
                s("{kill}"),
                "counter",
                2.0,
                vec![]
            ),
            (
                s("system.memory.usage"),
                s("By"),
                "updown",
                123.0,
                vec![s("system.memory.state=used")]
            ),
        ]
    );
    provider.shutdown().unwrap();
}

#[test]
fn an_empty_snapshot_exports_nothing_and_does_not_panic() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let _instruments = register(&provider.meter("test"), &rx);
    provider.force_flush().unwrap();
    let all = exporter.get_finished_metrics().unwrap();
    let points: usize = all
        .iter()
        .flat_map(|rm| rm.scope_metrics())
        .map(|s| s.metrics().count())
        .sum();
    assert_eq!(points, 0);
}

#[test]
fn every_name_registers_without_a_validation_error() {
    // Name, unit and description limits are checked by the SDK at registration; an invalid
    // one would be replaced by a no-op instrument, so export one point of each and count them.
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let _instruments = register(&provider.meter("test"), &rx);
    let points = MetricName::ALL
        .iter()
        .map(|n| MetricPoint::new(*n, Attrs::new(), 1u32))
        .collect();
    tx.send_replace(Arc::new(Snapshot {
        points,
        ..Snapshot::default()
    }));
    provider.force_flush().unwrap();
    let names: std::collections::BTreeSet<String> =
        exported(&exporter).into_iter().map(|p| p.0).collect();
    assert_eq!(names.len(), MetricName::ALL.len());
}

#[derive(Debug)]
struct Failing;

impl PushMetricExporter for Failing {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Err(OTelSdkError::InternalFailure("connection refused".into()))
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

#[test]
fn failed_exports_are_counted() {
    let failures = Arc::new(AtomicU64::new(0));
    let provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(CountingExporter::new(Failing, failures.clone())).build(),
        )
        .build();
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let _instruments = register(&provider.meter("test"), &rx);
    tx.send_replace(Arc::new(snapshot()));
    assert!(provider.force_flush().is_err());
    assert!(provider.force_flush().is_err());
    assert_eq!(failures.load(Ordering::Relaxed), 2);
}
