//! GPU collection cost per tick with 1, 8 and 64 stand-in GPUs.
//!
//! `cargo bench -p hostwarden-tests --bench gpu` (release profile). Each GPU count runs in a
//! child process of this benchmark (the stand-in library reads its state file from the
//! environment, which a process must not change for itself): it builds the real
//! `GpuCollector` on the stand-in libnvidia-ml, warms up, then times `TICKS` collections.
//! CPU time is getrusage(RUSAGE_SELF) user + system: every thread of the process (async workers,
//! the blocking pool, NVML binding, the stand-in library), excluding nothing.
//!
//! A second child makes the same NVML queries straight through nvml-wrapper, on one thread and
//! with nothing else: the difference is the agent's own share (blocking-pool hop, error
//! handling, building the points).

use std::path::{Path, PathBuf};
use std::process::Command;

use hostwarden::collectors::Collector;
use hostwarden::collectors::gpu::GpuCollector;
use hostwarden::config::GpuConfig;
use hostwarden_tests::nvml_shim::{self, STATE_ENV, ShimGpu, ShimState};

const TICKS: u32 = 1000;
const WARMUP: u32 = 10;
const COUNTS: [usize; 3] = [1, 8, 64];
const CHILD_ENV: &str = "HOSTWARDEN_BENCH_GPUS";
const MODE_ENV: &str = "HOSTWARDEN_BENCH_MODE";

fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(n) if std::env::var(MODE_ENV).is_ok_and(|m| m == "raw") => {
            raw_child(n.parse().expect("GPU count"))
        }
        Ok(n) => child(n.parse().expect("GPU count")),
        Err(_) => parent(),
    }
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One measurement; prints `gpus cpu_us_per_tick wall_us_per_tick points_per_tick`.
fn child(gpus: usize) {
    let library = PathBuf::from(std::env::var("HOSTWARDEN_BENCH_LIB").expect("library"));
    let proc_root = PathBuf::from(std::env::var("HOSTWARDEN_BENCH_PROC").expect("proc root"));
    let config = GpuConfig {
        nvml_library: Some(library),
        ..GpuConfig::default()
    };
    // As the agent runs: two async workers, NVML on the blocking pool.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut c = GpuCollector::new(&config, proc_root);
        let mut points = 0;
        for _ in 0..WARMUP {
            let s = c.collect().await.expect("warm-up collection");
            assert!(s.degraded.is_none(), "{:?}", s.degraded);
            points = s.points.len();
        }
        assert_eq!(
            points,
            gpus * 42,
            "every GPU reports 41 points and one process"
        );
        let cpu0 = cpu_seconds();
        let wall0 = tokio::time::Instant::now();
        for _ in 0..TICKS {
            let s = c.collect().await.expect("collection");
            std::hint::black_box(s);
        }
        let wall = wall0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let per = |s: f64| s * 1e6 / f64::from(TICKS);
        println!("{gpus} {:.1} {:.1} {points}", per(cpu), per(wall));
    });
}

