//! `hostwarden once --format json` through the real binary: on this host (checked against
//! /proc read by the test) and on a captured proc tree (exact values).

use std::process::Command;

use hostwarden_tests::{bin, workspace_root};
use serde_json::Value;

fn once(config: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostwarden.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin())
        .args(["once", "--format", "json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn point<'a>(snap: &'a Value, name: &str, attrs: &[(&str, Value)]) -> Option<&'a Value> {
    snap["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name && attrs.iter().all(|(k, v)| &p["attributes"][*k] == v))
}

const ONLY_HOST: &str =
    "[gpu]\nenabled = false\n[zfs]\nenabled = false\n[ollama]\nenabled = false\n";

#[test]
fn once_on_this_host_matches_proc() {
    let snap = once(ONLY_HOST);
    let host = snap["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["collector"] == "host")
        .unwrap();
    assert_eq!(host["health"], "ok", "{host}");

    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb = |key: &str| -> i64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let limit = point(&snap, "system.memory.limit", &[]).unwrap();
    assert_eq!(limit["value"].as_i64(), Some(kb("MemTotal:") * 1024));
    assert_eq!(limit["unit"], "By");
    let swap_free = point(
        &snap,
        "system.paging.usage",
        &[("system.paging.state", "free".into())],
    )
    .unwrap();
    assert_eq!(swap_free["value"].as_i64(), Some(kb("SwapFree:") * 1024));

    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    let count = point(&snap, "system.cpu.logical.count", &[]).unwrap();
    assert_eq!(count["value"].as_u64(), Some(cpus as u64));

    // `once` reads twice, so utilisation exists: the whole host only, one share per cpu.mode,
    // each within 0..1 and together 1.
    let named = |name: &str| -> Vec<Value> {
        snap["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == name)
            .cloned()
            .collect()
    };
    let utils = named("system.cpu.utilization");
    assert_eq!(utils.len(), 7, "{utils:?}");
    let mut sum = 0.0;
    for u in &utils {
        assert!(u["attributes"].get("cpu.logical_number").is_none(), "{u}");
        assert!(u["attributes"]["cpu.mode"].is_string(), "{u}");
        let v = u["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{u}");
        sum += v;
    }
    assert!((sum - 1.0).abs() < 1e-9, "modes add up to {sum}");
    // The time counter is per CPU and mode ([host] per_cpu is on by default).
    assert_eq!(named("system.cpu.time").len(), cpus * 7);
    let load: Vec<f64> = std::fs::read_to_string("/proc/loadavg")
        .unwrap()
        .split_whitespace()
        .take(3)
        .map(|v| v.parse().unwrap())
        .collect();
    let load15 = point(&snap, "system.cpu.load_average.15m", &[]).unwrap()["value"]
        .as_f64()
        .unwrap();
    // The 15-minute average moves by far less than 1 within the second between the two reads.
    assert!((load15 - load[2]).abs() < 1.0, "{load15} vs {}", load[2]);
}

#[test]
fn once_on_a_captured_tree_reports_exact_values() {
    let root = workspace_root().join("tests/fixtures/proc/debian12-qemu-2cpu");
    let snap = once(&format!(
        "{ONLY_HOST}[host]\nproc_root = \"{}\"\n",
        root.display()
    ));
    let v =
        |name: &str, attrs: &[(&str, Value)]| point(&snap, name, attrs).unwrap()["value"].clone();
    assert_eq!(v("system.memory.limit", &[]), 24_684_084i64 * 1024);
    assert_eq!(
        v("system.memory.linux.available", &[]),
        23_147_940i64 * 1024
    );
    assert_eq!(
        v(
            "system.memory.usage",
            &[("system.memory.state", "free".into())]
        ),
        17_067_484i64 * 1024
    );
    assert_eq!(v("system.cpu.logical.count", &[]), 2);
    assert_eq!(v("system.cpu.load_average.1m", &[]), 15.42);
    assert_eq!(v("system.memory.linux.oom_kills", &[]), 0);
    assert_eq!(
        v(
            "system.cpu.linux.pressure.10s",
            &[("system.pressure.stall_type", "some".into())]
        ),
        0.9756
    );
    assert_eq!(
        v(
            "system.cpu.linux.pressure.5m",
            &[("system.pressure.stall_type", "some".into())]
        ),
        0.5876
    );
    // cpu0's user column of the captured /proc/stat, in seconds (USER_HZ is 100 on Linux).
    assert_eq!(
        v(
            "system.cpu.time",
            &[
                ("cpu.logical_number", 0.into()),
                ("cpu.mode", "user".into())
            ]
        ),
        349.06
    );
    // The captured files do not change between the two reads: no time passed for the CPU
    // counters, so utilisation is absent rather than a made-up 0%.
    assert!(point(&snap, "system.cpu.utilization", &[]).is_none());
    assert!(point(&snap, "system.paging.utilization", &[]).is_none());
}

#[test]
fn a_missing_proc_root_makes_the_host_collector_unavailable_with_the_path() {
    let snap = once(&format!(
        "{ONLY_HOST}[host]\nproc_root = \"/nonexistent/proc\"\n"
    ));
    let host = &snap["collectors"][0];
    assert_eq!(host["health"], "unavailable");
    assert!(
        host["reason"]
            .as_str()
            .unwrap()
            .contains("failed to read /nonexistent/proc/stat: not found"),
        "{host}"
    );
}
