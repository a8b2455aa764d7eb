//! How long one rule evaluation takes: the shipped rules plus N extra rules against a
//! snapshot of a busy host (per-CPU points, 8 GPUs, 4 pools). Prints a table; asserts nothing.
//! Run: `cargo bench -p hostwarden --bench rules`.

use hostwarden::config::RuleConfig;
use hostwarden::config::default_rules;
use hostwarden::model::{AttrKey, Attrs, MetricName, MetricPoint, Snapshot};
use hostwarden::rules::Engine;
use tokio::time::Instant;

fn snapshot(cpus: u32) -> Snapshot {
    // What the host collector emits: the whole host's utilisation by mode, each CPU's time by
    // mode, memory utilisation by state.
    let modes = hostwarden::collectors::host::cpu::MODES;
    let mut points = Vec::new();
    for mode in modes {
        let a = Attrs::new().with(AttrKey::CpuMode, mode);
        points.push(MetricPoint::new(MetricName::SystemCpuUtilization, a, 0.5));
    }
    for c in 0..cpus {
        for mode in modes {
            let a = Attrs::new()
                .with(AttrKey::CpuLogicalNumber, c)
                .with(AttrKey::CpuMode, mode);
            points.push(MetricPoint::new(MetricName::SystemCpuTime, a, 1000.0));
        }
    }
    for state in ["used", "free", "cached", "buffers"] {
        let a = Attrs::new().with(AttrKey::SystemMemoryState, state);
        points.push(MetricPoint::new(
            MetricName::SystemMemoryUtilization,
            a,
            0.25,
        ));
    }
    for g in 0..8 {
        let id = format!("GPU-{g}");
        let t = Attrs::new()
            .with(AttrKey::HwId, id.clone())
            .with(AttrKey::HwSensorLocation, "gpu");
        points.push(MetricPoint::new(
            MetricName::HwTemperature,
            t,
            80.0 + f64::from(g),
        ));
        let l = Attrs::new()
            .with(AttrKey::HwId, id.clone())
            .with(AttrKey::HwLimitType, "high.degraded");
        points.push(MetricPoint::new(MetricName::HwTemperatureLimit, l, 87.0));
        let m = Attrs::new().with(AttrKey::HwId, id.clone());
        points.push(MetricPoint::new(
            MetricName::HwGpuMemoryUtilization,
            m,
            0.93,
        ));
    }
    for p in ["tank", "rpool", "scratch", "backup"] {
        let a = Attrs::new().with(AttrKey::ZfsPoolName, p);
        points.push(MetricPoint::new(
            MetricName::ZfsPoolUtilization,
            a.clone(),
            0.8,
        ));
        let lat = a.with(AttrKey::DiskIoDirection, "read");
        points.push(MetricPoint::new(
            MetricName::ZfsPoolOperationLatency,
            lat,
            0.004,
        ));
    }
    Snapshot {
        points,
        ..Snapshot::default()
    }
}

fn extra_rules(n: usize) -> Vec<RuleConfig> {
    (0..n)
        .map(|i| {
            let text = format!(
                "name = \"extra{i}\"\nmetric = \"zfs.pool.operation.latency\"\nop = \">\"\nwarning = 2\nbaseline = {{ window = \"1h\", warmup = \"30m\" }}\nover = {{ window = \"1m\", fn = \"avg\" }}"
            );
            toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn main() {
    println!(
        "{:>6} {:>6} {:>10} {:>14}",
        "rules", "cpus", "points", "µs/evaluate"
    );
    for (extra, cpus) in [(0usize, 2u32), (0, 128), (100, 128), (1000, 128)] {
        let mut rules = default_rules();
        rules.extend(extra_rules(extra));
        let mut engine = Engine::new(&rules);
        let snap = snapshot(cpus);
        let ticks = 2000u64;
        let start = Instant::now();
        for i in 0..ticks {
            std::hint::black_box(engine.evaluate_at(1_000_000 + i * 5000, &snap));
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / ticks as f64;
        println!(
            "{:>6} {:>6} {:>10} {:>14.1}",
            rules.len(),
            cpus,
            snap.points.len(),
            per
        );
    }
}