/// The collector's NVML queries alone, through nvml-wrapper on this thread.
fn raw_child(gpus: usize) {
    use nvml_wrapper::enum_wrappers::device::{
        Clock, EccCounter, MemoryError, TemperatureSensor, TemperatureThreshold,
    };
    let library = std::env::var("HOSTWARDEN_BENCH_LIB").expect("library");
    let nvml = nvml_wrapper::Nvml::builder()
        .lib_path(std::ffi::OsStr::new(&library))
        .init()
        .expect("load the stand-in");
    let pass = || {
        let n = nvml.device_count().expect("count");
        for i in 0..n {
            let d = nvml.device_by_index(i).expect("device");
            std::hint::black_box((
                d.memory_info().ok(),
                d.utilization_rates().ok(),
                d.temperature(TemperatureSensor::Gpu).ok(),
                d.temperature_threshold(TemperatureThreshold::Slowdown).ok(),
                d.temperature_threshold(TemperatureThreshold::Shutdown).ok(),
                d.power_usage().ok(),
                d.enforced_power_limit().ok(),
                d.total_energy_consumption().ok(),
                d.current_throttle_reasons().ok(),
                d.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
                    .ok(),
                d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
                    .ok(),
                d.fan_speed(0).ok(),
                d.clock_info(Clock::SM).ok(),
                d.clock_info(Clock::Memory).ok(),
                d.running_compute_processes().ok(),
            ));
        }
        usize::try_from(n).expect("count fits")
    };
    for _ in 0..WARMUP {
        assert_eq!(pass(), gpus);
    }
    let cpu0 = cpu_seconds();
    let wall0 = tokio::time::Instant::now();
    for _ in 0..TICKS {
        pass();
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let per = |s: f64| s * 1e6 / f64::from(TICKS);
    println!("{gpus} {:.1} {:.1} 0", per(cpu), per(wall));
}

fn state(gpus: usize) -> ShimState {
    let list = (0..gpus)
        .map(|i| {
            let mut g = ShimGpu::full(i);
            g.procs = Some(vec![(4242, 4_294_967_296)]);
            g
        })
        .collect();
    ShimState::with_gpus(list)
}

fn measure(library: &Path, dir: &Path, gpus: usize, mode: &str) -> (f64, f64, usize) {
    let state_dir = dir.join(gpus.to_string());
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let state_file = state(gpus).write(&state_dir);
    let out = Command::new(std::env::current_exe().expect("current exe"))
        .env(CHILD_ENV, gpus.to_string())
        .env(MODE_ENV, mode)
        .env(STATE_ENV, &state_file)
        .env("HOSTWARDEN_BENCH_LIB", library)
        .env("HOSTWARDEN_BENCH_PROC", dir.join("proc"))
        .output()
        .expect("run the measuring child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = line.split_whitespace().collect();
    (
        f[1].parse().expect("cpu"),
        f[2].parse().expect("wall"),
        f[3].parse().expect("points"),
    )
}

fn parent() {
    let library = nvml_shim::build();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("proc/4242")).expect("proc dir");
    std::fs::write(dir.path().join("proc/4242/comm"), "ollama_llama_se\n").expect("comm");
    println!("GPU collector, {TICKS} ticks after {WARMUP} warm-up, stand-in libnvidia-ml");
    println!("CPU = getrusage(RUSAGE_SELF) user+sys of the whole process, per tick");
    println!();
    println!(
        "{:>5} {:>7} {:>13} {:>13} {:>13} {:>15}",
        "GPUs", "points", "CPU µs/tick", "wall µs/tick", "NVML alone", "agent µs/GPU"
    );
    let mut rows = Vec::new();
    let mut own = Vec::new();
    for gpus in COUNTS {
        let (cpu, wall, points) = measure(&library, dir.path(), gpus, "collector");
        let (raw, _, _) = measure(&library, dir.path(), gpus, "raw");
        let g = gpus as f64;
        println!(
            "{gpus:>5} {points:>7} {cpu:>13.1} {wall:>13.1} {raw:>13.1} {:>15.2}",
            (cpu - raw) / g
        );
        rows.push((g, cpu));
        own.push((g, cpu - raw));
    }
    println!();
    println!("NVML alone = the same queries through nvml-wrapper on one thread (CPU µs/tick);");
    println!("agent µs/GPU = (CPU - NVML alone) / GPUs: the agent's own share per GPU per tick.");
    let (slope, intercept) = fit(&rows);
    println!();
    println!(
        "slope {slope:.2} µs CPU per GPU per tick (all of it); intercept {intercept:.1} µs per tick"
    );
    let (slope, _) = fit(&own);
    println!("slope of the agent's own share: {slope:.2} µs per GPU per tick");
}

/// Least-squares line through (GPUs, µs per tick): the slope is the cost of one more GPU, the
/// intercept the fixed cost of a tick.
fn fit(rows: &[(f64, f64)]) -> (f64, f64) {
    let n = rows.len() as f64;
    let mx = rows.iter().map(|r| r.0).sum::<f64>() / n;
    let my = rows.iter().map(|r| r.1).sum::<f64>() / n;
    let sxy: f64 = rows.iter().map(|r| (r.0 - mx) * (r.1 - my)).sum();
    let sxx: f64 = rows.iter().map(|r| (r.0 - mx).powi(2)).sum();
    let slope = sxy / sxx;
    (slope, my - slope * mx)
}
