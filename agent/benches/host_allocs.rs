//! Heap allocations per host tick: the collector over this host's /proc with the default host
//! config (CPU, memory, pressure, disks, interfaces, filesystems), counted by a global
//! allocator on the collecting thread only (the statvfs workers are not counted). Prints the
//! allocations and bytes per tick; `HOSTWARDEN_BENCH_TICKS` sets the count (default 1000).
//!
//! `cargo bench -p hostwarden --bench host_allocs`

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used)]

use hostwarden::collectors::Collector;
use hostwarden::collectors::host::HostCollector;
use hostwarden::config::HostConfig;

#[path = "support/counting.rs"]
mod counting;

fn main() {
    let n: u64 = std::env::var("HOSTWARDEN_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut host = HostCollector::new(&HostConfig::default());
    let points = rt.block_on(async {
        // Warm-up: the first ticks size the buffers and start the statvfs workers.
        for _ in 0..10 {
            host.collect().await.unwrap();
        }
        host.collect().await.unwrap().points.len()
    });
    let before = counting::thread_counted();
    rt.block_on(async {
        for _ in 0..n {
            host.collect().await.unwrap();
        }
    });
    let after = counting::thread_counted();
    #[allow(clippy::cast_precision_loss)]
    let per = |a: u64, b: u64| (b - a) as f64 / n as f64;
    println!(
        "host tick on this host ({points} points, {n} ticks): {:.1} allocations and {:.0} bytes allocated per tick",
        per(before.0, after.0),
        per(before.1, after.1)
    );
}
