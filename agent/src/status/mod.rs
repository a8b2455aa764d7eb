//! `hostwarden status`: what the running daemon sees now. The daemon publishes a `StatusSource`
//! each tick; the Unix socket (server.rs) builds a `StatusReport` from it for each client, and
//! the CLI reads and prints it (client.rs). The rules engine fills `alerts`, the tuner fills
//! `actuations`.

pub mod client;
pub(crate) mod server;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{AttrKey, Health, MetricName, MetricPoint, Snapshot};

/// The document the daemon writes to each client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// hostwarden version of the daemon.
    pub version: String,
    pub pid: u32,
    /// Unix ms of the snapshot this report describes (0 before the first tick).
    pub timestamp_ms: u64,
    pub collectors: Vec<CollectorReport>,
    /// The latest values of the key metrics (whole-host figures, per GPU, per pool).
    pub key_values: Vec<KeyValueReport>,
    /// Every point of the snapshot, as `once --format json` lists them (absent from a daemon
    /// older than this field).
    #[serde(default)]
    pub points: Vec<KeyValueReport>,
    /// The live view's text for the same snapshot (what `--format table` prints).
    pub summary: String,
    /// Firing and pending alerts.
    pub alerts: Vec<AlertReport>,
    /// The tuner's last actuations, newest last.
    pub actuations: Vec<ActuationReport>,
    pub export: ExportReport,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorReport {
    pub collector: String,
    /// ok, degraded or unavailable.
    pub health: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_seconds: f64,
    pub points: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValueReport {
    pub name: String,
    pub unit: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    pub value: f64,
}

impl From<&MetricPoint> for KeyValueReport {
    fn from(p: &MetricPoint) -> Self {
        KeyValueReport {
            name: p.name.as_str().to_owned(),
            unit: p.unit.to_owned(),
            attributes: p
                .attributes
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.as_text()))
                .collect(),
            value: p.value.as_f64(),
        }
    }
}

/// A firing or pending alert (from the rules engine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertReport {
    pub rule: String,
    /// warning or critical.
    pub severity: String,
    /// pending or firing.
    pub state: String,
    /// The series' attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Unix ms since when the condition has held.
    pub since_ms: u64,
}

impl From<&crate::rules::rule::ActiveAlert> for AlertReport {
    fn from(a: &crate::rules::rule::ActiveAlert) -> Self {
        AlertReport {
            rule: a.rule.clone(),
            severity: a.severity.as_str().to_owned(),
            state: a.state.as_str().to_owned(),
            attributes: a.attributes.clone(),
            value: a.value,
            threshold: a.threshold,
            since_ms: a.since_ms,
        }
    }
}

/// One change the tuner made or tried (filled by the tuner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActuationReport {
    pub at_ms: u64,
    /// The systemd unit acted on.
    pub unit: String,
    /// applied, rolled_back or skipped.
    pub result: String,
    pub summary: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportReport {
    /// True when an OTLP endpoint is configured.
    pub otlp: bool,
    pub failures: u64,
    pub outbox_depth: u64,
    pub outbox_dropped: u64,
    /// The Alertmanager sink, one entry per configured URL (absent from an older daemon).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alertmanager: Vec<AlertmanagerReport>,
}

/// One Alertmanager member's delivery state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertmanagerReport {
    pub url: String,
    /// Alerts firing now (re-sent to every member each resend interval).
    pub firing: u64,
    /// Alert changes waiting for this member.
    pub pending: u64,
    /// Changes dropped for this member (queue full or too old).
    pub dropped: u64,
    /// Changes this member accepted.
    pub delivered: u64,
    /// Failed requests to this member.
    pub failures: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_ms: Option<u64>,
}

/// The metrics `key_values` shows.
const KEY_METRICS: &[MetricName] = &[
    MetricName::SystemCpuUtilization,
    MetricName::SystemCpuLoadAverage1m,
    MetricName::SystemMemoryUtilization,
    MetricName::SystemMemoryLinuxAvailable,
    MetricName::SystemMemoryLimit,
    MetricName::SystemPagingUtilization,
    MetricName::HwGpuUtilization,
    MetricName::HwGpuMemoryUtilization,
    MetricName::HwTemperature,
    MetricName::HwPower,
    MetricName::ZfsPoolUtilization,
    MetricName::ZfsPoolHealth,
    MetricName::ZfsArcLimit,
    MetricName::OllamaUp,
    MetricName::OllamaModelCount,
    MetricName::OllamaUnitMemoryLimit,
    MetricName::OllamaUnitMemoryUsage,
];

