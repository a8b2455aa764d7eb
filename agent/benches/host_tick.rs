//! Host tick cost: CPU and wall time of one host collection, against the floor of merely
//! reading the same seven /proc files, and the daemon's steady RSS. Prints a table.
//!
//! Then the scaling curve: the same tick over the captured /proc trees in tests/fixtures/proc
//! (2, 64 and 128 CPUs), with the cost per CPU and the slope between sizes.
//!
//! `cargo bench -p hostwarden --bench host_tick` (set HOSTWARDEN_BENCH_TICKS to change the count).

// A benchmark measures real elapsed time.
#![allow(clippy::disallowed_types, clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostwarden::collectors::host::{HostCollector, parse_stat};
use hostwarden::config::HostConfig;

fn cpu_time() -> Duration {
    let mut ru = unsafe { std::mem::zeroed::<libc::rusage>() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

const FILES: [&str; 7] = [
    "stat",
    "meminfo",
    "loadavg",
    "vmstat",
    "pressure/cpu",
    "pressure/memory",
    "pressure/io",
];

/// Runs `f` `n` times in 10 batches; returns per-call (cpu, wall) medians and min..max spread.
fn measure(n: u32, mut f: impl FnMut()) -> [(f64, f64, f64); 2] {
    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..10 {
        let (c0, w0) = (cpu_time(), Instant::now());
        for _ in 0..n / 10 {
            f();
        }
        cpu.push((cpu_time() - c0).as_secs_f64() * 1e6 / f64::from(n / 10));
        wall.push(w0.elapsed().as_secs_f64() * 1e6 / f64::from(n / 10));
    }
    [stats(&mut cpu), stats(&mut wall)]
}

fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A copy of `tree` whose cpu lines have advanced by 100 jiffies (25 busy, 75 idle) each, so two
/// ticks alternating between the trees produce every per-CPU utilisation point.
fn advanced_copy(tree: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("pressure")).unwrap();
    for f in FILES {
        let text = std::fs::read_to_string(tree.join(f)).unwrap();
        let text = if f == "stat" {
            text.lines()
                .map(|l| {
                    if !l.starts_with("cpu") {
                        return l.to_owned();
                    }
                    let mut cells: Vec<String> = l.split_whitespace().map(str::to_owned).collect();
                    for (i, add) in [(1, 25u64), (4, 75u64)] {
                        cells[i] = (cells[i].parse::<u64>().unwrap() + add).to_string();
                    }
                    cells.join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        } else {
            text
        };
        std::fs::write(to.join(f), text).unwrap();
    }
}

/// Host tick cost per captured tree: (CPUs, points, CPU µs per tick median/min/max).
fn scaling(n: u32) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc");
    let mut trees: Vec<(usize, std::path::PathBuf)> = std::fs::read_dir(&fixtures)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let stat = std::fs::read_to_string(p.join("stat")).ok()?;
            Some((parse_stat(&stat).per_cpu.len(), p))
        })
        .collect();
    trees.sort();
    let dir = std::env::temp_dir().join(format!("hostwarden-scaling-{}", std::process::id()));
    println!();
    println!("host tick over captured /proc trees ({n} ticks; CPU µs per tick, median [min..max])");
    println!(
        "{:<28} {:>5} {:>7} {:>24} {:>10} {:>14}",
        "tree", "CPUs", "points", "CPU µs", "µs/CPU", "slope µs/CPU"
    );
    let mut prev: Option<(usize, f64)> = None;
    for (cpus, tree) in trees {
        // `cur` flips between the capture and its advanced copy before each tick; the flip's
        // own cost is measured alone and subtracted.
        let (a, b, cur) = (dir.join("a"), dir.join("b"), dir.join("cur"));
        let _fresh = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&tree, &a).unwrap();
        advanced_copy(&tree, &b);
        let flip = {
            let (a, b, cur, tmp) = (a.clone(), b.clone(), cur.clone(), dir.join("cur.new"));
            let mut on_a = false;
            move || {
                on_a = !on_a;
                std::os::unix::fs::symlink(if on_a { &a } else { &b }, &tmp).unwrap();
                std::fs::rename(&tmp, &cur).unwrap();
            }
        };
        let mut flip_only = flip.clone();
        let mut flip_tick = flip;
        flip_tick();
        let mut host = HostCollector::new(&HostConfig {
            proc_root: cur.clone(),
            ..HostConfig::default()
        });
        host.collect_now().unwrap();
        flip_tick();
        let points = host.collect_now().unwrap().points.len();
        let with = measure(n, || {
            flip_tick();
            host.collect_now().unwrap();
        })[0];
        let alone = measure(n, &mut flip_only)[0];
        let cost = (with.0 - alone.0, with.1 - alone.0, with.2 - alone.0);
        let slope = prev.map_or("".to_owned(), |(c, us)| {
            format!("{:.2}", (cost.0 - us) / (cpus - c) as f64)
        });
        println!(
            "{:<28} {:>5} {:>7} {:>24} {:>10.2} {:>14}",
            tree.file_name().unwrap().to_string_lossy(),
            cpus,
            points,
            format!("{:.1} [{:.1}..{:.1}]", cost.0, cost.1, cost.2),
            cost.0 / cpus as f64,
            slope
        );
        prev = Some((cpus, cost.0));
    }
    let _removed = std::fs::remove_dir_all(&dir);
}

fn main() {
    let n: u32 = std::env::var("HOSTWARDEN_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let root = Path::new("/proc");
    let mut buf = Vec::with_capacity(16 * 1024);
    let floor = measure(n, || {
        for f in FILES {
            buf.clear();
            std::fs::File::open(root.join(f))
                .unwrap()
                .read_to_end(&mut buf)
                .unwrap();
        }
    });
    let mut host = HostCollector::new(&HostConfig::default());
    host.collect_now().unwrap();
    let tick = measure(n, || {
        host.collect_now().unwrap();
    });

    println!("host tick ({n} iterations, 10 batches; median [min..max] per tick, microseconds)");
    println!("{:<34} {:>24} {:>24}", "what", "CPU µs", "wall µs");
    for (name, [c, w]) in [
        ("read 7 /proc files (floor)", floor),
        ("host collector tick", tick),
    ] {
        println!(
            "{name:<34} {:>24} {:>24}",
            format!("{:.1} [{:.1}..{:.1}]", c.0, c.1, c.2),
            format!("{:.1} [{:.1}..{:.1}]", w.0, w.1, w.2)
        );
    }
    println!("ratio tick/floor (CPU): {:.2}", tick[0].0 / floor[0].0);
    scaling(n.min(2000));

    // Steady RSS of the daemon: host collector only, 200 ms ticks, sampled for 10 s.
    let dir = std::env::temp_dir().join(format!("hostwarden-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("hostwarden.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\ninterval = \"200ms\"\nstate_dir = \"{}\"\nstatus_socket = \"{}/s.sock\"\n\
             [gpu]\nenabled = false\n[zfs]\nenabled = false\n[ollama]\nenabled = false\n",
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hostwarden"))
        .args(["run", "--view", "never", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut samples = Vec::new();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(r) = rss_kib(child.id()) {
            samples.push(r);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _removed = std::fs::remove_dir_all(&dir);
    if let (Some(first), Some(last)) = (samples.get(2), samples.last()) {
        let max = samples.iter().max().unwrap();
        println!(
            "daemon RSS (host only, 200 ms ticks, 10 s): steady {:.1} MiB, max {:.1} MiB, growth from 1 s to 10 s {} KiB",
            *last as f64 / 1024.0,
            *max as f64 / 1024.0,
            *last as i64 - *first as i64
        );
    }
}
