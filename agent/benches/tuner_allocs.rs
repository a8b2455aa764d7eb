//! Heap allocations of the Ollama tuner's advice per tick (issue 20), on the all-collectors
//! shape: 8 GPUs of 24 GiB, host memory with a ZFS ARC, memory pressure, and an Ollama that
//! systemd watches (its unit sets some OLLAMA_* variables) with llama3.1:8b and
//! nomic-embed-text loaded (their real `/api/show` answers, tests/fixtures/ollama). The same
//! snapshot and view every tick: nothing changes, as on a host at rest.
//!
//! Rows: one `advise` call (what `hostwarden once` makes), and `TunerObserver::observe` per
//! tick as the daemon calls it, after a warm-up, and one clone of the advice. Counted on the
//! calling thread.
//! `HOSTWARDEN_BENCH_TICKS` sets the ticks (default 1000).
//!
//! `cargo bench -p hostwarden --bench tuner_allocs`

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use hostwarden::collectors::ollama::{ModelView, OllamaView, OllamaViewCell, UnitWatch};
use hostwarden::model::{AttrKey, Attrs, MetricName, MetricPoint, Snapshot};
use hostwarden::sys::ollama::{parse_ps, parse_show};
use hostwarden::sys::systemd::UnitStatus;
use hostwarden::tuner::config::TunerConfig;
use hostwarden::tuner::observe::{TunerObserver, advise};

#[path = "support/counting.rs"]
mod counting;

const GIB: u64 = 1 << 30;

/// What the GPU, host and ZFS collectors report that the tuner reads, among other points.
fn snapshot() -> Snapshot {
    let mut points = Vec::new();
    for g in 0..8 {
        // The GPU collector shares each device's UUID between its points.
        let id: Arc<str> = Arc::from(format!("GPU-{g:08x}-0000-0000-0000-000000000000"));
        let attrs = || Attrs::new().with(AttrKey::HwId, &id);
        points.push(MetricPoint::new(
            MetricName::HwGpuMemoryLimit,
            attrs(),
            24 * GIB,
        ));
        points.push(MetricPoint::new(
            MetricName::HwGpuMemoryUsage,
            attrs(),
            if g == 0 { 6 * GIB } else { GIB / 2 },
        ));
    }
    let one = |name, value: u64| MetricPoint::new(name, Attrs::new(), value);
    points.push(one(MetricName::SystemMemoryLimit, 256 * GIB));
    points.push(one(MetricName::SystemMemoryLinuxAvailable, 180 * GIB));
    points.push(one(MetricName::ZfsArcReclaimable, 40 * GIB));
    points.push(one(MetricName::SystemCpuLogicalCount, 64));
    for (kind, value) in [("some", 0.01), ("full", 0.0)] {
        points.push(MetricPoint::new(
            MetricName::SystemMemoryLinuxPressure1m,
            Attrs::new().with(AttrKey::PressureStallType, kind),
            value,
        ));
    }
    Snapshot {
        points,
        ..Snapshot::default()
    }
}

/// Ollama 0.30.11 with two models loaded, its unit watched by systemd.
fn view() -> OllamaView {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ollama");
    let show = |file: &str| parse_show(&std::fs::read(fixtures.join(file)).unwrap()).unwrap();
    let ps = parse_ps(
        br#"{"models":[
            {"name":"llama3.1:8b","model":"llama3.1:8b","size":6006734848,
             "details":{"family":"llama"},"size_vram":6006734848,"context_length":8192},
            {"name":"nomic-embed-text:latest","model":"nomic-embed-text:latest","size":849346560,
             "details":{"family":"nomic-bert"},"size_vram":849346560,"context_length":8192}]}"#,
    )
    .unwrap();
    let arch = [
        show("show-llama3.1-8b-q4km-real.json"),
        show("show-nomic-embed-text-real.json"),
    ];
    let models = ps
        .into_iter()
        .zip(arch)
        .map(|(ps, a)| ModelView { ps, arch: Some(a) })
        .collect();
    let environment = [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "OLLAMA_HOST=0.0.0.0:11434",
        "OLLAMA_NUM_PARALLEL=4",
        "OLLAMA_KEEP_ALIVE=15m",
        "OLLAMA_MAX_LOADED_MODELS=3",
    ];
    OllamaView {
        url: "http://127.0.0.1:11434".into(),
        up: true,
        probe_seconds: Some(0.001),
        problems: Vec::new(),
        version: Some("0.30.11".into()),
        models: Some(models),
        unit: UnitWatch::Status(UnitStatus {
            load_state: "loaded".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
            main_pid: 1234,
            environment: environment.iter().map(|s| (*s).to_owned()).collect(),
            ..UnitStatus::default()
        }),
        process: None,
        at: tokio::time::Instant::now(),
    }
}

/// Allocations and bytes `f` makes on this thread.
fn counted(f: impl FnOnce()) -> (u64, u64) {
    let before = counting::thread_counted();
    f();
    let after = counting::thread_counted();
    (after.0 - before.0, after.1 - before.1)
}

#[allow(clippy::cast_precision_loss)]
fn main() {
    let n: u64 = std::env::var("HOSTWARDEN_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let snap = snapshot();
    let view = view();
    let config = TunerConfig::default();

    let once = counted(|| {
        let advice = advise(&snap, Some(&view), &config);
        assert!(advice.is_some(), "Ollama is up: there is advice");
        drop(advice);
    });

    let cell = OllamaViewCell::default();
    cell.publish(view);
    let mut observer = TunerObserver::new(cell);
    // Warm-up: the first tick logs the change and keeps the advice.
    for _ in 0..3 {
        assert!(observer.observe(&snap, &config).is_some());
    }
    let ticks = counted(|| {
        for _ in 0..n {
            std::hint::black_box(observer.observe(&snap, &config));
        }
    });

    let advice = observer.last().unwrap();
    let clone = counted(|| drop(std::hint::black_box(advice.clone())));

    println!("Tuner allocations, all-collectors shape ({n} ticks, calling thread):\n");
    println!("| call | allocations | bytes |");
    println!("|---|---:|---:|");
    println!("| `advise`, once | {} | {} |", once.0, once.1);
    println!(
        "| `TunerObserver::observe`, per tick | {:.1} | {:.0} |",
        ticks.0 as f64 / n as f64,
        ticks.1 as f64 / n as f64
    );
    println!(
        "| `Advice::clone` (the daemon cloned the advice every tick until issue 20) | {} | {} |",
        clone.0, clone.1
    );
}
