//! A snapshot as an OTLP `ExportMetricsServiceRequest`, written as protobuf bytes straight from
//! the snapshot: one resource, one scope, one `Metric` per `MetricName` with points (in
//! `MetricName` order; its points in snapshot order), each point a `NumberDataPoint`.
//!
//! Filling opentelemetry-proto's structs and calling prost's `encode` cost a visible share of
//! the tick (issue 20): prost sizes each nested message again at every level above it
//! (request > resource > scope > metric > gauge/sum > point > attribute > value), and every
//! attribute string was copied into the structs first. Here a sizing pass records each message's
//! length once, in the order the messages are written, and a writing pass reads them back;
//! nothing is copied but into the output, and in a steady state nothing is allocated.
//!
//! The bytes are those prost writes for the same request: fields in ascending number, proto3
//! defaults (empty strings, zero times) omitted, the oneof values (the point's value, the
//! attribute's value) written even when zero or empty. The parts that never change (resource,
//! scope, each metric's name, description and unit, a sum's temporality and monotonicity) are
//! encoded by prost once, here in `new`. The tests hold every request to prost's encoding of
//! the same structs, byte for byte.

use std::time::SystemTime;

use bytes::{BufMut, BytesMut};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, ResourceMetrics, ScopeMetrics, Sum,
};
use prost::Message;

use super::{as_i64, is_integral};
use crate::exporters::otlp::wire::{
    FIXED64_FIELD_LEN, encode_varint, fixed64_tag, len_field_len, len_tag, put_fixed64, put_len,
    put_string, string_field_len, varint_len, varint_tag,
};
use crate::exporters::resource::Resource;
use crate::model::{AttrValue, InstrumentKind, MetricName, MetricPoint, Snapshot, Value};
use crate::sys::time::unix_nanos;

/// The instrumentation scope of every metric (the name the SDK meter had; no version).
pub const SCOPE: &str = "hostwarden";

// The fields written here, by message (opentelemetry-proto's metrics/v1, common/v1 and
// collector/metrics/v1).
/// ExportMetricsServiceRequest.resource_metrics
const RESOURCE_METRICS: u8 = len_tag(1);
/// ResourceMetrics.scope_metrics
const SCOPE_METRICS: u8 = len_tag(2);
/// ScopeMetrics.metrics
const METRICS: u8 = len_tag(2);
/// Metric.gauge (oneof data)
const GAUGE: u8 = len_tag(5);
/// Metric.sum (oneof data)
const SUM: u8 = len_tag(7);
/// Gauge.data_points and Sum.data_points
const DATA_POINTS: u8 = len_tag(1);
/// NumberDataPoint.start_time_unix_nano
const START_TIME: u8 = fixed64_tag(2);
/// NumberDataPoint.time_unix_nano
const TIME: u8 = fixed64_tag(3);
/// NumberDataPoint.as_double (oneof value)
const AS_DOUBLE: u8 = fixed64_tag(4);
/// NumberDataPoint.as_int (oneof value, sfixed64)
const AS_INT: u8 = fixed64_tag(6);
/// NumberDataPoint.attributes
const ATTRIBUTES: u8 = len_tag(7);
/// KeyValue.key
const KEY: u8 = len_tag(1);
/// KeyValue.value
const VALUE: u8 = len_tag(2);
/// AnyValue.string_value (oneof value)
const STRING_VALUE: u8 = len_tag(1);
/// AnyValue.int_value (oneof value, int64)
const INT_VALUE: u8 = varint_tag(3);

pub struct Encoder {
    /// `ResourceMetrics.resource`: tag, length and the resource message.
    resource: Vec<u8>,
    /// `ScopeMetrics.scope`: tag, length and the scope message.
    scope: Vec<u8>,
    /// Indexed by `MetricName as usize` (declaration order, as `MetricName::ALL`).
    metrics: Vec<MetricShape>,
    /// `start_time_unix_nano` of every point: when the pipeline started, as the SDK stamped
    /// its cumulative observables (the counters are totals since an earlier start, but a
    /// receiver only needs a start that stays the same while the series is unbroken).
    start_nanos: u64,
    /// The snapshot's point indices grouped by name in `MetricName` order, snapshot order
    /// within a name (a counting sort); reused.
    order: Vec<usize>,
    /// `ends[i]`: where name `i`'s indices end in `order` (and name `i + 1`'s begin).
    ends: Vec<usize>,
    /// The body length of every length-delimited message of the request below the scope, in
    /// the order they are written: filled by the sizing pass, read by the writing pass; reused.
    sizes: Vec<usize>,
}

