//! CPU of turning one tick's snapshot into the OTLP request body, the metric export's share of
//! every tick: thread CPU nanoseconds per export and per point (CPU time, not wall time, so
//! other processes on the machine move the figures less), bytes per request, and heap allocations
//! per export (a counting global allocator), for two snapshots: this host's default host tick,
//! and a synthetic GPU node (32 CPUs by mode, memory, pressure, 8 GPUs with the GPU collector's
//! seven device attributes, 2 ZFS pools). Prints a table; `HOSTWARDEN_BENCH_EXPORTS` sets the
//! count (default 20000).
//!
//! `cargo bench -p hostwarden --bench otlp_encode`

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use bytes::BytesMut;
use hostwarden::collectors::host::HostCollector;
use hostwarden::config::HostConfig;
use hostwarden::exporters::metrics::encode::Encoder;
use hostwarden::exporters::resource::{self, HostFacts};
use hostwarden::exporters::settings::Env;
use hostwarden::model::{AttrKey, Attrs, MetricName, MetricPoint, Snapshot};

#[path = "support/counting.rs"]
mod counting;

/// This thread's CPU time in nanoseconds.
fn cpu_nanos() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    #[allow(clippy::cast_precision_loss)]
    let ns = ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64;
    ns
}

/// This host's default host tick (the second, so the utilisation and rate points are there).
fn host_tick() -> Snapshot {
    let mut host = HostCollector::new(&HostConfig::default());
    host.collect_now().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let points = host.collect_now().unwrap().points;
    Snapshot {
        timestamp_ms: 1_700_000_000_000,
        collectors: Vec::new(),
        points,
    }
}

/// A GPU node's tick, built as the collectors build theirs.
fn gpu_node() -> Snapshot {
    let modes = hostwarden::collectors::host::cpu::MODES;
    let mut points = Vec::new();
    let mut push = |name, attrs, value: f64| points.push(MetricPoint::new(name, attrs, value));
    for mode in modes {
        push(
            MetricName::SystemCpuUtilization,
            Attrs::new().with(AttrKey::CpuMode, mode),
            0.125,
        );
        for c in 0..32u32 {
            let a = Attrs::new()
                .with(AttrKey::CpuLogicalNumber, c)
                .with(AttrKey::CpuMode, mode);
            push(MetricName::SystemCpuTime, a, 81_234.56 + f64::from(c));
        }
    }
    for state in ["used", "free", "cached", "buffers"] {
        let a = Attrs::new().with(AttrKey::SystemMemoryState, state);
        push(MetricName::SystemMemoryUsage, a.clone(), 3.4e10);
        push(MetricName::SystemMemoryUtilization, a, 0.25);
    }
    push(MetricName::SystemMemoryLimit, Attrs::new(), 1.37e11);
    for (name, stall) in [
        (MetricName::SystemCpuLinuxPressure10s, "some"),
        (MetricName::SystemMemoryLinuxPressure10s, "some"),
        (MetricName::SystemMemoryLinuxPressure10s, "full"),
        (MetricName::SystemIoLinuxPressure10s, "some"),
        (MetricName::SystemIoLinuxPressure10s, "full"),
    ] {
        push(
            name,
            Attrs::new().with(AttrKey::PressureStallType, stall),
            0.02,
        );
    }
    for g in 0..8u32 {
        let base = Attrs::new()
            .with(
                AttrKey::HwId,
                format!("GPU-6f1c2d3e-{g:04x}-4b5a-9c8d-7e6f5a4b3c2d"),
            )
            .with(AttrKey::HwType, "gpu")
            .with(AttrKey::HwVendor, "NVIDIA")
            .with(AttrKey::HwName, "NVIDIA H100 80GB HBM3")
            .with(AttrKey::HwModel, "NVIDIA H100 80GB HBM3")
            .with(AttrKey::HwDriverVersion, "550.54.15")
            .with(AttrKey::HwSerialNumber, format!("165432100{g:04}"));
        for state in ["ok", "degraded", "failed"] {
            let a = base.clone().with(AttrKey::HwState, state);
            push(MetricName::HwStatus, a, f64::from(u8::from(state == "ok")));
        }
        for (name, v) in [
            (MetricName::HwGpuMemoryUsage, 6.1e10),
            (MetricName::HwGpuMemoryLimit, 8.5e10),
            (MetricName::HwGpuMemoryFree, 2.4e10),
            (MetricName::HwGpuMemoryReserved, 5.6e8),
            (MetricName::HwGpuMemoryUtilization, 0.72),
            (MetricName::HwGpuMemoryControllerUtilization, 0.41),
            (MetricName::HwPower, 612.5),
            (MetricName::HwGpuPowerLimit, 700.0),
            (MetricName::HwEnergy, 9.87e7),
            (MetricName::HwGpuPcieReplays, 0.0),
            (MetricName::HwGpuXidLast, 0.0),
        ] {
            push(name, base.clone(), v);
        }
        push(
            MetricName::HwGpuUtilization,
            base.clone().with(AttrKey::HwGpuTask, "general"),
            0.97,
        );
        let sensor = base.clone().with(AttrKey::HwSensorLocation, "gpu");
        push(MetricName::HwTemperature, sensor.clone(), 71.0);
        for kind in ["high.degraded", "high.critical"] {
            let a = sensor.clone().with(AttrKey::HwLimitType, kind);
            push(MetricName::HwTemperatureLimit, a, 90.0);
        }
        for clock in ["sm", "memory"] {
            let a = base.clone().with(AttrKey::HwGpuClock, clock);
            push(MetricName::HwGpuClockFrequency, a, 1.98e9);
        }
        for (_bit, reason) in hostwarden::collectors::gpu::THROTTLE_REASONS {
            let a = base.clone().with(AttrKey::HwGpuThrottleReason, reason);
            push(MetricName::HwGpuThrottled, a, 0.0);
        }
    }
    for pool in ["tank", "rpool"] {
        let a = Attrs::new().with(AttrKey::ZfsPoolName, pool);
        push(MetricName::ZfsPoolUsage, a.clone(), 1.2e12);
        push(MetricName::ZfsPoolLimit, a.clone(), 4.0e12);
        push(MetricName::ZfsPoolUtilization, a.clone(), 0.3);
        for dir in ["read", "write"] {
            let d = a.clone().with(AttrKey::DiskIoDirection, dir);
            push(MetricName::ZfsPoolOperations, d.clone(), 1.0e7);
            push(MetricName::ZfsPoolIo, d.clone(), 5.0e11);
            push(MetricName::ZfsPoolOperationLatency, d, 0.004);
        }
    }
    Snapshot {
        timestamp_ms: 1_700_000_000_000,
        collectors: Vec::new(),
        points,
    }
}

