//! The wire encoder held to prost: the same request built as opentelemetry-proto's structs (as
//! the encoder before it did, kept here only) and encoded by prost must be the encoder's bytes,
//! exactly, and those bytes must decode to that request. Over the other tests' snapshots,
//! a large one (multi-byte lengths everywhere) and proptest-generated ones.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use proptest::prelude::*;
use prost::Message;

use super::super::encode::{Encoder, SCOPE};
use super::super::{as_i64, is_integral};
use super::{resource, snapshot, started};
use crate::exporters::resource::{Resource, Value as ResourceValue};
use crate::model::{
    AttrKey, AttrValue, Attrs, InstrumentKind, MetricName, MetricPoint, Snapshot, Value,
};
use crate::sys::time::unix_nanos;

/// The request as structs: one resource, one scope, a metric per name with points in
/// `MetricName` order, points in snapshot order.
fn oracle(resource: &Resource, started: SystemTime, s: &Snapshot) -> ExportMetricsServiceRequest {
    let time = s.timestamp_ms.saturating_mul(1_000_000);
    let metrics = MetricName::ALL
        .iter()
        .filter_map(|&name| {
            let points: Vec<NumberDataPoint> = s
                .points_named(name)
                .map(|p| NumberDataPoint {
                    attributes: attributes(&p.attributes),
                    start_time_unix_nano: unix_nanos(started),
                    time_unix_nano: time,
                    value: Some(number(name, p.value)),
                    ..NumberDataPoint::default()
                })
                .collect();
            (!points.is_empty()).then(|| metric(name, points))
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.to_proto()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE.to_owned(),
                    ..InstrumentationScope::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn metric(name: MetricName, data_points: Vec<NumberDataPoint>) -> Metric {
    let data = match name.kind() {
        InstrumentKind::Gauge => Data::Gauge(Gauge { data_points }),
        kind => Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: kind == InstrumentKind::Counter,
        }),
    };
    Metric {
        name: name.as_str().to_owned(),
        description: name.description().to_owned(),
        unit: name.unit().to_owned(),
        metadata: Vec::new(),
        data: Some(data),
    }
}

/// The value as the SDK's instrument for `name` recorded it: gauges are f64; byte and count
/// sums are integers (counters clamped at 0); other counters are f64 clamped at 0.
fn number(name: MetricName, v: Value) -> number_data_point::Value {
    use number_data_point::Value::{AsDouble, AsInt};
    match (name.kind(), is_integral(name)) {
        (InstrumentKind::Gauge, _) => AsDouble(v.as_f64()),
        (InstrumentKind::UpDownCounter, true) => AsInt(as_i64(v)),
        (InstrumentKind::UpDownCounter, false) => AsDouble(v.as_f64()),
        (InstrumentKind::Counter, true) => AsInt(as_i64(v).max(0)),
        (InstrumentKind::Counter, false) => AsDouble(v.as_f64().max(0.0)),
    }
}

fn attributes(attrs: &Attrs) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.as_str().to_owned(),
            value: Some(AnyValue {
                value: Some(match v {
                    AttrValue::Str(s) => any_value::Value::StringValue(s.as_str().to_owned()),
                    AttrValue::Int(i) => any_value::Value::IntValue(*i),
                }),
            }),
            key_strindex: 0,
        })
        .collect()
}

/// Encodes `s` with `encoder` and holds it to the oracle: the same bytes, decoding to the
/// same request (`decodes`: false where a NaN makes the decoded request unequal to itself).
fn check(
    encoder: &mut Encoder,
    resource: &Resource,
    started: SystemTime,
    s: &Snapshot,
    decodes: bool,
) {
    let mut out = BytesMut::new();
    let n = encoder.encode(s, &mut out);
    assert_eq!(n, s.points.len());
    if s.points.is_empty() {
        assert!(out.is_empty());
        return;
    }
    let want = oracle(resource, started, s);
    assert!(
        out[..] == want.encode_to_vec()[..],
        "bytes differ from prost's for {s:?}"
    );
    if decodes {
        let got = ExportMetricsServiceRequest::decode(&out[..]).expect("a valid request");
        assert_eq!(got, want);
    }
}

#[test]
fn the_other_tests_snapshots_are_prost_s_bytes() {
    let (r, t) = (resource(), started());
    let mut encoder = Encoder::new(&r, t);
    for s in [
        snapshot(1_700_000_123_456),
        snapshot(0),
        Snapshot::default(),
    ] {
        check(&mut encoder, &r, t, &s, true);
    }
    let every_name = Snapshot {
        timestamp_ms: 5,
        collectors: Vec::new(),
        points: MetricName::ALL
            .iter()
            .map(|n| MetricPoint::new(*n, Attrs::new(), 1u32))
            .collect(),
    };
    check(&mut encoder, &r, t, &every_name, true);
}

