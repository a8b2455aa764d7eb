//! Disks, interfaces and filesystems against the files captured on the CI VM
//! (tests/fixtures/proc/debian12-ci-devices), and the statvfs deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::disk::{DiskFilter, disk_points, parse_diskstats};
use super::filesystem::{FsCollector, FsFilter, Mount, parse_mountinfo};
use super::network::{NetFilter, network_points, parse_net_dev};
use super::statvfs::{FsStat, StatOutcome, Statter};
use super::*;
use crate::model::{AttrValue, Snapshot, Value};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/proc/debian12-ci-devices")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(fixture().join(rel)).expect("fixture file")
}

fn snap(points: Vec<MetricPoint>) -> Snapshot {
    Snapshot {
        points,
        ..Snapshot::default()
    }
}

fn value(s: &Snapshot, name: MetricName, with: &[(AttrKey, &str)]) -> Option<Value> {
    s.find(name, with).map(|p| p.value)
}

fn devices(s: &Snapshot, key: AttrKey) -> Vec<String> {
    let mut v: Vec<String> = s
        .points
        .iter()
        .filter_map(|p| p.attributes.get(key).map(AttrValue::as_text))
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn diskstats_of_the_ci_vm_report_vda_only_by_default() {
    let text = read("diskstats");
    let stats = parse_diskstats(&text);
    assert_eq!(stats.len(), 10, "8 loops, vda, zram0");
    let mut points = Vec::new();
    disk_points(
        &stats,
        &mut DiskFilter::new(&DiskConfig::default()),
        &mut points,
    );
    let s = snap(points);
    assert_eq!(devices(&s, AttrKey::SystemDevice), vec!["vda"]);
    // vda 3166936 91430 146347226 16367741 575289 1019919 491157600 7802261 0 1141828 ...
    let vda = |name, dir: Option<&str>| {
        let mut with = vec![(AttrKey::SystemDevice, "vda")];
        if let Some(d) = dir {
            with.push((AttrKey::DiskIoDirection, d));
        }
        value(&s, name, &with)
    };
    assert_eq!(
        vda(MetricName::SystemDiskIo, Some("read")),
        Some(Value::Int(146_347_226 * 512))
    );
    assert_eq!(
        vda(MetricName::SystemDiskIo, Some("write")),
        Some(Value::Int(491_157_600 * 512))
    );
    assert_eq!(
        vda(MetricName::SystemDiskOperations, Some("read")),
        Some(Value::Int(3_166_936))
    );
    assert_eq!(
        vda(MetricName::SystemDiskMerged, Some("write")),
        Some(Value::Int(1_019_919))
    );
    assert_eq!(
        vda(MetricName::SystemDiskOperationTime, Some("read")),
        Some(Value::Float(16_367.741))
    );
    assert_eq!(
        vda(MetricName::SystemDiskIoTime, None),
        Some(Value::Float(1_141.828))
    );
    assert_eq!(
        vda(MetricName::SystemDiskPendingOperations, None),
        Some(Value::Int(0))
    );
    // 4 metrics × 2 directions + io_time + pending.
    assert_eq!(s.points.len(), 10);
}

#[test]
fn partitions_are_left_out_unless_asked_and_md_dm_nvme_stay() {
    let text = "8 0 sda 1 0 0 0 0 0 0 0 0 0 0\n8 1 sda1 1 0 0 0 0 0 0 0 0 0 0\n\
                259 0 nvme0n1 1 0 0 0 0 0 0 0 0 0 0\n259 1 nvme0n1p1 1 0 0 0 0 0 0 0 0 0 0\n\
                9 0 md0 1 0 0 0 0 0 0 0 0 0 0\n253 0 dm-0 1 0 0 0 0 0 0 0 0 0 0\n\
                179 0 mmcblk0 1 0 0 0 0 0 0 0 0 0 0\n179 1 mmcblk0p1 1 0 0 0 0 0 0 0 0 0 0\n\
                1 0 ram0 1 0 0 0 0 0 0 0 0 0 0\n8 16 sdb 1 0 0\n";
    let stats = parse_diskstats(text);
    assert_eq!(stats.len(), 9, "the short sdb line is skipped");
    let names = |config: &DiskConfig| {
        let mut points = Vec::new();
        disk_points(&stats, &mut DiskFilter::new(config), &mut points);
        devices(&snap(points), AttrKey::SystemDevice)
    };
    assert_eq!(
        names(&DiskConfig::default()),
        vec!["dm-0", "md0", "mmcblk0", "nvme0n1", "sda"]
    );
    let with_parts = DiskConfig {
        partitions: true,
        ..DiskConfig::default()
    };
    assert_eq!(
        names(&with_parts),
        vec![
            "dm-0",
            "md0",
            "mmcblk0",
            "mmcblk0p1",
            "nvme0n1",
            "nvme0n1p1",
            "sda",
            "sda1"
        ]
    );
}

#[test]
fn net_dev_of_the_ci_vm_leaves_lo_out_by_default() {
    let text = read("net/dev");
    let devs = parse_net_dev(&text);
    assert_eq!(
        devs.len(),
        4,
        "lo, ifb0, ifb1, eth0; the two header lines skipped"
    );
    let mut points = Vec::new();
    network_points(
        &devs,
        &mut NetFilter::new(&NetworkConfig::default()),
        &mut points,
    );
    let s = snap(points);
    assert_eq!(
        devices(&s, AttrKey::NetworkInterfaceName),
        vec!["eth0", "ifb0", "ifb1"]
    );
    // eth0: 1488561436   56943 0 0 ... | 3364322   38349 0 0 ...
    let eth0 = |name, dir| {
        value(
            &s,
            name,
            &[
                (AttrKey::NetworkInterfaceName, "eth0"),
                (AttrKey::NetworkIoDirection, dir),
            ],
        )
    };
    assert_eq!(
        eth0(MetricName::SystemNetworkIo, "receive"),
        Some(Value::Int(1_488_561_436))
    );
    assert_eq!(
        eth0(MetricName::SystemNetworkIo, "transmit"),
        Some(Value::Int(3_364_322))
    );
    assert_eq!(
        eth0(MetricName::SystemNetworkPacketCount, "transmit"),
        Some(Value::Int(38_349))
    );
    assert_eq!(
        eth0(MetricName::SystemNetworkErrors, "receive"),
        Some(Value::Int(0))
    );
    assert_eq!(s.points.len(), 3 * 2 * 4);
}

#[test]
fn net_dev_takes_names_glued_to_their_counters() {
    // Long names and big counters leave no space after the colon.
    let text = "Inter-|\n face |\nveth1234567:123 4 0 0 0 0 0 0 567 8 0 1 0 0 0 0\n";
    let devs = parse_net_dev(text);
    assert_eq!(devs.len(), 1);
    assert_eq!(devs[0].name, "veth1234567");
    assert_eq!(devs[0].receive.bytes, 123);
    assert_eq!(devs[0].transmit.dropped, 1);
    let mut points = Vec::new();
    network_points(
        &devs,
        &mut NetFilter::new(&NetworkConfig::default()),
        &mut points,
    );
    assert!(points.is_empty(), "veth is excluded by default");
}

#[test]
fn mountinfo_of_the_ci_vm_keeps_the_root_and_the_sandbox_tmpfs() {
    let (mounts, truncated) = parse_mountinfo(&read("self/mountinfo"), 4096);
    assert!(!truncated);
    assert_eq!(mounts.len(), 20);
    let kept = FsFilter::new(&FilesystemConfig::default()).select(mounts);
    let points: Vec<&str> = kept.iter().map(|m| m.mountpoint.as_str()).collect();
    assert_eq!(
        points,
        vec!["/", "/mnt/sandboxing/model_tools_env/v1/python"]
    );
    assert_eq!(
        kept[0],
        Mount {
            device: "/dev/vda".to_owned(),
            mountpoint: "/".to_owned(),
            fstype: "ext4".to_owned(),
            mode: "rw",
        }
    );
    assert_eq!(kept[1].mode, "ro");
}

#[test]
fn mountinfo_unescapes_and_reads_optional_fields_and_zfs() {
    let text = "36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 shared:2 - ext3 /dev/sdb1 rw\n\
                40 1 0:50 / /tank/home rw shared:3 - zfs tank/home rw,xattr\n\
                41 1 0:51 / /srv rw - ext4 /dev/sdc1 ro,errors=remount-ro\n\
                garbage\n";
    let (mounts, _) = parse_mountinfo(text, 10);
    assert_eq!(mounts.len(), 3);
    assert_eq!(mounts[0].mountpoint, "/mnt/my disk");
    assert_eq!(mounts[1].fstype, "zfs");
    assert_eq!(mounts[1].device, "tank/home");
    assert_eq!(mounts[2].mode, "ro", "a read-only superblock is read-only");
    let kept = FsFilter::new(&FilesystemConfig::default()).select(mounts);
    assert_eq!(kept.len(), 3, "ZFS datasets are reported");
    let (two, truncated) = parse_mountinfo(text, 2);
    assert_eq!((two.len(), truncated), (2, true));
}

#[test]
fn a_path_mounted_over_is_reported_once_as_the_top_mount() {
    let text = "1 0 8:1 / /data rw - ext4 /dev/sda1 rw\n2 1 8:2 / /data rw - xfs /dev/sdb1 rw\n";
    let (mounts, _) = parse_mountinfo(text, 10);
    let kept = FsFilter::new(&FilesystemConfig::default()).select(mounts);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].device, "/dev/sdb1");
}