/// (CPU ns per export: median, min, max of 10 batches; allocations per export; request bytes).
fn measure(encoder: &mut Encoder, snapshot: &Snapshot, n: u32) -> ((f64, f64, f64), f64, usize) {
    let mut buf = BytesMut::new();
    // Warm-up: the first exports size the encoder's and the buffer's storage.
    for _ in 0..10 {
        encoder.encode(snapshot, &mut buf);
    }
    let mut batches = Vec::new();
    let allocations = counting::thread_counted().0;
    for _ in 0..10 {
        let start = cpu_nanos();
        for _ in 0..n / 10 {
            std::hint::black_box(encoder.encode(std::hint::black_box(snapshot), &mut buf));
        }
        batches.push((cpu_nanos() - start) / f64::from(n / 10));
    }
    let allocated = counting::thread_counted().0 - allocations;
    batches.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss)]
    let per_export = allocated as f64 / f64::from(n / 10 * 10);
    ((batches[5], batches[0], batches[9]), per_export, buf.len())
}

fn main() {
    let n: u32 = std::env::var("HOSTWARDEN_BENCH_EXPORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let facts = HostFacts::read(std::path::Path::new("/"));
    let resource = resource::build(&facts, &Env::new());
    println!("OTLP metric encoding ({n} exports, 10 batches; median [min..max])");
    println!(
        "{:<30} {:>7} {:>8} {:>28} {:>9} {:>12}",
        "snapshot", "points", "bytes", "CPU ns/export", "ns/point", "allocs/export"
    );
    for (what, snapshot) in [
        ("this host's host tick", host_tick()),
        ("GPU node (32 CPUs, 8 GPUs)", gpu_node()),
    ] {
        let mut encoder = Encoder::new(&resource, SystemTime::now());
        let ((med, min, max), allocs, bytes) = measure(&mut encoder, &snapshot, n);
        #[allow(clippy::cast_precision_loss)]
        let per_point = med / snapshot.points.len() as f64;
        println!(
            "{what:<30} {:>7} {bytes:>8} {:>28} {per_point:>9.1} {allocs:>12.2}",
            snapshot.points.len(),
            format!("{med:.0} [{min:.0}..{max:.0}]"),
        );
    }
}
