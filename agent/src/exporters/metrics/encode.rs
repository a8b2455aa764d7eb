//! A snapshot as an OTLP `ExportMetricsServiceRequest`, encoded into protobuf bytes.
//!
//! The encoder keeps one `Metric` per `MetricName` (name, unit, description and data kind
//! filled once) and overwrites its data points in place each export: in a steady state (the
//! same series tick after tick) encoding allocates nothing. Only names with points go into the
//! request; they are moved in for the encoding and back out after it.

use std::mem;
use std::time::SystemTime;

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use prost::Message;

use super::{as_i64, is_integral};
use crate::exporters::resource::Resource;
use crate::model::{AttrValue, Attrs, InstrumentKind, MetricName, Snapshot, Value};
use crate::sys::time::unix_nanos;

/// The instrumentation scope of every metric (the name the SDK meter had; no version).
pub const SCOPE: &str = "hostwarden";

pub struct Encoder {
    /// One resource, one scope; its metric list only holds metrics during `encode`.
    request: ExportMetricsServiceRequest,
    /// Indexed by `MetricName as usize` (declaration order, as `MetricName::ALL`).
    slots: Vec<Slot>,
    /// Which slots were moved into the request, in request order.
    moved: Vec<usize>,
    /// `start_time_unix_nano` of every point: when the pipeline started, as the SDK stamped
    /// its cumulative observables (the counters are totals since an earlier start, but a
    /// receiver only needs a start that stays the same while the series is unbroken).
    start_nanos: u64,
}

struct Slot {
    metric: Metric,
    /// Points written this export; the vector may hold more, kept for reuse.
    used: usize,
}

impl Encoder {
    pub fn new(resource: &Resource, started: SystemTime) -> Self {
        let scope = ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: SCOPE.to_owned(),
                ..InstrumentationScope::default()
            }),
            metrics: Vec::new(),
            schema_url: String::new(),
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource.to_proto()),
                scope_metrics: vec![scope],
                schema_url: String::new(),
            }],
        };
        Encoder {
            request,
            slots: MetricName::ALL.iter().map(|&n| Slot::new(n)).collect(),
            moved: Vec::new(),
            start_nanos: unix_nanos(started),
        }
    }

    /// Encodes `snapshot` into `out` (cleared first). Returns the number of data points;
    /// 0 means there is nothing to send (`out` is then empty).
    pub fn encode(&mut self, snapshot: &Snapshot, out: &mut BytesMut) -> usize {
        out.clear();
        let time = snapshot.timestamp_ms.saturating_mul(1_000_000);
        for slot in &mut self.slots {
            slot.used = 0;
        }
        for p in &snapshot.points {
            if let Some(slot) = self.slots.get_mut(p.name as usize) {
                slot.push(p.name, p.value, &p.attributes, self.start_nanos, time);
            }
        }
        let Some(metrics) = metrics_of(&mut self.request) else {
            return 0;
        };
        let mut points = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.used > 0 {
                slot.truncate();
                points += slot.used;
                metrics.push(mem::take(&mut slot.metric));
                self.moved.push(i);
            }
        }
        if points > 0 {
            out.reserve(self.request.encoded_len());
            // Cannot fail: `out` was just given room for the whole message.
            let _room = self.request.encode(out);
        }
        // Back to their slots, with their buffers, for the next export.
        if let Some(metrics) = metrics_of(&mut self.request) {
            for (m, i) in metrics.drain(..).zip(self.moved.drain(..)) {
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.metric = m;
                }
            }
        }
        points
    }
}

/// The metric list of the request's one resource and scope.
fn metrics_of(request: &mut ExportMetricsServiceRequest) -> Option<&mut Vec<Metric>> {
    request
        .resource_metrics
        .first_mut()
        .and_then(|r| r.scope_metrics.first_mut())
        .map(|s| &mut s.metrics)
}

impl Slot {
    fn new(name: MetricName) -> Self {
        let data = match name.kind() {
            InstrumentKind::Gauge => Data::Gauge(Gauge::default()),
            kind => Data::Sum(Sum {
                data_points: Vec::new(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: kind == InstrumentKind::Counter,
            }),
        };
        Slot {
            metric: Metric {
                name: name.as_str().to_owned(),
                description: name.description().to_owned(),
                unit: name.unit().to_owned(),
                metadata: Vec::new(),
                data: Some(data),
            },
            used: 0,
        }
    }

    fn points(&mut self) -> Option<&mut Vec<NumberDataPoint>> {
        match &mut self.metric.data {
            Some(Data::Gauge(g)) => Some(&mut g.data_points),
            Some(Data::Sum(s)) => Some(&mut s.data_points),
            _ => None,
        }
    }

    /// Writes one point over the next reusable one (or a new one).
    fn push(&mut self, name: MetricName, value: Value, attrs: &Attrs, start: u64, time: u64) {
        let used = self.used;
        let Some(points) = self.points() else {
            return;
        };
        if points.len() == used {
            points.push(NumberDataPoint::default());
        }
        let Some(dp) = points.get_mut(used) else {
            return;
        };
        dp.start_time_unix_nano = start;
        dp.time_unix_nano = time;
        dp.value = Some(number(name, value));
        write_attributes(&mut dp.attributes, attrs);
        self.used += 1;
    }

    fn truncate(&mut self) {
        let used = self.used;
        if let Some(points) = self.points() {
            points.truncate(used);
        }
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
        // The SDK's u64 counter: a negative reading became 0.
        (InstrumentKind::Counter, true) => AsInt(as_i64(v).max(0)),
        (InstrumentKind::Counter, false) => AsDouble(v.as_f64().max(0.0)),
    }
}

/// Overwrites `out` with `attrs`, reusing its strings.
fn write_attributes(out: &mut Vec<KeyValue>, attrs: &Attrs) {
    let mut n = 0;
    for (k, v) in attrs.iter() {
        if out.len() == n {
            out.push(KeyValue::default());
        }
        let Some(kv) = out.get_mut(n) else {
            return;
        };
        kv.key.clear();
        kv.key.push_str(k.as_str());
        let any = kv.value.get_or_insert_with(AnyValue::default);
        match (v, &mut any.value) {
            (AttrValue::Str(s), Some(any_value::Value::StringValue(slot))) => {
                slot.clear();
                slot.push_str(s);
            }
            (AttrValue::Str(s), slot) => {
                *slot = Some(any_value::Value::StringValue(s.as_str().to_owned()));
            }
            (AttrValue::Int(i), slot) => *slot = Some(any_value::Value::IntValue(*i)),
        }
        n += 1;
    }
    out.truncate(n);
}