#[tokio::test]
async fn filesystem_space_adds_up_and_matches_statvfs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf-8").to_owned();
    let text = format!("1 0 8:1 / {path} rw - ext4 /dev/test rw\n");
    let mut fs = FsCollector::new(&FilesystemConfig::default());
    let (mut points, mut problems) = (Vec::new(), Vec::new());
    fs.collect(&text, Path::new("/"), &mut points, &mut problems)
        .await;
    assert!(problems.is_empty(), "{problems:?}");
    let s = snap(points);
    let at = [(AttrKey::SystemFilesystemMountpoint, path.as_str())];
    let state = |st| {
        let mut with = at.to_vec();
        with.push((AttrKey::SystemFilesystemState, st));
        value(&s, MetricName::SystemFilesystemUsage, &with).map(Value::as_f64)
    };
    let limit = value(&s, MetricName::SystemFilesystemLimit, &at).map(Value::as_f64);
    let (used, free, reserved) = (state("used"), state("free"), state("reserved"));
    assert!(limit.is_some_and(|l| l > 0.0));
    assert_eq!(
        limit,
        Some(used.unwrap_or(0.0) + free.unwrap_or(0.0) + reserved.unwrap_or(0.0))
    );
    assert_eq!(
        value(&s, MetricName::SystemFilesystemStale, &at),
        Some(Value::Int(0))
    );
    let p = s
        .find(MetricName::SystemFilesystemLimit, &at)
        .expect("limit point");
    assert_eq!(
        p.attributes
            .get(AttrKey::SystemFilesystemMode)
            .map(AttrValue::as_text),
        Some("rw".to_owned())
    );
}

