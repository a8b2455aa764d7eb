//! Heap allocations per tick of the whole running agent on this host (issue 20), for a host-only
//! config and for the shipped one (whose GPU, ZFS and Ollama collectors find nothing on a bare
//! host). The daemon itself (`runtime::run`, at the shortest interval, 100 ms) runs twice, for
//! a few ticks and for many, and the difference is divided by the ticks between, so start-up
//! and shutdown cancel out. Beside it, the collection and the rules alone, through the calls
//! the daemon makes, so the table says where a tick's allocations go; the rest (tuner,
//! self-metrics, status report, runtime) is the whole less those two. Every thread counts: the
//! runtime's, the statvfs workers, tokio's blocking pool. `HOSTWARDEN_BENCH_TICKS` sets the
//! ticks the long run adds (default 100, ten seconds per config).
//!
//! `cargo bench -p hostwarden --bench tick_allocs`

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use hostwarden::cli::ViewMode;
use hostwarden::collectors;
use hostwarden::config::{self, Config};
use hostwarden::rules::Alerting;
use hostwarden::runtime::{self, RunOptions};
use tokio::time::Instant;

#[path = "support/counting.rs"]
mod counting;

/// The snapshot's timestamp, as the daemon stamps it.
fn wall_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Per tick, from two readings `ticks` apart.
#[allow(clippy::cast_precision_loss)]
fn per_tick(before: (u64, u64), after: (u64, u64), ticks: u64) -> (f64, f64) {
    (
        (after.0 - before.0) as f64 / ticks as f64,
        (after.1 - before.1) as f64 / ticks as f64,
    )
}

/// A config file in `dir`: `extra` after an `[agent]` section that keeps state and socket there.
fn write_config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[agent]\ninterval = \"100ms\"\nstate_dir = \"{state}\"\nstatus_socket = \"{sock}\"\n{extra}",
        state = dir.join(format!("{name}-state")).display(),
        sock = dir.join(format!("{name}.sock")).display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Allocations of one whole daemon run of `ticks` ticks.
fn daemon_run(path: &Path, ticks: u64) -> (u64, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = counting::all_counted();
    rt.block_on(runtime::run(RunOptions {
        config_path: Some(path.to_owned()),
        view: ViewMode::Never,
        ticks: Some(ticks),
    }))
    .unwrap();
    drop(rt);
    let after = counting::all_counted();
    (after.0 - before.0, after.1 - before.1)
}

/// Collection and rules alone, per tick, as the daemon calls them and at its interval (what
/// the collectors retry or probe goes by the clock).
fn parts(config: &Config, ticks: u64) -> [(f64, f64); 2] {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut list = collectors::from_config(config.collectors());
    let mut alerting = Alerting::new(config.alerting());
    let deadline = config.collector_deadline();
    rt.block_on(async {
        let mut every = tokio::time::interval(config.agent.interval);
        // Warm-up: the first ticks size the buffers, start the statvfs workers, find series.
        for _ in 0..10 {
            every.tick().await;
            let mut snap = collectors::collect_all(&mut list, deadline, wall_ms()).await;
            alerting.on_tick(Instant::now(), &mut snap);
        }
        let (mut collect, mut rules) = ((0, 0), (0, 0));
        for _ in 0..ticks {
            every.tick().await;
            let start = counting::all_counted();
            let mut snap = collectors::collect_all(&mut list, deadline, wall_ms()).await;
            let collected = counting::all_counted();
            alerting.on_tick(Instant::now(), &mut snap);
            let judged = counting::all_counted();
            collect.0 += collected.0 - start.0;
            collect.1 += collected.1 - start.1;
            rules.0 += judged.0 - collected.0;
            rules.1 += judged.1 - collected.1;
        }
        [
            per_tick((0, 0), collect, ticks),
            per_tick((0, 0), rules, ticks),
        ]
    })
}

fn main() {
    let n: u64 = std::env::var("HOSTWARDEN_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = std::env::temp_dir().join(format!("hostwarden-tick-allocs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let configs = [
        (
            "host only",
            "hostonly",
            "[gpu]\nenabled = false\n[zfs]\nenabled = false\n[ollama]\nenabled = false\n",
        ),
        ("shipped defaults", "defaults", ""),
    ];
    println!("Allocations per tick on this host ({n} ticks, every thread):\n");
    println!("| config | part | allocations | bytes |");
    println!("|---|---|---:|---:|");
    for (label, name, extra) in configs {
        let path = write_config(&dir, name, extra);
        let config = config::load_file(&path).unwrap();
        let short = daemon_run(&path, 10);
        let long = daemon_run(&path, 10 + n);
        let whole = per_tick(short, long, n);
        let [collect, rules] = parts(&config, n);
        let rest = (whole.0 - collect.0 - rules.0, whole.1 - collect.1 - rules.1);
        for (part, (a, b)) in [
            ("collection", collect),
            ("rules", rules),
            ("the rest (tuner, self-metrics, status, runtime)", rest),
            ("**whole tick (the daemon)**", whole),
        ] {
            println!("| {label} | {part} | {a:.1} | {b:.0} |");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
