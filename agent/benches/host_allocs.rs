//! Heap allocations per host tick: the collector over this host's /proc with the default host
//! config (CPU, memory, pressure, disks, interfaces, filesystems), counted by a global
//! allocator on the collecting thread only (the statvfs workers are not counted). Prints the
//! allocations and bytes per tick; `HOSTWARDEN_BENCH_TICKS` sets the count (default 1000).
//!
//! `cargo bench -p hostwarden --bench host_allocs`

// A benchmark; the allocator wrapper forwards to the system allocator unchanged.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hostwarden::collectors::Collector;
use hostwarden::collectors::host::HostCollector;
use hostwarden::config::HostConfig;

struct Counting;

thread_local! {
    static COUNT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

fn count(bytes: usize) {
    // `try_with`: a thread being torn down has no counter, and its allocations are not ours.
    let _counted = COUNT.try_with(|c| {
        let (n, b) = c.get();
        c.set((n + 1, b + bytes as u64));
    });
}

// SAFETY: every call is forwarded to `System` with the same arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

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
    let before = COUNT.with(Cell::get);
    rt.block_on(async {
        for _ in 0..n {
            host.collect().await.unwrap();
        }
    });
    let after = COUNT.with(Cell::get);
    #[allow(clippy::cast_precision_loss)]
    let per = |a: u64, b: u64| (b - a) as f64 / n as f64;
    println!(
        "host tick on this host ({points} points, {n} ticks): {:.1} allocations and {:.0} bytes allocated per tick",
        per(before.0, after.0),
        per(before.1, after.1)
    );
}
