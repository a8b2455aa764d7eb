//! Rendering a snapshot for people: the compact live view of `hostwarden run`, and the point
//! table of `hostwarden once`. Both read the same snapshot as JSON and OTLP do.

use crate::model::{AttrKey, CollectorId, Health, MetricName, Snapshot};
use crate::rules::ActiveAlert;
use crate::rules::event::AlertState;
use crate::rules::summary::{num, series_name};

/// Formats bytes with binary units (`1.5 GiB`).
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = v;
    let mut i = 0;
    while v.abs() >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn value(s: &Snapshot, name: MetricName, with: &[(AttrKey, &str)]) -> Option<f64> {
    s.find(name, with).map(|p| p.value.as_f64())
}

/// One line per collector: status or reason, then its key values.
pub fn render_summary(s: &Snapshot) -> String {
    let mut out = String::new();
    for c in &s.collectors {
        let health = match c.health {
            Health::Ok => "ok",
            Health::Degraded => "DEGRADED",
            Health::Unavailable => "unavailable",
        };
        out.push_str(&format!("{:<7} {:<11}", c.collector.as_str(), health));
        let keys = if c.health == Health::Unavailable {
            String::new()
        } else {
            key_values(s, c.collector)
        };
        if !keys.is_empty() {
            out.push_str(&format!(" {keys}"));
        }
        if let Some(reason) = &c.reason {
            out.push_str(&format!(
                "{}({reason})",
                if keys.is_empty() { " " } else { "  " }
            ));
        }
        out.push('\n');
    }
    out
}

/// The one-line summary of a collector: one view function per collector.
fn key_values(s: &Snapshot, id: CollectorId) -> String {
    let parts = match id {
        CollectorId::Host => host_values(s),
        CollectorId::Gpu => gpu_values(s),
        CollectorId::Zfs => zfs_values(s),
        CollectorId::Ollama => ollama_values(s),
    };
    parts.join("  ")
}

/// CPU, load, memory and memory pressure.
fn host_values(s: &Snapshot) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let cpus = value(s, MetricName::SystemCpuLogicalCount, &[]).unwrap_or(0.0);
    // Busy is every mode but idle (the whole host's utilisation is split by cpu.mode).
    let cpu = value(
        s,
        MetricName::SystemCpuUtilization,
        &[(AttrKey::CpuMode, "idle")],
    )
    .map_or_else(|| "n/a (first sample)".to_owned(), |idle| pct(1.0 - idle));
    parts.push(format!("cpu {cpu} of {cpus:.0}"));
    if let (Some(a), Some(b), Some(c)) = (
        value(s, MetricName::SystemCpuLoadAverage1m, &[]),
        value(s, MetricName::SystemCpuLoadAverage5m, &[]),
        value(s, MetricName::SystemCpuLoadAverage15m, &[]),
    ) {
        parts.push(format!("load {a:.2} {b:.2} {c:.2}"));
    }
    if let (Some(used), Some(limit)) = (
        value(
            s,
            MetricName::SystemMemoryUsage,
            &[(AttrKey::SystemMemoryState, "used")],
        ),
        value(s, MetricName::SystemMemoryLimit, &[]),
    ) {
        parts.push(format!("mem {} / {}", bytes(used), bytes(limit)));
    }
    if let Some(full) = value(
        s,
        MetricName::SystemMemoryLinuxPressure10s,
        &[(AttrKey::PressureStallType, "full")],
    ) {
        parts.push(format!("mem-psi {}", pct(full)));
    }
    parts
}

/// VRAM and temperature per GPU.
fn gpu_values(s: &Snapshot) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for p in s.points_named(MetricName::HwGpuMemoryUsage) {
        let Some(id) = p.attributes.get(AttrKey::HwId) else {
            continue;
        };
        let id = id.as_text();
        let limit = value(s, MetricName::HwGpuMemoryLimit, &[(AttrKey::HwId, &id)]);
        let temp = value(s, MetricName::HwTemperature, &[(AttrKey::HwId, &id)]);
        let mut gpu = format!("{}: vram {}", short(&id), bytes(p.value.as_f64()));
        if let Some(l) = limit {
            gpu.push_str(&format!("/{}", bytes(l)));
        }
        if let Some(t) = temp {
            gpu.push_str(&format!(" {t:.0}°C"));
        }
        parts.push(gpu);
    }
    parts
}