impl StatusReport {
    /// The report for one snapshot; alerts and actuations are left for their owners to fill.
    pub fn from_snapshot(snapshot: &Snapshot, export: ExportReport) -> Self {
        let collectors = snapshot
            .collectors
            .iter()
            .map(|c| CollectorReport {
                collector: c.collector.as_str().to_owned(),
                health: match c.health {
                    Health::Ok => "ok",
                    Health::Degraded => "degraded",
                    Health::Unavailable => "unavailable",
                }
                .to_owned(),
                reason: c.reason.clone(),
                duration_seconds: c.duration_seconds,
                points: c.points,
            })
            .collect();
        let key_values = KEY_METRICS
            .iter()
            .flat_map(|n| snapshot.points_named(*n))
            // A per-CPU series is too much for a status page; the host figures stay.
            .filter(|p| p.attributes.get(AttrKey::CpuLogicalNumber).is_none())
            .map(KeyValueReport::from)
            .collect();
        let points = snapshot.points.iter().map(KeyValueReport::from).collect();
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            timestamp_ms: snapshot.timestamp_ms,
            collectors,
            key_values,
            points,
            summary: crate::view::render_summary(snapshot),
            alerts: Vec::new(),
            actuations: Vec::new(),
            export,
        }
    }
}

/// What the daemon publishes each tick: the parts of a `StatusReport` as they are (the
/// snapshot behind the same `Arc` the exporters read). The report turns every point into owned
/// strings and renders the summary, so it is built only when a client asks, not every tick
/// (issue 20: per-tick work nobody consumes).
#[derive(Debug, Clone, Default)]
pub struct StatusSource {
    pub snapshot: Arc<Snapshot>,
    pub export: ExportReport,
    pub alerts: Vec<AlertReport>,
    pub actuations: Vec<ActuationReport>,
}

impl StatusSource {
    pub fn report(&self) -> StatusReport {
        StatusReport {
            alerts: self.alerts.clone(),
            actuations: self.actuations.clone(),
            ..StatusReport::from_snapshot(&self.snapshot, self.export.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attrs, CollectorId, CollectorStatus, MetricPoint};

    #[test]
    fn a_report_lists_collectors_and_host_level_key_values() {
        let snap = Snapshot {
            timestamp_ms: 42,
            collectors: vec![CollectorStatus {
                collector: CollectorId::Gpu,
                health: Health::Unavailable,
                reason: Some("libnvidia-ml.so.1 not found".into()),
                duration_seconds: 0.001,
                points: 0,
            }],
            points: vec![
                MetricPoint::new(
                    MetricName::SystemCpuUtilization,
                    Attrs::new().with(AttrKey::CpuMode, "idle"),
                    0.5,
                ),
                MetricPoint::new(
                    MetricName::SystemCpuUtilization,
                    Attrs::new()
                        .with(AttrKey::CpuMode, "idle")
                        .with(AttrKey::CpuLogicalNumber, 0u32),
                    0.9,
                ),
                MetricPoint::new(MetricName::SystemMemoryLimit, Attrs::new(), 1024u64),
                MetricPoint::new(MetricName::SystemCpuLogicalCount, Attrs::new(), 2u32),
            ],
        };
        let r = StatusReport::from_snapshot(&snap, ExportReport::default());
        assert_eq!(r.timestamp_ms, 42);
        assert_eq!(r.collectors[0].collector, "gpu");
        assert_eq!(r.collectors[0].health, "unavailable");
        let names: Vec<_> = r
            .key_values
            .iter()
            .map(|k| (k.name.as_str(), k.value))
            .collect();
        assert_eq!(
            names,
            vec![
                ("system.cpu.utilization", 0.5),
                ("system.memory.limit", 1024.0)
            ]
        );
        // `points` carries all of them, the per-CPU figure too, with its attributes.
        let all: Vec<_> = r
            .points
            .iter()
            .map(|p| (p.name.as_str(), p.value))
            .collect();
        assert_eq!(
            all,
            vec![
                ("system.cpu.utilization", 0.5),
                ("system.cpu.utilization", 0.9),
                ("system.memory.limit", 1024.0),
                ("system.cpu.logical.count", 2.0)
            ]
        );
        assert_eq!(r.points[1].attributes["cpu.logical_number"], "0");
        let json = serde_json::to_string(&r).unwrap();
        let back: StatusReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
