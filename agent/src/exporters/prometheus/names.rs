//! Prometheus names for `MetricName`s, as the OpenTelemetry Collector's Prometheus exporter
//! renders the same OTLP points (collector-contrib `pkg/translator/prometheus`,
//! normalize_name.go), so that one dashboard serves both paths: the name's non-alphanumeric
//! runs become `_`; the unit's word (`By` -> `bytes`, `s` -> `seconds`, ...) follows unless the
//! name already holds it, and `{annotation}` units add nothing; monotonic sums end in `_total`
//! and gauges of unit `1` in `_ratio`. Up-down counters are gauges without a suffix.
//!
//! prometheus-client writes `<base>_<unit>` and appends `_total` to counters itself, so a
//! family is its base name and its unit word, split.

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::model::{AttrKey, InstrumentKind, MetricName};

/// The unit's word in a Prometheus name; `None` for dimensionless and annotation units.
fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "By" => "bytes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "Cel" => "celsius",
        "W" => "watts",
        "J" => "joules",
        "Hz" => "hertz",
        "V" => "volts",
        "%" => "percent",
        _ => return None,
    })
}

/// How one metric is declared to prometheus-client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// The name without the unit word and without `_total`.
    pub base: String,
    pub unit: Option<Unit>,
    pub kind: MetricType,
}

impl Family {
    pub fn of(metric: MetricName) -> Family {
        let mut tokens: Vec<&str> = metric
            .as_str()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
            .collect();
        let kind = match metric.kind() {
            InstrumentKind::Counter => MetricType::Counter,
            InstrumentKind::Gauge | InstrumentKind::UpDownCounter => MetricType::Gauge,
        };
        // `_total` is the encoder's to add, after the unit (`..._pressure_total` in seconds
        // becomes `..._pressure_seconds_total`).
        if kind == MetricType::Counter {
            tokens.retain(|t| *t != "total");
        }
        let word = match (metric.kind(), metric.unit()) {
            (InstrumentKind::Gauge, "1") => Some("ratio"),
            (_, unit) => unit_word(unit),
        };
        let unit = match word {
            Some(w) if tokens.last() == Some(&w) => {
                tokens.pop();
                Some(w)
            }
            // Already named inside the name (`..._bytes_read`): nothing to add.
            Some(w) if tokens.contains(&w) => None,
            other => other,
        };
        Family {
            base: tokens.join("_"),
            unit: unit.map(|w| Unit::Other(w.to_owned())),
            kind,
        }
    }

    /// The name Prometheus stores the samples under.
    #[cfg(test)]
    pub fn sample_name(&self) -> String {
        let mut name = self.base.clone();
        if let Some(u) = &self.unit {
            name.push('_');
            name.push_str(u.as_str());
        }
        if self.kind == MetricType::Counter {
            name.push_str("_total");
        }
        name
    }
}

/// A label name for an attribute key: every character outside [A-Za-z0-9_] becomes `_`.
pub fn label_name(key: AttrKey) -> String {
    key.as_str()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_collectors_translation() {
        let name = |m| Family::of(m).sample_name();
        assert_eq!(
            name(MetricName::SystemMemoryUsage),
            "system_memory_usage_bytes"
        );
        assert_eq!(
            name(MetricName::SystemMemoryLimit),
            "system_memory_limit_bytes"
        );
        assert_eq!(
            name(MetricName::SystemCpuUtilization),
            "system_cpu_utilization_ratio"
        );
        assert_eq!(
            name(MetricName::SystemCpuTime),
            "system_cpu_time_seconds_total"
        );
        assert_eq!(
            name(MetricName::SystemMemoryLinuxPressure5m),
            "system_memory_linux_pressure_5m_ratio"
        );
        assert_eq!(
            name(MetricName::SystemCpuLoadAverage1m),
            "system_cpu_load_average_1m"
        );
        assert_eq!(name(MetricName::HwErrors), "hw_errors_total");
        assert_eq!(name(MetricName::HwEnergy), "hw_energy_joules_total");
        assert_eq!(name(MetricName::HwTemperature), "hw_temperature_celsius");
        assert_eq!(name(MetricName::ZfsPoolIo), "zfs_pool_io_bytes_total");
        assert_eq!(
            name(MetricName::SystemCpuLinuxPressureTotal),
            "system_cpu_linux_pressure_seconds_total"
        );
        assert_eq!(name(MetricName::HwFanSpeedRatio), "hw_fan_speed_ratio");
        assert_eq!(name(MetricName::ZfsPoolDedupRatio), "zfs_pool_dedup_ratio");
        assert_eq!(label_name(AttrKey::ZfsPoolName), "zfs_pool_name");
    }

    #[test]
    fn every_name_is_a_valid_and_distinct_prometheus_name() {
        let mut seen = std::collections::HashSet::new();
        for &m in MetricName::ALL {
            let n = Family::of(m).sample_name();
            assert!(
                n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !n.starts_with(|c: char| c.is_ascii_digit()),
                "{n}"
            );
            assert!(seen.insert(n.clone()), "two metrics render to {n}");
        }
    }
}