/// Fill and health per pool.
fn zfs_values(s: &Snapshot) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for p in s.points_named(MetricName::ZfsPoolUtilization) {
        let Some(name) = p.attributes.get(AttrKey::ZfsPoolName) else {
            continue;
        };
        let name = name.as_text();
        let health = s
            .points_named(MetricName::ZfsPoolHealth)
            .find(|h| {
                h.value.as_f64() >= 1.0
                    && h.attributes.get(AttrKey::ZfsPoolName).map(|v| v.as_text())
                        == Some(name.clone())
            })
            .and_then(|h| h.attributes.get(AttrKey::ZfsPoolHealthState))
            .map(|v| v.as_text())
            .unwrap_or_default();
        parts.push(format!("{name} {} {health}", pct(p.value.as_f64())));
    }
    parts
}

/// Up or down, models loaded, probe time, spill to CPU.
fn ollama_values(s: &Snapshot) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    if let Some(up) = value(s, MetricName::OllamaUp, &[]) {
        parts.push(if up >= 1.0 {
            "up".to_owned()
        } else {
            "DOWN".to_owned()
        });
    }
    if let Some(n) = value(s, MetricName::OllamaModelCount, &[]) {
        parts.push(format!("{n:.0} model(s) loaded"));
    }
    if let Some(secs) = value(s, MetricName::OllamaProbeLatency, &[]) {
        parts.push(format!("probe {:.0} ms", secs * 1000.0));
    }
    let spill: f64 = s
        .points_named(MetricName::OllamaModelMemoryUsage)
        .filter(|p| {
            p.attributes
                .get(AttrKey::OllamaMemoryLocation)
                .is_some_and(|l| l.as_text() == "ram")
        })
        .map(|p| p.value.as_f64())
        .sum();
    if spill > 0.0 {
        parts.push(format!("CPU SPILL {}", bytes(spill)));
    }
    parts
}

fn short(uuid: &str) -> &str {
    uuid.get(..12).unwrap_or(uuid)
}

/// Firing alerts (most severe first), then pending ones, one line each, shown under the
/// collector lines; nothing when all is quiet.
pub fn render_alerts(alerts: &[ActiveAlert]) -> String {
    let mut sorted: Vec<&ActiveAlert> = alerts.iter().collect();
    sorted.sort_by_key(|a| (a.state != AlertState::Firing, std::cmp::Reverse(a.severity)));
    let mut out = String::new();
    for a in sorted {
        let threshold = a.threshold.map(num).unwrap_or_default();
        out.push_str(&format!(
            "ALERT {:<8} {:<8} {} value {} threshold {} since_ms {}\n",
            a.state.as_str(),
            a.severity.as_str(),
            series_name(&a.rule, &a.attributes),
            num(a.value),
            threshold,
            a.since_ms,
        ));
    }
    out
}

/// Every point, one per line: name, attributes, value and unit.
pub fn render_points(s: &Snapshot) -> String {
    let mut out = render_summary(s);
    out.push('\n');
    let rows: Vec<(String, String, String)> = s
        .points
        .iter()
        .map(|p| {
            let attrs = p
                .attributes
                .iter()
                .map(|(k, v)| format!("{}={}", k.as_str(), v.as_text()))
                .collect::<Vec<_>>()
                .join(",");
            let v = match p.value {
                crate::model::Value::Int(i) => i.to_string(),
                crate::model::Value::Float(f) => format!("{f:.4}"),
            };
            (p.name.as_str().to_owned(), attrs, format!("{v} {}", p.unit))
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (n, a, v) in rows {
        out.push_str(&format!("{n:<w0$}  {a:<w1$}  {v}"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_firing_first_then_pending() {
        use crate::rules::event::Severity;
        let alert = |rule: &str, state, severity| ActiveAlert {
            rule: rule.to_owned(),
            state,
            severity,
            attributes: [("hw.id".to_owned(), "GPU-1".to_owned())].into(),
            value: 91.0,
            threshold: Some(90.0),
            since_ms: 5,
            metric: "hw.gpu.temperature".to_owned(),
            fired_ms: 5,
        };
        let text = render_alerts(&[
            alert("a", AlertState::Pending, Severity::Warning),
            alert("b", AlertState::Firing, Severity::Warning),
            alert("c", AlertState::Firing, Severity::Critical),
        ]);
        let rules: Vec<&str> = text
            .lines()
            .map(|l| l.split_whitespace().nth(3).unwrap())
            .collect();
        assert_eq!(
            rules,
            vec!["c{hw.id=GPU-1}", "b{hw.id=GPU-1}", "a{hw.id=GPU-1}"]
        );
        assert!(text.starts_with("ALERT firing   critical c{hw.id=GPU-1} value 91 threshold 90"));
        assert_eq!(render_alerts(&[]), "");
    }

    #[test]
    fn bytes_are_binary() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(24.0 * 1024.0 * 1024.0 * 1024.0), "24.0 GiB");
    }
}
