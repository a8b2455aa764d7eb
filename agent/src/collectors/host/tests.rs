use std::path::{Path, PathBuf};

use procfs::{FromBufRead, Meminfo};

use super::*;
use crate::model::{Snapshot, Value};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc/debian12-qemu-2cpu")
}

fn collector(root: &Path) -> HostCollector {
    HostCollector::new(&collector_config(root))
}

fn collector_config(root: &Path) -> HostConfig {
    // The CPU/memory trees hold no diskstats, net/dev or mountinfo: those parts have their
    // own fixture (devices_tests.rs).
    HostConfig {
        enabled: true,
        proc_root: root.to_path_buf(),
        per_cpu: true,
        disk: DiskConfig {
            enabled: false,
            ..DiskConfig::default()
        },
        network: NetworkConfig {
            enabled: false,
            ..NetworkConfig::default()
        },
        filesystem: FilesystemConfig {
            enabled: false,
            ..FilesystemConfig::default()
        },
        ..HostConfig::default()
    }
}

fn snap(sample: Sample) -> Snapshot {
    Snapshot {
        points: sample.points,
        ..Snapshot::default()
    }
}

fn value(s: &Snapshot, name: MetricName, with: &[(AttrKey, &str)]) -> Option<Value> {
    s.find(name, with).map(|p| p.value)
}

#[test]
fn stat_keeps_cpu_numbers_of_sparse_online_cpus() {
    let text = "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu3 5 0 5 40 0 0 0 0 0 0\nintr 1\n";
    let s = parse_stat(text);
    assert_eq!(s.total, Some(CpuTicks([10, 0, 10, 80, 0, 0, 0])));
    assert_eq!(
        s.per_cpu.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        vec![0, 3]
    );
}

#[test]
fn stat_columns_map_to_the_conventions_modes_with_softirq_in_interrupt() {
    // user nice system idle iowait irq softirq steal guest guest_nice
    let s = parse_stat("cpu  1 2 3 4 5 6 7 8 9 10\n");
    assert_eq!(s.total, Some(CpuTicks([1, 2, 3, 4, 5, 13, 8])));
    // Kernels before 2.6.11 print four columns: the rest count as 0.
    let old = parse_stat("cpu  1 2 3 4\n");
    assert_eq!(old.total, Some(CpuTicks([1, 2, 3, 4, 0, 0, 0])));
}

#[test]
fn mode_shares_need_elapsed_time_and_add_up_to_one() {
    let a = CpuTicks([10, 0, 0, 70, 20, 0, 0]);
    assert_eq!(mode_shares(a, a), None);
    let b = CpuTicks([35, 0, 0, 120, 45, 0, 0]);
    assert_eq!(
        mode_shares(a, b),
        Some([0.25, 0.0, 0.0, 0.5, 0.25, 0.0, 0.0])
    );
    // A counter that went backwards (iowait can; an unplugged CPU restarts from 0) is no time,
    // not negative time: the shares still add up to 1, or there are none.
    let c = CpuTicks([35, 0, 0, 145, 10, 0, 0]);
    assert_eq!(
        mode_shares(a, c),
        Some([0.25, 0.0, 0.0, 0.75, 0.0, 0.0, 0.0])
    );
    assert_eq!(mode_shares(a, CpuTicks([5, 0, 0, 50, 10, 0, 0])), None);
}

#[test]
fn pressure_without_a_full_line_keeps_some() {
    let (some, full) = parse_pressure("some avg10=1.50 avg60=0.25 avg300=0.00 total=1234567\n");
    assert_eq!(
        some,
        Some(PressureLine {
            avg10: 1.5,
            avg60: 0.25,
            avg300: 0.0,
            total_us: 1_234_567
        })
    );
    assert_eq!(full, None);
}

#[test]
fn oom_kill_is_absent_on_old_kernels() {
    assert_eq!(parse_oom_kills("pgfault 1\noom_kill 7\n"), Some(7));
    assert_eq!(parse_oom_kills("pgfault 1\n"), None);
}

