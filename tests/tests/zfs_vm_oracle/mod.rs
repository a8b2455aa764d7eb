//! The node_exporter oracle inside the OpenZFS guest (issue 17; tests/zfs-vm/guest-init.sh,
//! phase `oracle`): the host's node_exporter runs in the guest with hostwarden's default filters
//! as flags, and its scrapes right before and right after `hostwarden once` hold every disk
//! (the virtio disk and a zvol), filesystem (ZFS datasets: nested, read-only, with a quota) and
//! interface (a virtio NIC) to the same comparison as tests/tests/host_oracle.rs
//! (tests/src/node_oracle.rs).

use std::path::Path;

use hostwarden_tests::need::which;
use hostwarden_tests::node_oracle::{
    Family, NODE_EXPORTER, ONCE_CONFIG, compare, filter_args, parse_metrics,
};
use serde_json::Value;

use super::Guest;

const ALL: [Family; 3] = [Family::Disks, Family::Mounts, Family::Interfaces];

/// What the guest must show beyond whatever else it has: the comparison is not vacuous.
const EXPECTED: [(&str, &[&str]); 3] = [
    ("disks", &["vda", "zd0"]),
    (
        "mounts",
        &[
            "/tank",
            "/tank/data",
            "/tank/data/deep",
            "/tank/frozen",
            "/scratch",
            "/scratch/capped",
        ],
    ),
    ("interfaces", &["eth0"]),
];

/// The directory run.sh packs as the guest's /oracle (HOSTWARDEN_ZFSVM_ORACLE): this host's
/// node_exporter (a Go binary that needs only libc, which the bookworm guest has), its flags one
/// per line, and once's config.
pub(super) fn pack(dir: &Path) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("remove the last oracle directory");
    }
    std::fs::create_dir_all(dir).expect("oracle directory");
    let ne = which(NODE_EXPORTER).expect("node_exporter on PATH");
    std::fs::copy(&ne, dir.join("node-exporter")).expect("copy node_exporter");
    let mut args = filter_args(&ALL).join("\n");
    args.push('\n');
    std::fs::write(dir.join("node-exporter.args"), args).expect("write its flags");
    std::fs::write(dir.join("hostwarden.toml"), ONCE_CONFIG).expect("write once's config");
}

pub(super) fn check_oracle(guest: &Guest, version: &str) {
    for step in [
        "oracle-datasets",
        "oracle-zvol",
        "oracle-net",
        "oracle-eth0",
    ] {
        guest.ok(step);
    }
    let before = parse_metrics(&guest.ok("oracle-ne-before"));
    let after = parse_metrics(&guest.ok("oracle-ne-after"));
    let snap: Value = serde_json::from_str(&guest.ok("oracle-once")).expect("oracle once JSON");
    let verdict = compare(&before, &snap, &after, &ALL);
    for (what, names) in &verdict.names {
        eprintln!("oracle {version} {what}: {names:?}");
    }
    eprintln!(
        "oracle {version}: {} values compared against node_exporter",
        verdict.compared
    );
    assert!(
        verdict.failures.is_empty(),
        "OpenZFS {version}: hostwarden and node_exporter disagree:\n{}",
        verdict.failures.join("\n")
    );
    for (what, names) in EXPECTED {
        for name in names {
            assert!(
                verdict.names[what].contains(*name),
                "OpenZFS {version}: no {name} among the {what} compared: {:?}",
                verdict.names[what]
            );
        }
    }
}