#[test]
fn a_start_at_the_epoch_is_omitted_as_prost_omits_a_zero() {
    let r = resource();
    check(
        &mut Encoder::new(&r, UNIX_EPOCH),
        &r,
        UNIX_EPOCH,
        &snapshot(0),
        true,
    );
    check(
        &mut Encoder::new(&r, UNIX_EPOCH),
        &r,
        UNIX_EPOCH,
        &snapshot(7),
        true,
    );
}

#[test]
fn special_values_are_prost_s_bytes() {
    let (r, t) = (resource(), started());
    let values = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        f64::MIN_POSITIVE / 2.0,
        -1e300,
    ];
    let mut points = Vec::new();
    for name in MetricName::ALL {
        for v in values {
            points.push(MetricPoint::new(*name, Attrs::new(), v));
        }
        for v in [i64::MIN, -1, 0, i64::MAX] {
            let a = Attrs::new().with(AttrKey::ProcessPid, v);
            points.push(MetricPoint::new(*name, a, v));
        }
    }
    let s = Snapshot {
        timestamp_ms: u64::MAX,
        collectors: Vec::new(),
        points,
    };
    check(&mut Encoder::new(&r, t), &r, t, &s, false);
}

/// Thousands of points with long attribute values: two- and three-byte lengths at every level.
#[test]
fn a_large_snapshot_is_prost_s_bytes() {
    let (r, t) = (resource(), started());
    let long = "x".repeat(300);
    let mut points = Vec::new();
    for c in 0..2000u32 {
        let a = Attrs::new()
            .with(AttrKey::CpuLogicalNumber, c)
            .with(AttrKey::CpuMode, "user")
            .with(AttrKey::SystemDevice, long.clone());
        points.push(MetricPoint::new(MetricName::SystemCpuTime, a, 1.5));
        points.push(MetricPoint::new(
            MetricName::SystemMemoryUsage,
            Attrs::new().with(AttrKey::SystemMemoryState, ""),
            u64::from(c) << 40,
        ));
    }
    let s = Snapshot {
        timestamp_ms: 1_700_000_000_000,
        collectors: Vec::new(),
        points,
    };
    check(&mut Encoder::new(&r, t), &r, t, &s, true);
}

fn attr_value() -> impl Strategy<Value = AttrValue> {
    prop_oneof![
        any::<i64>().prop_map(AttrValue::from),
        Just(AttrValue::from("")),
        "\\PC{0,12}".prop_map(AttrValue::from),
        "[a-z]{100,200}".prop_map(AttrValue::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    use proptest::num::f64::{INFINITE, NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        (-5i64..5).prop_map(Value::Int),
        (POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO | INFINITE).prop_map(Value::Float),
        (-3.0f64..3.0).prop_map(Value::Float),
    ]
}

fn point() -> impl Strategy<Value = MetricPoint> {
    let names = MetricName::ALL.len();
    let keys = AttrKey::ALL.len();
    (
        0..names,
        proptest::collection::vec((0..keys, attr_value()), 0..8),
        value(),
    )
        .prop_map(|(name, attrs, value)| {
            let attrs = attrs
                .into_iter()
                .fold(Attrs::new(), |a, (k, v)| a.with(AttrKey::ALL[k], v));
            MetricPoint::new(MetricName::ALL[name], attrs, value)
        })
}

fn snapshot_strategy() -> impl Strategy<Value = Snapshot> {
    (
        prop_oneof![
            Just(0u64),
            any::<u64>(),
            1_600_000_000_000u64..1_900_000_000_000
        ],
        proptest::collection::vec(point(), 0..80),
    )
        .prop_map(|(timestamp_ms, points)| Snapshot {
            timestamp_ms,
            collectors: Vec::new(),
            points,
        })
}

fn resource_strategy() -> impl Strategy<Value = Resource> {
    proptest::collection::vec(
        (
            "[a-z.]{0,12}",
            prop_oneof![
                "\\PC{0,20}".prop_map(ResourceValue::Str),
                any::<bool>().prop_map(ResourceValue::Bool),
            ],
        ),
        0..6,
    )
    .prop_map(Resource::new)
}

proptest! {
    /// One encoder over a run of snapshots (its reused buffers must carry nothing over): each
    /// request is prost's bytes and decodes to the oracle's request.
    #[test]
    fn every_snapshot_is_prost_s_bytes(
        resource in resource_strategy(),
        start in prop_oneof![Just(0u64), any::<u64>()],
        snapshots in proptest::collection::vec(snapshot_strategy(), 1..5),
    ) {
        let started = UNIX_EPOCH + Duration::from_nanos(start);
        let mut encoder = Encoder::new(&resource, started);
        for s in &snapshots {
            check(&mut encoder, &resource, started, s, true);
        }
    }
}
