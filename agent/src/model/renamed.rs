//! Names an earlier hostwarden used, each with the name that replaced it (issue 17: names as the
//! semantic conventions write them). Read only on the error path of `check-config`, so that an
//! operator's old rule gets "renamed to X" instead of a bare "unknown metric".

use super::{AttrKey, MetricName};

/// Old metric name → new metric name.
const METRICS: &[(&str, &str)] = &[
    (
        "system.cpu.linux.pressure.avg10",
        "system.cpu.linux.pressure.10s",
    ),
    (
        "system.cpu.linux.pressure.avg60",
        "system.cpu.linux.pressure.1m",
    ),
    (
        "system.memory.linux.pressure.avg10",
        "system.memory.linux.pressure.10s",
    ),
    (
        "system.memory.linux.pressure.avg60",
        "system.memory.linux.pressure.1m",
    ),
    (
        "system.io.linux.pressure.avg10",
        "system.io.linux.pressure.10s",
    ),
    (
        "system.io.linux.pressure.avg60",
        "system.io.linux.pressure.1m",
    ),
    ("ollama.models.loaded", "ollama.model.count"),
    ("ollama.probe.duration", "ollama.probe.latency"),
    ("hostwarden.alerts", "hostwarden.alert.count"),
    (
        "hostwarden.collector.duration",
        "hostwarden.collector.latency",
    ),
];

/// Old attribute key → new attribute key.
const ATTRS: &[(&str, &str)] = &[
    ("collector", "hostwarden.collector.name"),
    ("result", "hostwarden.tuner.result"),
];

/// Metrics whose series are now split by an attribute a rule must pick a value of: a rule that
/// matched the old whole-host series (no attribute) would otherwise judge every state at once
/// (an idle host's `cpu.mode = idle` share is above 0.9).
pub const SPLIT_BY: &[(MetricName, AttrKey, &str)] = &[
    (
        MetricName::SystemCpuUtilization,
        AttrKey::CpuMode,
        "the whole-host busy share is now 1 - the \"idle\" mode: match { \"cpu.mode\" = \"idle\" } \
         with op \"<\" and 1 - the old threshold",
    ),
    (
        MetricName::SystemMemoryUtilization,
        AttrKey::SystemMemoryState,
        "the old value is the \"used\" state: match { \"system.memory.state\" = \"used\" }",
    ),
];

/// The name that replaced an old metric name.
pub fn metric_renamed_to(old: &str) -> Option<&'static str> {
    METRICS.iter().find(|(o, _)| *o == old).map(|(_, n)| *n)
}

/// The key that replaced an old attribute key.
pub fn attr_renamed_to(old: &str) -> Option<&'static str> {
    ATTRS.iter().find(|(o, _)| *o == old).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every old name is gone from the registry and every new one is in it.
    #[test]
    fn old_names_are_unknown_and_new_names_known() {
        for (old, new) in METRICS {
            assert!(MetricName::from_name(old).is_none(), "{old} still exists");
            assert!(MetricName::from_name(new).is_some(), "{new} does not exist");
        }
        for (old, new) in ATTRS {
            assert!(AttrKey::from_name(old).is_none(), "{old} still exists");
            assert!(AttrKey::from_name(new).is_some(), "{new} does not exist");
        }
    }
}