#[test]
fn captured_tree_gives_exact_values_and_no_cpu_utilisation_on_the_first_read() {
    let mut c = collector(&fixture());
    let sample = c.collect_now().unwrap();
    assert_eq!(sample.degraded, None);
    let s = snap(sample);
    assert_eq!(s.points_named(MetricName::SystemCpuUtilization).count(), 0);
    assert_eq!(
        value(&s, MetricName::SystemCpuLogicalCount, &[]),
        Some(Value::Int(2))
    );
    assert_eq!(
        value(&s, MetricName::SystemMemoryLimit, &[]),
        Some(Value::Int(24_684_084 * 1024))
    );
    let state = |v| [(AttrKey::SystemMemoryState, v)];
    assert_eq!(
        value(&s, MetricName::SystemMemoryUsage, &state("free")),
        Some(Value::Int(17_067_484 * 1024))
    );
    assert_eq!(
        value(&s, MetricName::SystemMemoryUsage, &state("buffers")),
        Some(Value::Int(45_896 * 1024))
    );
    let cached = (6_063_156 + 302_040) * 1024;
    assert_eq!(
        value(&s, MetricName::SystemMemoryUsage, &state("cached")),
        Some(Value::Int(cached))
    );
    let used = (24_684_084 - 17_067_484 - 45_896 - 6_063_156 - 302_040) * 1024;
    assert_eq!(
        value(&s, MetricName::SystemMemoryUsage, &state("used")),
        Some(Value::Int(used))
    );
    // Utilisation by the same states, each over the limit: they add up to 1.
    let share = |st| {
        value(&s, MetricName::SystemMemoryUtilization, &state(st))
            .unwrap()
            .as_f64()
    };
    #[allow(clippy::cast_precision_loss)]
    let want_used = used as f64 / (24_684_084.0 * 1024.0);
    assert!((share("used") - want_used).abs() < 1e-12);
    let sum: f64 = ["used", "free", "cached", "buffers"]
        .map(share)
        .iter()
        .sum();
    assert!((sum - 1.0).abs() < 1e-12, "{sum}");
    assert_eq!(
        s.points_named(MetricName::SystemMemoryUtilization).count(),
        4,
        "no series without a state"
    );
    assert_eq!(
        value(&s, MetricName::SystemMemoryLinuxAvailable, &[]),
        Some(Value::Int(23_147_940 * 1024))
    );
    assert_eq!(
        value(&s, MetricName::SystemCpuLoadAverage1m, &[]).map(|v| (v.as_f64() * 100.0).round()),
        Some(1542.0)
    );
    assert_eq!(
        value(&s, MetricName::SystemMemoryLinuxOomKills, &[]),
        Some(Value::Int(0))
    );
    // No swap on this host: usage is 0/0 and utilisation is absent, not a made-up 0%.
    assert_eq!(
        value(
            &s,
            MetricName::SystemPagingUsage,
            &[(AttrKey::SystemPagingState, "used")]
        ),
        Some(Value::Int(0))
    );
    assert_eq!(value(&s, MetricName::SystemPagingUtilization, &[]), None);
    let some = [(AttrKey::PressureStallType, "some")];
    let cpu_some = value(&s, MetricName::SystemCpuLinuxPressure10s, &some)
        .unwrap()
        .as_f64();
    assert!((cpu_some - 0.9756).abs() < 1e-9, "{cpu_some}");
    let cpu_some_5m = value(&s, MetricName::SystemCpuLinuxPressure5m, &some)
        .unwrap()
        .as_f64();
    assert!((cpu_some_5m - 0.5876).abs() < 1e-9, "{cpu_some_5m}");
    let full = [(AttrKey::PressureStallType, "full")];
    let io_total = value(&s, MetricName::SystemIoLinuxPressureTotal, &full)
        .unwrap()
        .as_f64();
    assert!((io_total - 17.678_269).abs() < 1e-9, "{io_total}");
    let mem_total = value(&s, MetricName::SystemMemoryLinuxPressureTotal, &full)
        .unwrap()
        .as_f64();
    assert_eq!(mem_total, 0.0);
}