/// The stand-in for a dead NFS server: a stat of a path ending in `dead` blocks until the
/// server "comes back" (`DEAD_OPEN`); every call is counted.
static DEAD_OPEN: AtomicBool = AtomicBool::new(false);
static DEAD_CALLS: AtomicUsize = AtomicUsize::new(0);

fn stat_with_a_dead_mount(path: &Path) -> Result<FsStat, String> {
    if path.ends_with("dead") {
        DEAD_CALLS.fetch_add(1, Ordering::SeqCst);
        while !DEAD_OPEN.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(FsStat {
        frsize: 4096,
        blocks: 100,
        bfree: 60,
        bavail: 50,
        files: 10,
        ffree: 4,
    })
}

#[tokio::test]
async fn a_hung_stat_is_stale_within_its_deadline_and_never_issued_twice() {
    let paths: Vec<Arc<Path>> = vec![Path::new("/live").into(), Path::new("/mnt/dead").into()];
    let mut statter = Statter::with_stat(stat_with_a_dead_mount);
    let deadline = Duration::from_millis(200);

    let started = tokio::time::Instant::now();
    let first = statter.stat_all(&paths, deadline).await;
    assert!(matches!(first[0], StatOutcome::Done(_)), "{first:?}");
    assert_eq!(first[1], StatOutcome::Stale);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the tick waited past the deadline"
    );
    assert_eq!(statter.outstanding(), 1);

    // Still hung: stale again at once, with no second call.
    let started = tokio::time::Instant::now();
    let second = statter.stat_all(&paths, deadline).await;
    assert_eq!(second[1], StatOutcome::Stale);
    assert!(
        started.elapsed() < deadline,
        "a stale mount is not waited on again"
    );
    assert_eq!(DEAD_CALLS.load(Ordering::SeqCst), 1);

    // The server answers: the late answer is dropped and a fresh call made.
    DEAD_OPEN.store(true, Ordering::SeqCst);
    for _ in 0..200 {
        let third = statter.stat_all(&paths, deadline).await;
        if matches!(third[1], StatOutcome::Done(_)) {
            assert_eq!(statter.outstanding(), 0);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the mount never came back");
}

#[tokio::test]
async fn a_stale_mount_is_a_point_and_one_counted_problem() {
    let mut fs = FsCollector::with_statter(
        &FilesystemConfig {
            stat_timeout: Duration::from_millis(50),
            ..FilesystemConfig::default()
        },
        Statter::with_stat(stat_hanging_forever),
    );
    let text = "1 0 0:9 / /srv/hang rw - nfs4 server:/export rw\n";
    for _ in 0..3 {
        let (mut points, mut problems) = (Vec::new(), Vec::new());
        fs.collect(text, Path::new("/"), &mut points, &mut problems)
            .await;
        let s = snap(points);
        let at = [(AttrKey::SystemFilesystemMountpoint, "/srv/hang")];
        assert_eq!(
            value(&s, MetricName::SystemFilesystemStale, &at),
            Some(Value::Int(1))
        );
        assert_eq!(s.points.len(), 1, "no space figures for a stale mount");
        assert_eq!(
            problems,
            vec!["1 filesystem(s) stale (statvfs outstanding past 50ms): /srv/hang".to_owned()]
        );
    }
}

fn stat_hanging_forever(_: &Path) -> Result<FsStat, String> {
    loop {
        std::thread::park();
    }
}

#[tokio::test]
async fn the_whole_tick_on_the_fixture_reports_devices_and_interfaces() {
    let mut c = HostCollector::new(&HostConfig {
        proc_root: fixture(),
        filesystem: FilesystemConfig {
            enabled: false,
            ..FilesystemConfig::default()
        },
        ..HostConfig::default()
    });
    let (mut points, mut problems) = (Vec::new(), Vec::new());
    c.devices(&mut points, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let s = snap(points);
    assert_eq!(devices(&s, AttrKey::SystemDevice), vec!["vda"]);
    assert_eq!(s.points_named(MetricName::SystemNetworkIo).count(), 6);
}

#[test]
fn a_mount_table_cut_short_sends_every_stat_to_a_worker() {
    // The NFS mount past the cut would be on the way to nothing listed here, but a table cut
    // short cannot show that: no mount of it is stat'ed on the tick thread.
    let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                2 1 0:30 / /run rw - tmpfs tmpfs rw\n\
                3 1 0:50 / /srv/nfs rw - nfs4 server:/export rw\n";
    let whole = FilesystemConfig::default();
    let mut fs = FsCollector::new(&whole);
    fs.set_table(text, Path::new("/"));
    assert_eq!(fs.inline_flags(), [true, true, false]);
    let cut = FilesystemConfig {
        max_mounts: 2,
        ..FilesystemConfig::default()
    };
    let mut fs = FsCollector::new(&cut);
    fs.set_table(text, Path::new("/"));
    assert_eq!(fs.inline_flags(), [false, false]);
}