/// What one metric's message holds besides its points.
struct MetricShape {
    /// `Metric` fields 1 to 3 (name, description, unit).
    head: Vec<u8>,
    /// `GAUGE` or `SUM`.
    data: u8,
    /// After a sum's points: its temporality and monotonicity; empty for a gauge.
    tail: Vec<u8>,
    number: NumberKind,
}

/// How a point's value is written: as the SDK's instrument for the name recorded it.
#[derive(Clone, Copy)]
enum NumberKind {
    /// Gauges, and up-down counters of other units: f64.
    Double,
    /// Counters of other units (seconds, joules): f64 clamped at 0.
    DoubleNonNegative,
    /// Up-down counters of bytes and counts: integers.
    Int,
    /// Counters of bytes and counts (the SDK's u64 counter): integers clamped at 0.
    IntNonNegative,
}

impl Encoder {
    pub fn new(resource: &Resource, started: SystemTime) -> Self {
        let resource = ResourceMetrics {
            resource: Some(resource.to_proto()),
            ..ResourceMetrics::default()
        };
        let scope = ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: SCOPE.to_owned(),
                ..InstrumentationScope::default()
            }),
            ..ScopeMetrics::default()
        };
        Encoder {
            resource: resource.encode_to_vec(),
            scope: scope.encode_to_vec(),
            metrics: MetricName::ALL
                .iter()
                .map(|&n| MetricShape::new(n))
                .collect(),
            start_nanos: unix_nanos(started),
            order: Vec::new(),
            ends: Vec::new(),
            sizes: Vec::new(),
        }
    }

    /// Encodes `snapshot` into `out` (cleared first). Returns the number of data points;
    /// 0 means there is nothing to send (`out` is then empty).
    pub fn encode(&mut self, snapshot: &Snapshot, out: &mut BytesMut) -> usize {
        out.clear();
        let points = &snapshot.points;
        if points.is_empty() {
            return 0;
        }
        let time = snapshot.timestamp_ms.saturating_mul(1_000_000);
        self.group(points);
        let scope_metrics = self.size(points, time);
        let resource_metrics = self.resource.len() + len_field_len(scope_metrics);
        out.reserve(len_field_len(resource_metrics));
        put_len(out, RESOURCE_METRICS, resource_metrics);
        out.put_slice(&self.resource);
        put_len(out, SCOPE_METRICS, scope_metrics);
        out.put_slice(&self.scope);
        self.write(points, time, out);
        points.len()
    }

    /// Fills `order` and `ends` for `points`.
    fn group(&mut self, points: &[MetricPoint]) {
        let names = self.metrics.len();
        self.ends.clear();
        self.ends.resize(names + 1, 0);
        // Counts, one slot to the right, then running sums: ends[i] = where name i begins.
        for p in points {
            self.ends[p.name as usize + 1] += 1;
        }
        for i in 1..=names {
            self.ends[i] += self.ends[i - 1];
        }
        self.order.clear();
        self.order.resize(points.len(), 0);
        // Placing each point advances its name's slot to where the name ends.
        for (i, p) in points.iter().enumerate() {
            let at = &mut self.ends[p.name as usize];
            self.order[*at] = i;
            *at += 1;
        }
    }

    /// The names with points: (shape, the indices of its points in `order`).
    fn groups(&self) -> impl Iterator<Item = (&MetricShape, &[usize])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.metrics
            .iter()
            .zip(starts.zip(self.ends.iter().copied()))
            .filter(|(_, (start, end))| start < end)
            .map(|(shape, (start, end))| (shape, &self.order[start..end]))
    }

    /// The sizing pass: fills `sizes` and returns the body length of the `ScopeMetrics`.
    fn size(&mut self, points: &[MetricPoint], time: u64) -> usize {
        let mut sizes = std::mem::take(&mut self.sizes);
        sizes.clear();
        let times = self.times_len(time);
        let mut scope_metrics = self.scope.len();
        for (shape, group) in self.groups() {
            let metric_at = sizes.len();
            let data_at = metric_at + 1;
            sizes.extend([0, 0]);
            let mut data = shape.tail.len();
            for &i in group {
                let point_at = sizes.len();
                sizes.push(0);
                let mut point = times + FIXED64_FIELD_LEN;
                for (key, value) in points[i].attributes.iter() {
                    let any = match value {
                        AttrValue::Str(s) => len_field_len(s.len()),
                        AttrValue::Int(n) => 1 + varint_len(*n as u64),
                    };
                    let kv = string_field_len(key.as_str()) + len_field_len(any);
                    sizes.extend([kv, any]);
                    point += len_field_len(kv);
                }
                sizes[point_at] = point;
                data += len_field_len(point);
            }
            sizes[data_at] = data;
            let metric = shape.head.len() + len_field_len(data);
            sizes[metric_at] = metric;
            scope_metrics += len_field_len(metric);
        }
        self.sizes = sizes;
        scope_metrics
    }

    /// The writing pass: the metrics, in the order `size` went through them.
    fn write(&self, points: &[MetricPoint], time: u64, out: &mut BytesMut) {
        let mut sizes = self.sizes.iter().copied();
        let mut next = || sizes.next().unwrap_or_default();
        for (shape, group) in self.groups() {
            put_len(out, METRICS, next());
            out.put_slice(&shape.head);
            put_len(out, shape.data, next());
            for &i in group {
                let p = &points[i];
                put_len(out, DATA_POINTS, next());
                if self.start_nanos != 0 {
                    put_fixed64(out, START_TIME, self.start_nanos);
                }
                if time != 0 {
                    put_fixed64(out, TIME, time);
                }
                let (tag, bits) = shape.number.write(p.value);
                put_fixed64(out, tag, bits);
                for (key, value) in p.attributes.iter() {
                    put_len(out, ATTRIBUTES, next());
                    put_string(out, KEY, key.as_str());
                    put_len(out, VALUE, next());
                    match value {
                        AttrValue::Str(s) => {
                            put_len(out, STRING_VALUE, s.len());
                            out.put_slice(s.as_bytes());
                        }
                        AttrValue::Int(n) => {
                            out.put_u8(INT_VALUE);
                            encode_varint(*n as u64, out);
                        }
                    }
                }
            }
            out.put_slice(&shape.tail);
        }
    }

    /// Bytes of a point's two timestamps (each omitted when 0, as proto3 omits defaults).
    fn times_len(&self, time: u64) -> usize {
        let field = |t: u64| if t == 0 { 0 } else { FIXED64_FIELD_LEN };
        field(self.start_nanos) + field(time)
    }
}

