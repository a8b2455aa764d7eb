//! How the OpenTelemetry Collector's Prometheus exporter (and Prometheus' own OTLP receiver with
//! suffixes on) names an OTLP metric, as implemented in the collector's
//! `pkg/translator/prometheus` (normalize_name.go): split the name on every non-alphanumeric
//! character and join with `_`; append the unit's Prometheus word (`By` -> `bytes`, `s` ->
//! `seconds`, ...) unless the name already has it, dropping `{annotation}` units; append
//! `_total` to monotonic sums (counters) and `_ratio` to gauges of unit `1`. Up-down counters
//! are non-monotonic sums: they get neither. The Grafana dashboard queries these names.
//!
//! This is the tests' oracle, written from the collector's rules and not from the agent's code:
//! the agent's own endpoint (agent/src/exporters/prometheus/names.rs) translates the same way
//! and tests/tests/prometheus.rs holds every family it serves to these names. Calling the
//! agent's translation here would make that check compare the agent with itself; the few
//! examples both unit tests share are the collector's documented ones.

use hostwarden::model::{AttrKey, InstrumentKind, MetricName};

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
        _ => return None, // "1", "{thread}", ...
    })
}

fn tokens(name: &str) -> Vec<String> {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The Prometheus name of `metric`, e.g. `system.memory.usage` (By, up-down counter) ->
/// `system_memory_usage_bytes`, `zfs.pool.io` (By, counter) -> `zfs_pool_io_bytes_total`.
pub fn metric_name(metric: MetricName) -> String {
    let mut t = tokens(metric.as_str());
    if let Some(word) = unit_word(metric.unit())
        && !t.iter().any(|x| x == word)
    {
        t.push(word.to_owned());
    }
    match metric.kind() {
        InstrumentKind::Counter => {
            t.retain(|x| x != "total");
            t.push("total".to_owned());
        }
        InstrumentKind::Gauge if metric.unit() == "1" => {
            t.retain(|x| x != "ratio");
            t.push("ratio".to_owned());
        }
        InstrumentKind::Gauge | InstrumentKind::UpDownCounter => {}
    }
    t.join("_")
}

/// A Prometheus label name for an OTLP attribute key: every character outside [A-Za-z0-9_]
/// becomes `_` (`zfs.pool.name` -> `zfs_pool_name`).
pub fn label_name(key: AttrKey) -> String {
    key.as_str()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Every metric name and label name the agent can export, rendered.
pub fn exported() -> (Vec<String>, Vec<String>) {
    (
        MetricName::ALL.iter().copied().map(metric_name).collect(),
        AttrKey::ALL.iter().copied().map(label_name).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_the_collector_documents() {
        // Examples from the collector's translator tests and the hostmetrics receiver's
        // Prometheus output.
        assert_eq!(
            metric_name(MetricName::SystemMemoryUsage),
            "system_memory_usage_bytes"
        );
        assert_eq!(
            metric_name(MetricName::SystemCpuUtilization),
            "system_cpu_utilization_ratio"
        );
        assert_eq!(
            metric_name(MetricName::SystemCpuTime),
            "system_cpu_time_seconds_total"
        );
        assert_eq!(
            metric_name(MetricName::SystemCpuLoadAverage1m),
            "system_cpu_load_average_1m"
        );
        assert_eq!(metric_name(MetricName::HwErrors), "hw_errors_total");
        assert_eq!(metric_name(MetricName::HwEnergy), "hw_energy_joules_total");
        assert_eq!(
            metric_name(MetricName::HwTemperature),
            "hw_temperature_celsius"
        );
        assert_eq!(metric_name(MetricName::HwStatus), "hw_status");
        // "total" already in the name moves behind the unit.
        assert_eq!(
            metric_name(MetricName::SystemCpuLinuxPressureTotal),
            "system_cpu_linux_pressure_seconds_total"
        );
        assert_eq!(label_name(AttrKey::ZfsPoolName), "zfs_pool_name");
        assert_eq!(
            label_name(AttrKey::GenAiRequestModel),
            "gen_ai_request_model"
        );
    }

    #[test]
    fn rendered_names_are_unique() {
        let (metrics, labels) = exported();
        let mut m = metrics.clone();
        m.sort();
        m.dedup();
        assert_eq!(
            m.len(),
            metrics.len(),
            "two metrics render to one Prometheus name"
        );
        let mut l = labels.clone();
        l.sort();
        l.dedup();
        assert_eq!(
            l.len(),
            labels.len(),
            "two attribute keys render to one label"
        );
    }
}
