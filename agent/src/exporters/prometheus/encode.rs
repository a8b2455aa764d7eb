//! A snapshot in the Prometheus text format (0.0.4) or OpenMetrics 1.0, encoded by
//! prometheus-client. Every sample carries `job` and `instance` from the resource, and
//! `target_info` carries the rest of the resource, as the OpenTelemetry Collector's Prometheus
//! exporter does. Encoding happens at most once per snapshot and format: scrapes in between get
//! the cached bytes.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::names::{Family, label_name};
use crate::model::{MetricName, MetricPoint, Snapshot, Value};

/// Which exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the Accept header names it (Prometheus sends it first by default),
    /// the 0.0.4 text format otherwise.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Who is speaking: `job` and `instance` on every sample, the other resource attributes as
/// `target_info` labels (already in label form: `host.name` -> `host_name`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub job: String,
    pub instance: Option<String>,
    pub info: Vec<(String, String)>,
}

impl Identity {
    /// From resource attributes, as the collector maps them: job is
    /// `service.namespace/service.name` (or the name alone), instance is `service.instance.id`.
    pub fn from_resource(attrs: &[(String, String)]) -> Identity {
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let name = get("service.name").unwrap_or_default();
        let job = match get("service.namespace") {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name,
        };
        let info = attrs
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "service.name" | "service.namespace" | "service.instance.id"
                )
            })
            .map(|(k, v)| (sanitize(k), v.clone()))
            .collect();
        Identity {
            job,
            instance: get("service.instance.id"),
            info,
        }
    }

    fn labels(&self) -> Vec<(String, String)> {
        let mut l = vec![("job".to_owned(), self.job.clone())];
        if let Some(i) = &self.instance {
            l.push(("instance".to_owned(), i.clone()));
        }
        l
    }
}

/// A resource attribute key as a label name (any key may arrive through the environment).
fn sanitize(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "key_");
    }
    s
}

/// One snapshot as prometheus-client families.
#[derive(Debug)]
struct Families {
    snapshot: Arc<Snapshot>,
    identity: Arc<Identity>,
}

impl Families {
    fn labels(&self, p: &MetricPoint) -> Vec<(String, String)> {
        let mut l: Vec<(String, String)> = p
            .attributes
            .iter()
            .map(|(k, v)| (label_name(*k), v.as_text()))
            .collect();
        l.extend(self.identity.labels());
        l
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut info = self.identity.labels();
        info.extend(self.identity.info.iter().cloned());
        let target = Info::new(info);
        target.encode(encoder.encode_descriptor(
            "target",
            "Target metadata",
            None,
            target.metric_type(),
        )?)?;
        // A family's samples must be contiguous: group the points by name, in registry order.
        let mut points: Vec<&MetricPoint> = self.snapshot.points.iter().collect();
        points.sort_by_key(|p| p.name);
        for group in points.chunk_by(|a, b| a.name == b.name) {
            let name: MetricName = group[0].name;
            let family = Family::of(name);
            let mut metric = encoder.encode_descriptor(
                &family.base,
                name.description(),
                family.unit.as_ref(),
                family.kind,
            )?;
            for p in group {
                let labels = self.labels(p);
                let sample = metric.encode_family(&labels)?;
                match (family.kind, p.value) {
                    (MetricType::Counter, Value::Int(i)) => {
                        ConstCounter::new(u64::try_from(i).unwrap_or(0)).encode(sample)?;
                    }
                    (MetricType::Counter, Value::Float(f)) => {
                        ConstCounter::new(f.max(0.0)).encode(sample)?;
                    }
                    (_, Value::Int(i)) => ConstGauge::new(i).encode(sample)?,
                    (_, Value::Float(f)) => ConstGauge::new(f).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

/// Encodes `snapshot` in `format`.
pub fn encode(snapshot: Arc<Snapshot>, identity: Arc<Identity>, format: Format) -> Bytes {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families { snapshot, identity }));
    let mut out = String::new();
    let result = match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    // Writing to a String cannot fail; an error here is the encoder refusing its input.
    if let Err(e) = result {
        tracing::warn!(error = %e, "Prometheus encoding failed; serving what was written.");
    }
    Bytes::from(out)
}

/// The last encoding of each format, for the snapshot it was made from.
#[derive(Debug, Default)]
pub struct Cache {
    inner: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    snapshot: Arc<Snapshot>,
    text: Option<Bytes>,
    openmetrics: Option<Bytes>,
}

impl Cache {
    /// The body for `snapshot` in `format`, encoded now only if this snapshot was not yet
    /// encoded in that format.
    pub fn get(&self, snapshot: Arc<Snapshot>, identity: &Arc<Identity>, format: Format) -> Bytes {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = match guard.as_mut() {
            Some(c) if Arc::ptr_eq(&c.snapshot, &snapshot) => c,
            _ => guard.insert(Cached {
                snapshot: Arc::clone(&snapshot),
                text: None,
                openmetrics: None,
            }),
        };
        let slot = match format {
            Format::Text => &mut cached.text,
            Format::OpenMetrics => &mut cached.openmetrics,
        };
        slot.get_or_insert_with(|| encode(snapshot, Arc::clone(identity), format))
            .clone()
    }
}

#[cfg(test)]
mod tests;
