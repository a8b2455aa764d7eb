//! The real `hostwarden once --format json` against a stand-in `zpool` that replays genuine
//! OpenZFS 2.3.2 and 2.1.11 output (tests/fixtures/zfs/standin/zpool, scenarios listed there).

use std::path::{Path, PathBuf};
use std::process::Command;

use hostwarden_tests::snapshot_point as point;
use serde_json::Value;

fn standin() -> PathBuf {
    hostwarden_tests::workspace_root().join("tests/fixtures/zfs/standin/zpool")
}

/// Runs `once --format json` with `[zfs] zpool_command = <zpool>` and the given scenario.
fn once_with(zpool: &Path, scenario: &str) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hostwarden.toml");
    let text = format!(
        "[zfs]\nzpool_command = {:?}\niostat_interval = \"1s\"\npool_interval = \"0s\"\ncommand_timeout = \"1s\"\n",
        zpool.display().to_string()
    );
    std::fs::write(&config, text).expect("write config");
    let out = Command::new(hostwarden_tests::bin())
        .args(["once", "--format", "json", "--config"])
        .arg(&config)
        .env("ZPOOL_STANDIN_SCENARIO", scenario)
        .env("ZPOOL_STANDIN_STATE", dir.path())
        .output()
        .expect("run hostwarden once");
    assert!(
        out.status.success(),
        "hostwarden once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "once printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn once(scenario: &str) -> Value {
    once_with(&standin(), scenario)
}

fn status<'a>(snap: &'a Value, collector: &str) -> &'a Value {
    snap["collectors"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["collector"] == collector))
        .unwrap_or_else(|| panic!("no {collector} status in {snap}"))
}