impl MetricShape {
    fn new(name: MetricName) -> Self {
        let head = Metric {
            name: name.as_str().to_owned(),
            description: name.description().to_owned(),
            unit: name.unit().to_owned(),
            ..Metric::default()
        };
        let (data, tail) = match name.kind() {
            InstrumentKind::Gauge => (GAUGE, Vec::new()),
            kind => {
                let sum = Sum {
                    data_points: Vec::new(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: kind == InstrumentKind::Counter,
                };
                (SUM, sum.encode_to_vec())
            }
        };
        let number = match (name.kind(), is_integral(name)) {
            (InstrumentKind::Gauge, _) | (InstrumentKind::UpDownCounter, false) => {
                NumberKind::Double
            }
            (InstrumentKind::UpDownCounter, true) => NumberKind::Int,
            (InstrumentKind::Counter, true) => NumberKind::IntNonNegative,
            (InstrumentKind::Counter, false) => NumberKind::DoubleNonNegative,
        };
        MetricShape {
            head: head.encode_to_vec(),
            data,
            tail,
            number,
        }
    }
}

impl NumberKind {
    /// The oneof field's tag and its eight bytes: a double's bits, or an sfixed64's
    /// two's complement.
    fn write(self, v: Value) -> (u8, u64) {
        match self {
            NumberKind::Double => (AS_DOUBLE, v.as_f64().to_bits()),
            NumberKind::DoubleNonNegative => (AS_DOUBLE, v.as_f64().max(0.0).to_bits()),
            NumberKind::Int => (AS_INT, as_i64(v) as u64),
            NumberKind::IntNonNegative => (AS_INT, as_i64(v).max(0) as u64),
        }
    }
}