#[test]
fn cpu_time_is_per_cpu_and_mode_and_utilisation_whole_host_by_mode() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), dir.path());
    let mut c = collector(dir.path());
    let hz = c.hz;
    let first = snap(c.collect_now().unwrap());
    // cpu0's user column of the captured tree, in seconds.
    let user0 = [(AttrKey::CpuLogicalNumber, "0"), (AttrKey::CpuMode, "user")];
    assert_eq!(
        value(&first, MetricName::SystemCpuTime, &user0),
        Some(Value::Float(34906.0 / hz))
    );
    // Every point has both attributes: a sum over the metric counts each CPU second once.
    let times: Vec<_> = first.points_named(MetricName::SystemCpuTime).collect();
    assert_eq!(times.len(), 2 * cpu::MODES.len());
    assert!(times.iter().all(|p| {
        p.attributes.get(AttrKey::CpuLogicalNumber).is_some()
            && p.attributes.get(AttrKey::CpuMode).is_some()
    }));
    // 100 more jiffies per CPU on the aggregate line: 25 user, 50 idle, 25 iowait.
    std::fs::write(
        dir.path().join("stat"),
        "cpu  73807 240 19664 1235424 2484 0 234 999 0 0\n\
         cpu0 34931 125 8468 622108 545 0 13 426 0 0\n\
         cpu1 38876 115 11195 613316 1939 0 220 573 0 0\n",
    )
    .unwrap();
    let s = snap(c.collect_now().unwrap());
    let mode = |m| {
        value(
            &s,
            MetricName::SystemCpuUtilization,
            &[(AttrKey::CpuMode, m)],
        )
    };
    assert_eq!(mode("user"), Some(Value::Float(0.25)));
    assert_eq!(mode("idle"), Some(Value::Float(0.5)));
    assert_eq!(mode("iowait"), Some(Value::Float(0.25)));
    assert_eq!(mode("steal"), Some(Value::Float(0.0)));
    // Whole host only: no per-CPU utilisation series.
    let util: Vec<_> = s.points_named(MetricName::SystemCpuUtilization).collect();
    assert_eq!(util.len(), cpu::MODES.len());
    assert!(
        util.iter()
            .all(|p| p.attributes.get(AttrKey::CpuLogicalNumber).is_none())
    );
}

#[test]
fn without_per_cpu_the_time_is_the_whole_host_by_mode() {
    let mut c = HostCollector::new(&HostConfig {
        per_cpu: false,
        ..collector_config(&fixture())
    });
    let hz = c.hz;
    let s = snap(c.collect_now().unwrap());
    let times: Vec<_> = s.points_named(MetricName::SystemCpuTime).collect();
    assert_eq!(times.len(), cpu::MODES.len());
    assert_eq!(
        value(&s, MetricName::SystemCpuTime, &[(AttrKey::CpuMode, "idle")]),
        Some(Value::Float(1_235_374.0 / hz))
    );
}

#[test]
fn missing_files_degrade_with_the_path_and_a_missing_root_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), dir.path());
    std::fs::remove_dir_all(dir.path().join("pressure")).unwrap();
    let sample = collector(dir.path()).collect_now().unwrap();
    let why = sample.degraded.unwrap();
    assert!(
        why.contains("/pressure is not readable: kernel without PSI"),
        "{why}"
    );

    let err = collector(Path::new("/nonexistent/proc"))
        .collect_now()
        .unwrap_err();
    assert!(
        err.0
            .contains("failed to read /nonexistent/proc/stat: not found"),
        "{err}"
    );
}

#[test]
fn malformed_files_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), dir.path());
    std::fs::write(dir.path().join("meminfo"), "garbage\n").unwrap();
    std::fs::write(dir.path().join("loadavg"), "x y z\n").unwrap();
    let sample = collector(dir.path()).collect_now().unwrap();
    let why = sample.degraded.unwrap();
    assert!(why.contains("/meminfo"), "{why}");
    assert!(why.contains("/loadavg"), "{why}");
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

// --- the ZFS ARC ---

/// The captured tree plus an arcstats of the shape every OpenZFS release prints (kstat header,
/// column line, `name type data`), with the four sizes the figures come from.
fn zfs_tree(arcstats: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), dir.path());
    let kstat = dir.path().join("spl/kstat/zfs");
    std::fs::create_dir_all(&kstat).unwrap();
    std::fs::write(kstat.join("arcstats"), arcstats).unwrap();
    let root = dir.path().to_owned();
    (dir, root)
}