fn pool_names(snap: &Value) -> Vec<String> {
    let mut names: Vec<String> = snap["points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["attributes"]["zfs.pool.name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_reports_pool_metrics_replayed_from_openzfs_2_3_2() {
        let snap = once("2.3.2");
        let zfs = status(&snap, "zfs");
        assert_eq!(zfs["health"], "ok", "{zfs}");
        let tank = ("zfs.pool.name", "tank");
        // `zpool list -Hp -v -o ...` row: tank 251658240 99478528 152179712 28 39 1.00 ONLINE
        let used = point(&snap, "zfs.pool.usage", &[tank, ("zfs.pool.state", "used")]);
        assert_eq!(used, Some(99_478_528.into()));
        let free = point(&snap, "zfs.pool.usage", &[tank, ("zfs.pool.state", "free")]);
        assert_eq!(free, Some(152_179_712.into()));
        assert_eq!(
            point(&snap, "zfs.pool.limit", &[tank]),
            Some(251_658_240.into())
        );
        assert_eq!(
            point(&snap, "zfs.pool.fragmentation", &[tank]),
            Some(0.28.into())
        );
        assert_eq!(
            point(&snap, "zfs.pool.dedup_ratio", &[tank]),
            Some(1.0.into())
        );
        let online = point(
            &snap,
            "zfs.pool.health",
            &[tank, ("zfs.pool.health", "ONLINE")],
        );
        assert_eq!(online, Some(1.into()));
        let degraded = point(
            &snap,
            "zfs.pool.health",
            &[tank, ("zfs.pool.health", "DEGRADED")],
        );
        assert_eq!(degraded, Some(0.into()));
        let log = point(
            &snap,
            "zfs.vdev.health",
            &[
                tank,
                ("zfs.vdev.name", "/vdev/tank-log"),
                ("zfs.pool.health", "ONLINE"),
            ],
        );
        assert_eq!(log, Some(1.into()));
        // `once` waits for the first 1 s interval report (the stand-in replays the first of
        // `zpool iostat -Hply 1 3`): tank wrote 1349 ops, 18278584 B, total write wait 2125066 ns,
        // and did not read or scrub in that second (`-`).
        let write = [tank, ("disk.io.direction", "write")];
        assert_eq!(
            point(&snap, "zfs.pool.operations", &write),
            Some(1349.into())
        );
        assert_eq!(point(&snap, "zfs.pool.io", &write), Some(18_278_584.into()));
        let total_write = point(
            &snap,
            "zfs.pool.operation.latency",
            &[
                tank,
                ("zfs.wait.type", "total"),
                ("disk.io.direction", "write"),
            ],
        );
        assert_eq!(total_write, Some(0.002_125_066.into()));
        let scrub = point(
            &snap,
            "zfs.pool.operation.latency",
            &[tank, ("zfs.wait.type", "scrub")],
        );
        assert_eq!(scrub, Some(0.0.into()));
        let cksum = point(
            &snap,
            "zfs.pool.errors",
            &[tank, ("error.type", "checksum")],
        );
        assert_eq!(cksum, Some(0.into()));
        assert_eq!(pool_names(&snap), ["scratch", "tank"]);
    }

    #[test]
    fn openzfs_2_1_11_rejects_json_so_text_status_gives_checksum_errors() {
        let snap = once("2.1.11-cksum");
        assert_eq!(status(&snap, "zfs")["health"], "ok");
        let tank = ("zfs.pool.name", "tank");
        let cksum = point(
            &snap,
            "zfs.pool.errors",
            &[tank, ("error.type", "checksum")],
        );
        assert_eq!(cksum, Some(198.into()));
        // 2.1 has no rebuild wait column.
        let rebuild = point(
            &snap,
            "zfs.pool.operation.latency",
            &[tank, ("zfs.wait.type", "rebuild")],
        );
        assert_eq!(rebuild, None);
    }

    #[test]
    fn scrub_progress_while_a_scrub_runs() {
        let snap = once("2.1.11-scrub");
        let progress = point(
            &snap,
            "zfs.pool.scan.progress",
            &[("zfs.pool.name", "tank"), ("zfs.scan.function", "scrub")],
        );
        assert_eq!(progress, Some(0.001.into()));
        let healthy = once("2.3.2");
        assert_eq!(point(&healthy, "zfs.pool.scan.progress", &[]), None);
    }

    #[test]
    fn degraded_pool_and_offline_vdev() {
        let snap = once("2.3.2-degraded");
        let tank = ("zfs.pool.name", "tank");
        let degraded = point(
            &snap,
            "zfs.pool.health",
            &[tank, ("zfs.pool.health", "DEGRADED")],
        );
        assert_eq!(degraded, Some(1.into()));
        let offline = point(
            &snap,
            "zfs.vdev.health",
            &[
                tank,
                ("zfs.vdev.name", "/vdev/tank-b"),
                ("zfs.pool.health", "OFFLINE"),
            ],
        );
        assert_eq!(offline, Some(1.into()));
    }

    #[test]
    fn a_pool_exported_between_readings_is_dropped() {
        // `once` reads twice; the stand-in drops tank from the second `zpool list`.
        let snap = once("export");
        assert_eq!(status(&snap, "zfs")["health"], "ok");
        assert_eq!(pool_names(&snap), ["scratch"]);
    }

    #[test]
    fn a_pool_imported_between_readings_is_picked_up() {
        // The stand-in's first `zpool list` shows only scratch; the second (the reading `once`
        // prints) shows tank too, with its latency from the running iostat child.
        let snap = once("import");
        assert_eq!(status(&snap, "zfs")["health"], "ok");
        assert_eq!(pool_names(&snap), ["scratch", "tank"]);
        let tank = ("zfs.pool.name", "tank");
        let total_write = point(
            &snap,
            "zfs.pool.operation.latency",
            &[
                tank,
                ("zfs.wait.type", "total"),
                ("disk.io.direction", "write"),
            ],
        );
        assert_eq!(total_write, Some(0.002_125_066.into()));
    }

    #[test]
    fn a_hung_zpool_meets_its_deadline_and_the_host_collector_still_reports() {
        let snap = once("hang");
        let zfs = status(&snap, "zfs");
        assert_eq!(zfs["health"], "unavailable");
        let reason = zfs["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("did not answer within 1s; killed its process group"),
            "{reason}"
        );
        assert_eq!(status(&snap, "host")["health"], "ok");
        assert!(point(&snap, "system.cpu.logical.count", &[]).is_some());
    }

    #[test]
    fn no_kernel_module_is_unavailable_with_zpools_words() {
        let snap = once("nomodule");
        let zfs = status(&snap, "zfs");
        assert_eq!(zfs["health"], "unavailable");
        assert_eq!(
            zfs["reason"],
            "ZFS kernel module not loaded: The ZFS modules are not loaded. \
         Try running '/sbin/modprobe zfs' as root to load them."
        );
    }

    #[test]
    fn no_zpool_binary_is_unavailable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snap = once_with(&dir.path().join("zpool"), "2.3.2");
        let zfs = status(&snap, "zfs");
        assert_eq!(zfs["health"], "unavailable");
        let reason = zfs["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("zpool not found (is ZFS installed?)"),
            "{reason}"
        );
        assert_eq!(status(&snap, "host")["health"], "ok");
    }

    #[test]
    fn a_malformed_list_line_is_named_in_the_status() {
        let snap = once("malformed");
        let zfs = status(&snap, "zfs");
        assert_eq!(zfs["health"], "unavailable");
        assert_eq!(
            zfs["reason"],
            "zpool list line 1: expected 8 tab-separated fields, found 3: \"scratch\\t251658240\\t52368384\""
        );
    }
}
