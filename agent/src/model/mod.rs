//! The data every consumer reads: typed metric points and collector statuses, grouped in one
//! `Snapshot` per tick. No I/O here. A metric has exactly one name, unit and instrument kind,
//! defined once in `MetricName`, so the terminal view, JSON, rules and OTLP can never disagree.

use serde::Serialize;
mod attrs;
mod names;
pub mod renamed;

pub use attrs::{AttrKey, AttrValue, Attrs, Text};
pub use names::{InstrumentKind, MetricName};

/// A point's value: integers stay exact (bytes, counts); ratios and seconds are floats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Float(f64),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            // Precision loss only past 2^53, far beyond any byte count we read.
            #[allow(clippy::cast_precision_loss)]
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
        }
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<u64> for Value {
    fn from(u: u64) -> Self {
        Value::Int(i64::try_from(u).unwrap_or(i64::MAX))
    }
}
impl From<u32> for Value {
    fn from(u: u32) -> Self {
        Value::Int(i64::from(u))
    }
}

/// One observation of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPoint {
    pub name: MetricName,
    pub unit: &'static str,
    pub attributes: Attrs,
    pub value: Value,
}

impl MetricPoint {
    pub fn new(name: MetricName, attributes: Attrs, value: impl Into<Value>) -> Self {
        MetricPoint {
            name,
            unit: name.unit(),
            attributes,
            value: value.into(),
        }
    }
}

/// Which collector produced a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectorId {
    Host,
    Gpu,
    Zfs,
    Ollama,
}

impl CollectorId {
    pub const fn as_str(self) -> &'static str {
        match self {
            CollectorId::Host => "host",
            CollectorId::Gpu => "gpu",
            CollectorId::Zfs => "zfs",
            CollectorId::Ollama => "ollama",
        }
    }
}

impl std::fmt::Display for CollectorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A collector's condition this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Everything it reads, it read.
    Ok,
    /// It read something, but not everything (a lost GPU, a restarting iostat child).
    Degraded,
    /// It read nothing (no driver, no binary, disabled, deadline passed).
    Unavailable,
}

/// What one collector reported for one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorStatus {
    pub collector: CollectorId,
    pub health: Health,
    /// Why it is not `ok`, in words an operator can act on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wall time the collection took, in seconds.
    pub duration_seconds: f64,
    /// Number of points it contributed.
    pub points: usize,
}

/// Everything one tick saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Unix time of the tick, in milliseconds.
    pub timestamp_ms: u64,
    pub collectors: Vec<CollectorStatus>,
    pub points: Vec<MetricPoint>,
}

impl Snapshot {
    /// Points of one metric.
    pub fn points_named(&self, name: MetricName) -> impl Iterator<Item = &MetricPoint> {
        self.points.iter().filter(move |p| p.name == name)
    }

    /// The first point of a metric whose attributes include all of `with`.
    pub fn find(&self, name: MetricName, with: &[(AttrKey, &str)]) -> Option<&MetricPoint> {
        self.points_named(name).find(|p| {
            with.iter()
                .all(|(k, v)| p.attributes.get(*k).is_some_and(|a| a.as_text() == *v))
        })
    }

    pub fn status(&self, id: CollectorId) -> Option<&CollectorStatus> {
        self.collectors.iter().find(|c| c.collector == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for n in MetricName::ALL {
            assert!(seen.insert(n.as_str()), "duplicate name {}", n.as_str());
            assert_eq!(MetricName::from_name(n.as_str()), Some(*n));
            assert!(
                !n.description().is_empty(),
                "{} has no description",
                n.as_str()
            );
        }
        assert_eq!(MetricName::from_name("no.such.metric"), None);
    }

    #[test]
    fn attrs_are_sorted_and_replace() {
        let a = Attrs::new()
            .with(AttrKey::ZfsPoolName, "tank")
            .with(AttrKey::CpuLogicalNumber, 3u32)
            .with(AttrKey::ZfsPoolName, "rpool");
        let keys: Vec<_> = a.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec![AttrKey::CpuLogicalNumber, AttrKey::ZfsPoolName]);
        assert_eq!(a.get(AttrKey::ZfsPoolName), Some(&AttrValue::from("rpool")));
    }

    #[test]
    fn point_serializes_with_name_unit_and_exact_integers() {
        let p = MetricPoint::new(
            MetricName::SystemMemoryUsage,
            Attrs::new().with(AttrKey::SystemMemoryState, "used"),
            1_234_567_890_123u64,
        );
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"name":"system.memory.usage","unit":"By","attributes":{"system.memory.state":"used"},"value":1234567890123}"#
        );
    }
}
