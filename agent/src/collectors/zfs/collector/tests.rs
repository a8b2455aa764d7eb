//! The `pool_interval` cadence against the stand-in `zpool` (tests/fixtures/zfs/standin), which
//! counts its `zpool list` calls in the `import` scenario: the first list shows only `scratch`,
//! later ones `tank` too, while iostat reports both from the start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ZfsCollector;
use crate::collectors::Collector;
use crate::collectors::zfs::ZfsConfig;
use crate::model::{AttrKey, MetricName};

/// A `zpool` that runs the stand-in with the scenario and call counters in `dir`.
fn wrapper(dir: &Path, scenario: &str) -> PathBuf {
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/zfs/standin/zpool");
    let path = dir.join("zpool");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nZPOOL_STANDIN_SCENARIO={scenario} ZPOOL_STANDIN_STATE={} exec {} \"$@\"\n",
            dir.display(),
            standin.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

fn list_calls(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("list.count")).map_or(0, |s| s.trim().parse().unwrap())
}

fn pools(points: &[crate::model::MetricPoint]) -> Vec<String> {
    let mut names: Vec<String> = points
        .iter()
        .filter(|p| p.name == MetricName::ZfsPoolLimit)
        .filter_map(|p| {
            p.attributes
                .get(AttrKey::ZfsPoolName)
                .map(crate::model::AttrValue::as_text)
        })
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_runs_once_per_interval_and_again_when_iostat_sees_another_pool() {
    let dir = tempfile::tempdir().unwrap();
    let config = ZfsConfig {
        zpool_command: wrapper(dir.path(), "import"),
        iostat_interval: Duration::from_secs(1),
        pool_interval: Duration::from_secs(3600),
        ..ZfsConfig::default()
    };
    let mut zfs = ZfsCollector::new(&config, dir.path());
    let first = zfs.collect().await.unwrap();
    assert_eq!(pools(&first.points), ["scratch"]);
    assert_eq!(list_calls(dir.path()), 1);

    // Ticks within the iostat interval reuse the list, although iostat already shows `tank`.
    let again = zfs.collect().await.unwrap();
    assert_eq!(pools(&again.points), ["scratch"]);
    assert_eq!(list_calls(dir.path()), 1);

    // Once an iostat interval has passed, the disagreement re-runs the list: tank appears.
    let mut seen = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = pools(&zfs.collect().await.unwrap().points);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen, ["scratch", "tank"]);
    assert_eq!(list_calls(dir.path()), 2);

    // Now list and iostat agree: no more calls within the pool interval.
    for _ in 0..3 {
        let _points = zfs.collect().await.unwrap();
    }
    assert_eq!(list_calls(dir.path()), 2);
}

fn write_ops(points: &[crate::model::MetricPoint], pool: &str) -> Option<f64> {
    points
        .iter()
        .find(|p| {
            p.name == MetricName::ZfsPoolOperations
                && p.attributes.get(AttrKey::ZfsPoolName).map(|v| v.as_text()) == Some(pool.into())
                && p.attributes
                    .get(AttrKey::DiskIoDirection)
                    .map(|v| v.as_text())
                    == Some("write".into())
        })
        .map(|p| p.value.as_f64())
}

/// What `once` does: collect, settle, collect. The second collection has the first interval's
/// counts (the stand-in replays `zpool iostat -Hply 1 3`: tank wrote 1349 ops in its first
/// second), which the since-import report alone never gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_waits_for_one_iostat_interval_so_the_second_collection_has_counts() {
    let dir = tempfile::tempdir().unwrap();
    let config = ZfsConfig {
        zpool_command: wrapper(dir.path(), "2.3.2"),
        iostat_interval: Duration::from_secs(1),
        ..ZfsConfig::default()
    };
    let mut zfs = ZfsCollector::new(&config, dir.path());
    let first = zfs.collect().await.unwrap();
    assert_eq!(write_ops(&first.points, "tank"), None);
    zfs.settle(Duration::from_secs(10)).await;
    let second = zfs.collect().await.unwrap();
    assert_eq!(write_ops(&second.points, "tank"), Some(1349.0));
    assert_eq!(write_ops(&second.points, "scratch"), Some(304.0));
}

/// The kernel's kstat state wins over the last `zpool list` on every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kstat_state_replaces_the_listed_health_each_tick() {
    let dir = tempfile::tempdir().unwrap();
    let config = ZfsConfig {
        zpool_command: wrapper(dir.path(), "2.3.2"),
        pool_interval: Duration::from_secs(3600),
        ..ZfsConfig::default()
    };
    let mut zfs = ZfsCollector::new(&config, dir.path());
    let health = |points: &[crate::model::MetricPoint]| {
        points
            .iter()
            .filter(|p| p.name == MetricName::ZfsPoolHealth && p.value.as_f64() == 1.0)
            .filter(|p| {
                p.attributes.get(AttrKey::ZfsPoolName).map(|v| v.as_text()) == Some("tank".into())
            })
            .filter_map(|p| {
                p.attributes
                    .get(AttrKey::ZfsPoolHealthState)
                    .map(|v| v.as_text())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(health(&zfs.collect().await.unwrap().points), ["ONLINE"]);
    let kstat = dir.path().join("spl/kstat/zfs/tank");
    std::fs::create_dir_all(&kstat).unwrap();
    let degraded = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/zfs/openzfs-2.3.2-qemu/degraded-kstat-tank-state.txt");
    std::fs::copy(degraded, kstat.join("state")).unwrap();
    assert_eq!(health(&zfs.collect().await.unwrap().points), ["DEGRADED"]);
}
