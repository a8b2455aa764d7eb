//! The Ollama unit's cgroup as the kernel enforces it: its memory limits against the memory
//! charged to it, and its CPU time, read through `sys::cgroup` from the directory of the unit's
//! main process (the limits `[tuner.resources]` sets, or an operator's). Pure over a reading.

use crate::model::{AttrKey, Attrs, MetricName, MetricPoint};
use crate::sys::cgroup::CgroupReading;

/// The `ollama.unit.*` points of one reading. An unlimited memory limit has no point: a limit
/// of 16 EiB only flattens every graph it is drawn on.
pub fn points(r: &CgroupReading, unit: &str) -> Vec<MetricPoint> {
    let u = || Attrs::new().with(AttrKey::SystemdUnit, unit.to_owned());
    let mut out = Vec::new();
    for (kind, limit) in [("high", r.memory_high), ("max", r.memory_max)] {
        if let Some(b) = limit.filter(|b| *b != u64::MAX) {
            out.push(MetricPoint::new(
                MetricName::OllamaUnitMemoryLimit,
                u().with(AttrKey::OllamaUnitLimitType, kind),
                b,
            ));
        }
    }
    if let Some(b) = r.memory_current {
        out.push(MetricPoint::new(MetricName::OllamaUnitMemoryUsage, u(), b));
    }
    if let Some(us) = r.cpu_usage_usec {
        #[allow(clippy::cast_precision_loss)]
        let secs = us as f64 / 1e6;
        out.push(MetricPoint::new(MetricName::OllamaUnitCpuTime, u(), secs));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_usage_and_cpu_time_of_a_reading() {
        let r = CgroupReading {
            memory_high: Some(512 << 20),
            memory_max: Some(u64::MAX),
            memory_current: Some(90_112_000),
            cpu_usage_usec: Some(2_500_000),
            ..CgroupReading::default()
        };
        let p = points(&r, "ollama.service");
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ollama.unit.memory.limit",
                "ollama.unit.memory.usage",
                "ollama.unit.cpu.time"
            ]
        );
        assert_eq!(
            p[0].attributes
                .get(AttrKey::OllamaUnitLimitType)
                .map(|v| v.as_text()),
            Some("high".to_owned())
        );
        assert!((p[2].value.as_f64() - 2.5).abs() < 1e-9);
    }
}
