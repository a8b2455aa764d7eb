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
    let mut zfs = ZfsCollector::new(&ZfsConfig {
        zpool_command: wrapper(dir.path(), "import"),
        iostat_interval: Duration::from_secs(1),
        pool_interval: Duration::from_secs(3600),
        ..ZfsConfig::default()
    });
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