const ARCSTATS_2G: &str = "13 1 0x01 4 1088 5155279937 39858497127\n\
name                            type data\n\
size                            4    2147483648\n\
c                               4    2147483648\n\
c_min                           4    1073741824\n\
c_max                           4    12636631040\n";

#[test]
fn available_memory_counts_the_arc_above_c_min() {
    let (_dir, root) = zfs_tree(ARCSTATS_2G);
    let sample = collector(&root).collect_now().unwrap();
    assert_eq!(sample.degraded, None);
    let s = snap(sample);
    let meminfo = std::fs::read(root.join("meminfo")).unwrap();
    let m = Meminfo::from_buf_read(&meminfo[..]).unwrap();
    let avail = m.mem_available.unwrap() + (1u64 << 30);
    let get = |n| value(&s, n, &[]).map(|v| v.as_f64());
    #[allow(clippy::cast_precision_loss)]
    let (avail_f, total_f) = (avail as f64, m.mem_total as f64);
    assert_eq!(get(MetricName::ZfsArcMemoryAvailable), Some(avail_f));
    assert_eq!(
        get(MetricName::ZfsArcReclaimable),
        Some(1024.0 * 1024.0 * 1024.0)
    );
    assert_eq!(
        get(MetricName::SystemMemoryLinuxAvailableRatio),
        Some(avail_f / total_f)
    );
}

#[test]
fn without_zfs_there_is_no_arc_point_and_available_is_mem_available() {
    let s = snap(collector(&fixture()).collect_now().unwrap());
    assert!(
        s.points
            .iter()
            .all(|p| !p.name.as_str().starts_with("zfs.arc."))
    );
    let ratio = value(&s, MetricName::SystemMemoryLinuxAvailableRatio, &[]).unwrap();
    let avail = value(&s, MetricName::SystemMemoryLinuxAvailable, &[]).unwrap();
    let total = value(&s, MetricName::SystemMemoryLimit, &[]).unwrap();
    assert_eq!(ratio.as_f64(), avail.as_f64() / total.as_f64());
}

#[test]
fn an_oversized_or_garbled_arcstats_is_a_problem_and_gives_no_arc_point() {
    let (_dir, root) = zfs_tree(&"x".repeat(2 << 20));
    let sample = collector(&root).collect_now().unwrap();
    let why = sample.degraded.clone().unwrap();
    assert!(
        why.contains("arcstats: over the 1048576-byte limit"),
        "{why}"
    );
    assert!(
        sample
            .points
            .iter()
            .all(|p| p.name != MetricName::ZfsArcSize)
    );

    let path = root.join(arc::ARCSTATS);
    std::fs::write(&path, "13 1 0x01\nname type data\nhits 4 1\n").unwrap();
    let why = collector(&root).collect_now().unwrap().degraded.unwrap();
    assert!(why.contains("cannot parse"), "{why}");
}

#[tokio::test(start_paused = true)]
async fn an_absent_arcstats_is_looked_for_again_each_minute_not_each_tick() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(), dir.path());
    let mut host = collector(dir.path());
    let arc_size = |s: Sample| value(&snap(s), MetricName::ZfsArcSize, &[]);
    assert_eq!(arc_size(host.collect_now().unwrap()), None);

    // The ZFS module loads after start: not read on the next ticks...
    let kstat = dir.path().join("spl/kstat/zfs");
    std::fs::create_dir_all(&kstat).unwrap();
    std::fs::write(kstat.join("arcstats"), ARCSTATS_2G).unwrap();
    tokio::time::advance(files::ARC_REPROBE - std::time::Duration::from_secs(1)).await;
    assert_eq!(arc_size(host.collect_now().unwrap()), None);
    // ...but within a minute, and then every tick while it is there.
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        arc_size(host.collect_now().unwrap()),
        Some(Value::Int(1 << 31))
    );
    std::fs::write(
        kstat.join("arcstats"),
        ARCSTATS_2G.replace("2147483648\nc ", "2147483649\nc "),
    )
    .unwrap();
    assert_eq!(
        arc_size(host.collect_now().unwrap()),
        Some(Value::Int((1 << 31) + 1))
    );
}
