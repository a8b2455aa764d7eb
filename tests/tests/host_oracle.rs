//! node_exporter as the oracle for disks, filesystems and network: Debian's
//! `prometheus-node-exporter` reads the same kernel files, so on the same host, in the same
//! second, every value must agree. The test starts its own node_exporter (own port, only the
//! diskstats, filesystem and netdev collectors, hostwarden's default filters as its flags),
//! scrapes it, runs `hostwarden once --format json`, and scrapes it again: a counter must lie
//! between the two scrapes, space and inodes too (a quiet filesystem does not move, so it is
//! exact), and a size must be equal. Both must report the same devices, mounts and interfaces.
//! The comparison is tests/src/node_oracle.rs, which the OpenZFS guest (zfs_vm.rs) shares.

// Tests wait on real wall-clock time for real processes; tokio's virtual clock does not apply.
#![allow(clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use hostwarden_tests::harness::Harness;
use hostwarden_tests::need::Need;
use hostwarden_tests::node_oracle::{
    Family, NODE_EXPORTER, NodeExporter, ONCE_CONFIG, Verdict, compare, filter_args,
};
use hostwarden_tests::{bin, workspace_root};
use serde_json::Value;

const ALL: [Family; 3] = [Family::Disks, Family::Mounts, Family::Interfaces];

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![
        h.test(
            "every_disk_filesystem_and_interface_agrees_with_node_exporter",
            &[Need::Tool(NODE_EXPORTER)],
            every_disk_filesystem_and_interface_agrees_with_node_exporter,
        ),
        h.test(
            "every_captured_proc_tree_agrees_with_node_exporter",
            &[Need::Tool(NODE_EXPORTER)],
            every_captured_proc_tree_agrees_with_node_exporter,
        ),
    ])
}

/// The config `once` reads, written before the first scrape: a file made between the two
/// scrapes would itself be on `/` (a directory and a file: 2 inodes and 8 KiB that node_exporter
/// never sees) and make the space figures disagree.
fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("hostwarden.toml");
    std::fs::write(&path, ONCE_CONFIG).expect("write config");
    path
}

/// `once --format json` with the host collector alone.
fn hostwarden_once(path: &Path) -> Value {
    let out = Command::new(bin())
        .args(["once", "--format", "json", "--config"])
        .arg(path)
        .output()
        .expect("run hostwarden once");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("once's JSON")
}

fn every_disk_filesystem_and_interface_agrees_with_node_exporter() {
    // Built (if stale) now, not between the two scrapes, which must be a second apart.
    bin();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let ne = NodeExporter::start(&filter_args(&ALL));
    // The first scrape warms node_exporter up (it reads udev data and builds its collectors).
    ne.scrape();
    // A filesystem written by other jobs can move and move back between the two scrapes (a
    // temp file made and removed): only such a space figure earns another round, at most two.
    for round in 1..=3 {
        let verdict = one_round(&ne, &config);
        for (what, names) in &verdict.names {
            println!("{what}: {names:?}");
        }
        println!("{} values compared against node_exporter", verdict.compared);
        if verdict.failures.is_empty() {
            return;
        }
        let failures = verdict.failures.join("\n");
        assert!(
            verdict.only_moving() && round < 3,
            "round {round}:\n{failures}"
        );
        println!("round {round}: a busy filesystem moved, again:\n{failures}");
    }
}

/// One scrape, `once`, scrape; what disagreed.
fn one_round(ne: &NodeExporter, config: &Path) -> Verdict {
    let started = Instant::now();
    let before = ne.scrape();
    let snap = hostwarden_once(config);
    let after = ne.scrape();
    println!(
        "node_exporter scraped, hostwarden once, scraped again: {:.2}s",
        started.elapsed().as_secs_f64()
    );
    compare(&before, &snap, &after, &ALL)
}

/// The captured trees of tests/fixtures/proc that hold `diskstats` or `net/dev` (the CI VM's,
/// the OpenZFS guest's): node_exporter with `--path.procfs` at the tree and `once` with
/// `[host] proc_root` at it read the same files, which do not move, so every counter is exact
/// (both scrape bounds are the one scrape) and both list the same disks and interfaces.
fn every_captured_proc_tree_agrees_with_node_exporter() {
    let fixtures = workspace_root().join("tests/fixtures/proc");
    let mut trees: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .expect("tests/fixtures/proc")
        .map(|e| e.expect("entry").path())
        .collect();
    trees.sort();
    let mut compared = 0;
    for tree in trees {
        let families: Vec<Family> = [
            (Family::Disks, "diskstats"),
            (Family::Interfaces, "net/dev"),
        ]
        .into_iter()
        .filter(|(_, file)| tree.join(file).is_file())
        .map(|(family, _)| family)
        .collect();
        if families.is_empty() {
            continue;
        }
        let mut args = filter_args(&families);
        args.push(format!("--path.procfs={}", tree.display()));
        let scrape = NodeExporter::start(&args).scrape();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("hostwarden.toml");
        let tree_config = format!(
            "{ONCE_CONFIG}[host]\nproc_root = {:?}\n[host.filesystem]\nenabled = false\n",
            tree.display().to_string()
        );
        std::fs::write(&config, tree_config).expect("write config");
        let verdict = compare(&scrape, &hostwarden_once(&config), &scrape, &families);
        let name = tree.file_name().expect("tree name").to_string_lossy();
        for (what, names) in &verdict.names {
            println!("{name} {what}: {names:?}");
        }
        println!("{name}: {} values compared", verdict.compared);
        assert!(
            verdict.failures.is_empty(),
            "{name}:\n{}",
            verdict.failures.join("\n")
        );
        compared += 1;
    }
    assert!(
        compared > 0,
        "no proc tree with diskstats or net/dev in {fixtures:?}"
    );
}
