use super::*;
use crate::model::{AttrKey, Attrs};

fn identity() -> Arc<Identity> {
    Arc::new(Identity::from_resource(&[
        ("service.name".into(), "hostwarden".into()),
        ("service.instance.id".into(), "3f1c".into()),
        ("host.name".into(), "gpu-box".into()),
    ]))
}

fn snapshot() -> Arc<Snapshot> {
    Arc::new(Snapshot {
        timestamp_ms: 1,
        collectors: Vec::new(),
        points: vec![
            MetricPoint::new(
                MetricName::SystemMemoryLimit,
                Attrs::new(),
                8_000_000_000u64,
            ),
            MetricPoint::new(
                MetricName::SystemCpuUtilization,
                Attrs::new().with(AttrKey::CpuMode, "user"),
                0.25,
            ),
            MetricPoint::new(
                MetricName::SystemCpuUtilization,
                Attrs::new().with(AttrKey::CpuMode, "idle"),
                0.5,
            ),
            MetricPoint::new(MetricName::HwErrors, Attrs::new(), 3u64),
        ],
    })
}

fn text(format: Format) -> String {
    String::from_utf8(encode(snapshot(), identity(), format).to_vec()).unwrap()
}

#[test]
fn the_text_format_has_the_collectors_names_and_labels() {
    let t = text(Format::Text);
    for line in [
        "# TYPE target_info gauge",
        r#"target_info{job="hostwarden",instance="3f1c",host_name="gpu-box"} 1"#,
        "# TYPE system_memory_limit_bytes gauge",
        r#"system_memory_limit_bytes{job="hostwarden",instance="3f1c"} 8000000000"#,
        "# TYPE system_cpu_utilization_ratio gauge",
        r#"system_cpu_utilization_ratio{cpu_mode="user",job="hostwarden",instance="3f1c"} 0.25"#,
        r#"system_cpu_utilization_ratio{cpu_mode="idle",job="hostwarden",instance="3f1c"} 0.5"#,
        "# TYPE hw_errors_total counter",
        r#"hw_errors_total{job="hostwarden",instance="3f1c"} 3"#,
    ] {
        assert!(t.lines().any(|l| l == line), "no line {line:?} in\n{t}");
    }
    assert!(!t.contains("# EOF"), "{t}");
    // One family per name: the two utilisation points are adjacent under one TYPE line.
    assert_eq!(t.matches("# TYPE system_cpu_utilization_ratio").count(), 1);
}

#[test]
fn openmetrics_has_units_counter_families_and_eof() {
    let t = text(Format::OpenMetrics);
    for line in [
        "# TYPE target info",
        "# TYPE system_memory_limit_bytes gauge",
        "# UNIT system_memory_limit_bytes bytes",
        "# TYPE hw_errors counter",
        r#"hw_errors_total{job="hostwarden",instance="3f1c"} 3"#,
    ] {
        assert!(t.lines().any(|l| l == line), "no line {line:?} in\n{t}");
    }
    assert!(t.ends_with("# EOF\n"), "{t}");
}

#[test]
fn accept_picks_the_format() {
    // What Prometheus 2.42 sends by default.
    let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::from_accept(Some(prom)), Format::OpenMetrics);
    assert_eq!(Format::from_accept(Some("text/plain")), Format::Text);
    assert_eq!(Format::from_accept(Some("*/*")), Format::Text);
    assert_eq!(Format::from_accept(None), Format::Text);
}

#[test]
fn identity_follows_the_collector() {
    let id = Identity::from_resource(&[
        ("service.name".into(), "hostwarden".into()),
        ("service.namespace".into(), "lab".into()),
        ("service.instance.id".into(), "abc".into()),
        ("host.name".into(), "n1".into()),
        ("9.odd-key".into(), "v".into()),
    ]);
    assert_eq!(id.job, "lab/hostwarden");
    assert_eq!(id.instance.as_deref(), Some("abc"));
    assert_eq!(
        id.info,
        vec![
            ("host_name".to_owned(), "n1".to_owned()),
            ("key_9_odd_key".to_owned(), "v".to_owned())
        ]
    );
}

#[test]
fn a_snapshot_is_encoded_once_per_format() {
    let cache = Cache::default();
    let (s, id) = (snapshot(), identity());
    let a = cache.get(Arc::clone(&s), &id, Format::Text);
    let b = cache.get(Arc::clone(&s), &id, Format::Text);
    assert_eq!(a.as_ptr(), b.as_ptr(), "the second scrape re-encoded");
    let om = cache.get(Arc::clone(&s), &id, Format::OpenMetrics);
    assert_ne!(a, om);
    let next = cache.get(snapshot(), &id, Format::Text);
    assert_ne!(
        a.as_ptr(),
        next.as_ptr(),
        "a new snapshot served stale bytes"
    );
    assert_eq!(a, next);
}
