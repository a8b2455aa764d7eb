//! End to end on real OpenZFS (issue 4): the release `hostwarden` runs inside a qemu guest that
//! boots a Debian kernel with OpenZFS built from Debian's zfs-dkms (tests/zfs-vm/run.sh), and its
//! `once --format json` is compared with `zpool`'s own output taken in the same guest right
//! before and after it: once under write load, once DEGRADED.
//! With the pools quiet, the host's node_exporter runs in the guest too, and every disk,
//! filesystem (the ZFS datasets among them) and interface of `once` is held to its scrapes
//! around it (zfs_vm_oracle, sharing tests/src/node_oracle.rs with host_oracle.rs).
//!
//! Versions: HOSTWARDEN_ZFSVM_VERSIONS (default "2.3.2"; "2.3.2 2.1.11" runs both). The module
//! build is cached in /var/tmp/hostwarden-zfsvm/<version>; the guest's files are kept in
//! target/zfs-vm/<version>/ for reading after a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

use hostwarden_tests::harness::Harness;
use hostwarden_tests::need::Need;
use hostwarden_tests::{release_bin, snapshot_point, target_profile_dir, workspace_root};
use serde_json::Value;

mod zfs_vm_arc;
mod zfs_vm_oracle;

/// What the guest needs (tests/ci/install-zfsvm.sh installs the tools): root for debootstrap and
/// chroot, qemu to boot it, the rest to build the OpenZFS modules. A cold cache also needs the
/// Debian archive over the network; only trying tells, so that is not checked here.
const GUEST: &[Need] = &[
    Need::Root,
    Need::Tool("qemu-system-x86_64"),
    Need::Tool("debootstrap"),
    Need::Tool("cpio"),
    Need::Tool("gcc"),
    Need::Tool("make"),
    // Run inside the guest as the oracle for disks, filesystems and network (zfs_vm_oracle).
    Need::Tool(hostwarden_tests::node_oracle::NODE_EXPORTER),
];

fn main() -> ExitCode {
    // A cold run downloads and builds OpenZFS before it boots: 8 minutes on idle cores, several
    // times that on busy ones.
    let h = Harness::with_limit(std::time::Duration::from_secs(50 * 60));
    h.run(vec![
        h.test(
            "hostwarden_once_matches_zpool_in_an_openzfs_guest",
            GUEST,
            hostwarden_once_matches_zpool_in_an_openzfs_guest,
        ),
        h.test(
            "the_comparison_parsers_read_genuine_openzfs_output",
            &[],
            the_comparison_parsers_read_genuine_openzfs_output,
        ),
    ])
}

/// Under load each writer rewrites 8 files of 4 MiB in turn (tests/zfs-vm/guest-init.sh): what a
/// pool allocates swings by at most that working set around its trend.
const WRITER_WORKING_SET: u64 = 8 * (4 << 20);

/// Relative room for the load's variation beyond the range of zpool's one-second latencies.
const LATENCY_SLACK: f64 = 0.25;

/// What the guest wrote: `<name>.txt` per command and the exit codes from commands.tsv.
struct Guest {
    dir: PathBuf,
    codes: BTreeMap<String, i32>,
}

impl Guest {
    fn read(dir: &Path) -> Guest {
        let tsv = std::fs::read_to_string(dir.join("commands.tsv")).expect("commands.tsv");
        let codes = tsv
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?.to_owned(), f.next()?.parse().ok()?))
            })
            .collect();
        Guest {
            dir: dir.to_owned(),
            codes,
        }
    }

    fn code(&self, name: &str) -> i32 {
        *self
            .codes
            .get(name)
            .unwrap_or_else(|| panic!("the guest did not run {name}"))
    }

    /// A file the guest wrote itself (not a command's stdout).
    fn ok_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name))
            .unwrap_or_else(|e| panic!("the guest wrote no {name}: {e}"))
    }

    /// The stdout of a command that must have succeeded.
    fn ok(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{name}.txt"))).unwrap_or_default();
        let err = std::fs::read_to_string(self.dir.join(format!("{name}.stderr")));
        assert_eq!(
            self.code(name),
            0,
            "{name} failed: {}",
            err.unwrap_or_default()
        );
        text
    }
}

/// A pool row of `zpool list -Hp -v -o name,size,alloc,free,frag,cap,dedup,health` with the
/// health of its vdevs (rows that start with a TAB; their health is the last field).
#[derive(Debug, Clone, PartialEq)]
struct Listed {
    size: u64,
    alloc: u64,
    free: u64,
    health: String,
    vdevs: Vec<(String, String)>,
}

fn parse_list(text: &str) -> BTreeMap<String, Listed> {
    let mut pools = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if let Some(vdev) = line.strip_prefix('\t') {
            let name = vdev.split('\t').next().expect("vdev name").to_owned();
            let pool: &mut Listed = pools
                .get_mut(current.as_ref().expect("vdev before pool"))
                .expect("pool row");
            pool.vdevs.push((name, f[f.len() - 1].to_owned()));
        } else if f.len() == 8 {
            let n = |i: usize| f[i].parse::<u64>().unwrap_or_else(|_| panic!("{line}"));
            let pool = Listed {
                size: n(1),
                alloc: n(2),
                free: n(3),
                health: f[7].to_owned(),
                vdevs: Vec::new(),
            };
            current = Some(f[0].to_owned());
            pools.insert(f[0].to_owned(), pool);
        }
        // Anything else is a class heading (`logs`), space-padded even under -H.
    }
    pools
}

/// Read, write and checksum errors per pool, summed over every vdev of every class as zpool
/// status prints them (JSON on 2.3+, the `-p` table before).
type Errors = BTreeMap<String, [u64; 3]>;

fn sum_json_vdevs(map: &serde_json::Map<String, Value>, sum: &mut [u64; 3]) {
    for vdev in map.values() {
        for (i, key) in ["read_errors", "write_errors", "checksum_errors"]
            .iter()
            .enumerate()
        {
            sum[i] += vdev[*key].as_u64().unwrap_or(0);
        }
        if let Some(children) = vdev["vdevs"].as_object() {
            sum_json_vdevs(children, sum);
        }
    }
}

fn errors_from_json(text: &str) -> Errors {
    let root: Value = serde_json::from_str(text).expect("zpool status -j is JSON");
    let pools = root["pools"].as_object().expect("pools");
    let mut out = Errors::new();
    for (name, pool) in pools {
        let mut sum = [0; 3];
        for class in ["vdevs", "logs", "l2cache", "spares", "special", "dedup"] {
            if let Some(map) = pool[class].as_object() {
                sum_json_vdevs(map, &mut sum);
            }
        }
        out.insert(name.clone(), sum);
    }
    out
}

fn errors_from_text(text: &str) -> Errors {
    let mut out = Errors::new();
    let mut pool = String::new();
    let mut in_config = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("pool: ") {
            pool = name.to_owned();
            out.insert(pool.clone(), [0; 3]);
        } else if t.starts_with("NAME") && t.ends_with("CKSUM") {
            in_config = true;
        } else if t.starts_with("errors:") {
            in_config = false;
        } else if in_config {
            // NAME STATE READ WRITE CKSUM [note]; class headings (`logs`) have no counts.
            let f: Vec<&str> = t.split_whitespace().collect();
            let counts: Option<Vec<u64>> = f
                .get(2..5)
                .and_then(|c| c.iter().map(|s| s.parse().ok()).collect::<Option<_>>());
            if let (Some(c), Some(sum)) = (counts, out.get_mut(&pool)) {
                for i in 0..3 {
                    sum[i] += c[i];
                }
            }
        }
    }
    out
}

/// Latency columns of `zpool iostat -Hpl` after name, capacity, operations and bandwidth, as
/// (zfs.wait.type, disk.io.direction); `rebuild` exists from OpenZFS 2.2 on.
const LATENCY_COLUMNS: [(&str, Option<&str>); 11] = [
    ("total", Some("read")),
    ("total", Some("write")),
    ("disk", Some("read")),
    ("disk", Some("write")),
    ("syncq", Some("read")),
    ("syncq", Some("write")),
    ("asyncq", Some("read")),
    ("asyncq", Some("write")),
    ("scrub", None),
    ("trim", None),
    ("rebuild", None),
];

/// Per pool, the latency fields of `zpool iostat -Hpl` in nanoseconds (`-` is 0).
fn iostat_latencies(text: &str) -> BTreeMap<String, Vec<u64>> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let ns = f.get(7..)?.iter().map(|v| v.parse().unwrap_or(0)).collect();
            Some((f[0].to_owned(), ns))
        })
        .collect()
}

/// The numeric value of the one point named `name` whose attributes include all of `attrs`.
fn point(snap: &Value, name: &str, attrs: &[(&str, &str)]) -> Option<f64> {
    snapshot_point(snap, name, attrs)?.as_f64()
}

fn must(snap: &Value, name: &str, attrs: &[(&str, &str)]) -> f64 {
    point(snap, name, attrs).unwrap_or_else(|| panic!("no {name} {attrs:?} in the snapshot"))
}

/// Bytes as JSON gives them (integers, exact below 2^53).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn bytes(v: f64) -> u64 {
    v as u64
}

/// Checks one phase's `hostwarden once` against zpool list (before and after it) and status.
fn check_phase(guest: &Guest, phase: &str, errors_json: bool) -> Value {
    let once = guest.ok(&format!("{phase}-once"));
    let snap: Value =
        serde_json::from_str(&once).unwrap_or_else(|e| panic!("{phase}: once JSON: {e}"));
    let zfs = snap["collectors"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["collector"] == "zfs"))
        .expect("zfs collector status");
    assert_eq!(zfs["health"], "ok", "{phase}: zfs collector {zfs}");

    let before = parse_list(&guest.ok(&format!("{phase}-list-before")));
    let after = parse_list(&guest.ok(&format!("{phase}-list-after")));
    let errors = if errors_json {
        errors_from_json(&guest.ok(&format!("{phase}-status-j")))
    } else {
        errors_from_text(&guest.ok(&format!("{phase}-status-p")))
    };
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        ["scratch", "tank"],
        "{phase}: pools"
    );
    for (name, b) in &before {
        let a = &after[name];
        let pool = ("zfs.pool.name", name.as_str());
        // Size does not move with writes: exact.
        assert_eq!(
            (b.size, a.size),
            (b.size, b.size),
            "{phase} {name}: size changed"
        );
        let limit = bytes(must(&snap, "zfs.pool.limit", &[pool]));
        assert_eq!(
            limit, b.size,
            "{phase} {name}: zfs.pool.limit vs zpool list size"
        );
        let used = bytes(must(
            &snap,
            "zfs.pool.usage",
            &[pool, ("zfs.pool.state", "used")],
        ));
        let free = bytes(must(
            &snap,
            "zfs.pool.usage",
            &[pool, ("zfs.pool.state", "free")],
        ));
        // One zpool list row: alloc + free = size, so hostwarden's pair must add up exactly.
        assert_eq!(used + free, limit, "{phase} {name}: used + free vs limit");
        // Quiet pools read the same before and after: exact. Under load hostwarden's own zpool
        // list ran between the two, but allocation is not monotonic (a rewritten file's old
        // blocks are freed a txg later), so it may leave their range by the working set.
        let slack = if b.alloc == a.alloc {
            0
        } else {
            WRITER_WORKING_SET
        };
        let (lo, hi) = (
            b.alloc.min(a.alloc).saturating_sub(slack),
            b.alloc.max(a.alloc) + slack,
        );
        assert!(
            (lo..=hi).contains(&used),
            "{phase} {name}: used {used} outside zpool list's {lo}..={hi} (alloc {} then {})",
            b.alloc,
            a.alloc
        );
        eprintln!(
            "{phase} {name}: size {} alloc {}/{} (hostwarden {used}) free {}/{} health {}",
            b.size, b.alloc, a.alloc, b.free, a.free, a.health
        );

        // Health: 1 for zpool's word, 0 for every other state.
        assert_eq!(
            b.health, a.health,
            "{phase} {name}: health moved during the phase"
        );
        assert_eq!(
            must(
                &snap,
                "zfs.pool.health",
                &[pool, ("zfs.pool.health", &a.health)]
            ),
            1.0,
            "{phase} {name}"
        );
        let others = snap["points"]
            .as_array()
            .expect("points")
            .iter()
            .filter(|p| {
                p["name"] == "zfs.pool.health"
                    && p["attributes"]["zfs.pool.name"] == *name
                    && p["value"] != 0
            })
            .count();
        assert_eq!(
            others, 1,
            "{phase} {name}: exactly one pool health state is 1"
        );
        for (vdev, health) in &a.vdevs {
            let attrs = [
                pool,
                ("zfs.vdev.name", vdev.as_str()),
                ("zfs.pool.health", health.as_str()),
            ];
            assert_eq!(
                must(&snap, "zfs.vdev.health", &attrs),
                1.0,
                "{phase} {name} {vdev} {health}"
            );
        }

        // Error counters: the same sums as zpool status.
        let want = errors[name];
        for (i, kind) in ["read", "write", "checksum"].iter().enumerate() {
            let got = bytes(must(
                &snap,
                "zfs.pool.errors",
                &[pool, ("error.type", kind)],
            ));
            assert_eq!(
                got, want[i],
                "{phase} {name}: {kind} errors vs zpool status"
            );
        }

        // `once`'s latencies are one second's (check_latencies compares them with zpool's own
        // seconds around it): only under load must that second have seen writes wait.
        let wait = must(
            &snap,
            "zfs.pool.operation.latency",
            &[
                pool,
                ("zfs.wait.type", "total"),
                ("disk.io.direction", "write"),
            ],
        );
        if phase == "load" {
            assert!(wait > 0.0, "{phase} {name}: total write wait {wait}");
        }
        // `once` waits for one 1 s iostat interval (docs/collectors/zfs.md, "What once shows"):
        // its counters are that second's operations and bytes, written to under load.
        for metric in ["zfs.pool.operations", "zfs.pool.io"] {
            let got = must(&snap, metric, &[pool, ("disk.io.direction", "write")]);
            if phase == "load" {
                assert!(got > 0.0, "{phase} {name}: {metric} write {got}");
            }
        }
    }
    check_latencies(guest, phase, &snap);
    snap
}

/// Every latency of `once` against zpool's own one-second reports around it (`zpool iostat
/// -Hply 1 5`, started half a second before `once`, guest-init.sh): `once` measures one 1 s
/// interval inside those five seconds (docs/collectors/zfs.md, "What once shows"), so its
/// average wait must lie within theirs, widened by their spread (at least LATENCY_SLACK of the
/// largest) for the load's own variation. A column with no I/O in any of the five seconds (`-`)
/// must be 0 in `once` too. A value from the wrong column (read for write, disk for total, 2.1's
/// columns read as 2.2's) or a since-import average is off by more.
#[allow(clippy::cast_precision_loss)]
fn check_latencies(guest: &Guest, phase: &str, snap: &Value) {
    let mut window: BTreeMap<String, Vec<Vec<u64>>> = BTreeMap::new();
    for (pool, ns) in guest
        .ok(&format!("{phase}-iostat-window"))
        .lines()
        .flat_map(|l| iostat_latencies(l).into_iter())
    {
        window.entry(pool).or_default().push(ns);
    }
    for (pool, seconds) in &window {
        assert_eq!(seconds.len(), 5, "{phase} {pool}: zpool iostat reports");
        for (i, (kind, dir)) in LATENCY_COLUMNS.iter().enumerate() {
            let mut attrs = vec![("zfs.pool.name", pool.as_str()), ("zfs.wait.type", *kind)];
            attrs.extend(dir.map(|d| ("disk.io.direction", d)));
            let got = point(snap, "zfs.pool.operation.latency", &attrs);
            let column: Vec<u64> = seconds.iter().filter_map(|s| s.get(i).copied()).collect();
            if column.is_empty() {
                assert_eq!(
                    got, None,
                    "{phase} {pool}: {attrs:?} but zpool has no such column"
                );
                continue;
            }
            let got = bytes((must(snap, "zfs.pool.operation.latency", &attrs) * 1e9).round());
            let (lo, hi) = (column.iter().min().unwrap(), column.iter().max().unwrap());
            let spread = ((hi - lo) as f64).max(*hi as f64 * LATENCY_SLACK);
            let ok = (*lo as f64 - spread..=*hi as f64 + spread).contains(&(got as f64));
            assert!(
                ok,
                "{phase} {pool} {attrs:?}: hostwarden {got} ns, zpool's seconds {column:?}"
            );
        }
    }
}

/// zpool's own `iostat -Hpl -y 1 1`: write operations per second of each pool.
fn iostat_writes(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((f.first()?.to_string(), f.get(4)?.parse().ok()?))
        })
        .collect()
}

// --- issue 15: once's pool IOPS against zpool's, and the last scan against zpool status ---

/// zpool's `iostat -Hpy 1 N`: each pool's write operations per second, one per report.
fn iostat_write_series(text: &str) -> BTreeMap<String, Vec<u64>> {
    let mut series: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if let (Some(name), Some(Ok(w))) = (f.first(), f.get(4).map(|w| w.parse::<u64>())) {
            series.entry((*name).to_owned()).or_default().push(w);
        }
    }
    series
}

/// `once` under load measured one second inside `zpool iostat -Hpy 1 6`'s six (guest-init.sh):
/// its write operations must lie within the load's own variation, the range of zpool's six
/// seconds widened by their spread on each side (at least a quarter of their mean).
#[allow(clippy::cast_precision_loss)]
fn check_iops(guest: &Guest) {
    let zpool = iostat_write_series(&guest.ok("load-iops-zpool"));
    let snap: Value = serde_json::from_str(&guest.ok("load-iops-once")).expect("once JSON");
    for pool in ["tank", "scratch"] {
        let seconds = &zpool[pool];
        assert_eq!(seconds.len(), 6, "{pool}: zpool iostat reports {seconds:?}");
        let attrs = [("zfs.pool.name", pool), ("disk.io.direction", "write")];
        let ops = must(&snap, "zfs.pool.operations", &attrs);
        let io = must(&snap, "zfs.pool.io", &attrs);
        let (min, max) = (seconds.iter().min().unwrap(), seconds.iter().max().unwrap());
        let mean = seconds.iter().sum::<u64>() as f64 / seconds.len() as f64;
        let spread = ((max - min) as f64).max(mean / 4.0);
        let (lo, hi) = (*min as f64 - spread, *max as f64 + spread);
        eprintln!(
            "iops {pool}: hostwarden once {ops} write ops/s ({io} B/s), zpool iostat -Hpy 1 6 {seconds:?}"
        );
        assert!(
            ops > 0.0 && io > 0.0,
            "{pool}: once wrote {ops} ops, {io} B"
        );
        assert!(
            (lo..=hi).contains(&ops),
            "{pool}: once {ops} write ops/s outside {lo:.0}..={hi:.0} (zpool {seconds:?})"
        );
    }
}

/// `date -u` of Unix seconds in ctime's layout, as zpool prints a scan's date (the guest's zone
/// is UTC), made by the host's date(1) rather than by hostwarden's own conversion.
fn ctime_utc(secs: f64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%a %b %e %H:%M:%S %Y"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The `scan:` line of `pool` in zpool status text.
fn scan_line(text: &str, pool: &str) -> String {
    let block = text
        .split("pool: ")
        .find(|b| b.lines().next().map(str::trim) == Some(pool))
        .unwrap_or_else(|| panic!("no pool {pool} in zpool status"));
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix("scan: "))
        .unwrap_or_else(|| panic!("no scan line for {pool}"))
        .to_owned()
}

/// The last scan of `phase`'s `once` against zpool status taken right after it: tank's finished
/// `function` (end, start, errors, repaired bytes), scratch never scanned.
#[allow(clippy::cast_precision_loss)]
fn check_scan(guest: &Guest, phase: &str, json: bool, function: &str) {
    let snap: Value = serde_json::from_str(&guest.ok(&format!("{phase}-once"))).expect("once JSON");
    let tank = [("zfs.pool.name", "tank"), ("zfs.scan.function", function)];
    let get = |name: &str| must(&snap, name, &tank);
    let (end, start, errors, repaired) = (
        get("zfs.pool.scan.end"),
        get("zfs.pool.scan.start"),
        get("zfs.pool.scan.errors"),
        get("zfs.pool.scan.repaired"),
    );
    let mut finished = tank.to_vec();
    finished.push(("zfs.scan.state", "finished"));
    assert_eq!(
        must(&snap, "zfs.pool.scan.state", &finished),
        1.0,
        "{phase}"
    );
    let now = snap["timestamp_ms"].as_f64().expect("timestamp_ms") / 1000.0;
    let age = get("zfs.pool.scan.age");
    assert!(
        (age - (now - end)).abs() <= 2.0,
        "{phase}: age {age}, now {now}, end {end}"
    );
    if json {
        let status: Value = serde_json::from_str(&guest.ok(&format!("{phase}-status-j")))
            .expect("zpool status JSON");
        let stats = &status["pools"]["tank"]["scan_stats"];
        assert_eq!(
            stats["function"],
            function.to_uppercase(),
            "{phase}: {stats}"
        );
        assert_eq!(stats["state"], "FINISHED", "{phase}: {stats}");
        let want = |k: &str| {
            stats[k]
                .as_f64()
                .unwrap_or_else(|| panic!("{k} in {stats}"))
        };
        assert_eq!(
            (end, start, errors, repaired),
            (
                want("end_time"),
                want("start_time"),
                want("errors"),
                want("processed")
            ),
            "{phase}: once vs scan_stats"
        );
        assert!(status["pools"]["scratch"].get("scan_stats").is_none());
    } else {
        let line = scan_line(&guest.ok(&format!("{phase}-status-p")), "tank");
        let (head, date) = line.split_once(" errors on ").expect("finished scan line");
        assert_eq!(date.trim(), ctime_utc(end), "{phase}: end vs `{line}`");
        assert!(
            head.ends_with(&format!("with {errors}")),
            "{phase}: errors vs `{line}`"
        );
        let took = head
            .split(" in ")
            .nth(1)
            .and_then(|t| t.split(" with").next())
            .expect("duration");
        let hms: Vec<f64> = took.split(':').map(|x| x.parse().expect("h:m:s")).collect();
        assert_eq!(
            end - start,
            hms[0] * 3600.0 + hms[1] * 60.0 + hms[2],
            "{phase}: `{line}`"
        );
    }
    eprintln!(
        "scan {phase}: hostwarden {function} start {start} end {end} age {age:.0} s errors {errors} repaired {repaired} B"
    );
    let never = [("zfs.pool.name", "scratch"), ("zfs.scan.state", "none")];
    assert_eq!(
        must(&snap, "zfs.pool.scan.state", &never),
        1.0,
        "{phase}: scratch"
    );
    assert_eq!(
        point(&snap, "zfs.pool.scan.age", &[("zfs.pool.name", "scratch")]),
        None
    );
}

// --- end issue 15 ---

fn run_version(version: &str, bin: &Path) {
    let out = target_profile_dir()
        .parent()
        .expect("target")
        .join("zfs-vm")
        .join(version);
    let script = workspace_root().join("tests/zfs-vm/run.sh");
    let started = SystemTime::now();
    let mut cmd = Command::new(&script);
    // The ARC block of guest-init.sh writes and reads back 40 % of the guest's RAM under
    // emulation: on busy cores that alone can take 10 minutes, past run.sh's default limit.
    if std::env::var_os("HOSTWARDEN_ZFSVM_BOOT_LIMIT").is_none() {
        cmd.env("HOSTWARDEN_ZFSVM_BOOT_LIMIT", "1800");
    }
    let oracle = out.with_file_name(format!("{version}-oracle"));
    zfs_vm_oracle::pack(&oracle);
    cmd.env("HOSTWARDEN_ZFSVM_ORACLE", &oracle);
    let result = cmd
        .arg(version)
        .arg(bin)
        .arg(&out)
        .arg(hostwarden_tests::standin::standin_bin())
        .output()
        .expect("run tests/zfs-vm/run.sh");
    let secs = started.elapsed().map_or(0.0, |d| d.as_secs_f64());
    eprint!("{}", String::from_utf8_lossy(&result.stderr));
    eprint!("{}", String::from_utf8_lossy(&result.stdout));
    eprintln!("OpenZFS {version}: run.sh took {secs:.0} s");
    assert!(
        result.status.success(),
        "run.sh {version} failed ({}); guest files in {}",
        result.status,
        out.display()
    );

    let guest = Guest::read(&out);
    let zpool_version = guest.ok("zpool-version");
    assert!(
        zpool_version.contains(&format!("zfs-{version}")),
        "guest runs {zpool_version}"
    );
    let json = !version.starts_with("2.1");

    let load = check_phase(&guest, "load", json);
    let writes = iostat_writes(&guest.ok("load-iostat"));
    for pool in ["tank", "scratch"] {
        assert!(
            writes.get(pool).is_some_and(|w| *w > 0),
            "{pool} was not written during the load phase: {writes:?}"
        );
        let online = must(
            &load,
            "zfs.pool.health",
            &[("zfs.pool.name", pool), ("zfs.pool.health", "ONLINE")],
        );
        assert_eq!(online, 1.0, "load: {pool} ONLINE");
    }

    let degraded = check_phase(&guest, "degraded", json);
    let tank = ("zfs.pool.name", "tank");
    assert_eq!(
        must(
            &degraded,
            "zfs.pool.health",
            &[tank, ("zfs.pool.health", "DEGRADED")]
        ),
        1.0
    );
    assert_eq!(
        must(
            &degraded,
            "zfs.pool.health",
            &[tank, ("zfs.pool.health", "ONLINE")]
        ),
        0.0
    );
    let b = [
        tank,
        ("zfs.vdev.name", "/vdev/tank-b"),
        ("zfs.pool.health", "OFFLINE"),
    ];
    assert_eq!(
        must(&degraded, "zfs.vdev.health", &b),
        1.0,
        "tank-b OFFLINE"
    );
    // The scrub repaired the blocks overwritten on tank-b: the counters compared are not all 0.
    let cksum = must(
        &degraded,
        "zfs.pool.errors",
        &[tank, ("error.type", "checksum")],
    );
    assert!(
        cksum > 0.0,
        "degraded: no checksum errors after corrupting tank-b"
    );
    // --- issue 15 ---
    check_iops(&guest);
    check_scan(&guest, "degraded", json, "scrub");
    check_scan(&guest, "resilver", json, "resilver");
    // --- end issue 15 ---
    zfs_vm_oracle::check_oracle(&guest, version);

    check_arc(&guest, version);
    check_squeeze(&guest, version);
    zfs_vm_arc::check_coordination(&guest, version);
}

// --- ARC (issue 15): `once` against arcstats and /proc/meminfo read right before and after it,
// after the guest grew the ARC past a third of its RAM with reads (guest-init.sh). ---

/// The `name type data` lines of arcstats whose data is an unsigned integer.
fn parse_arcstats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            match f[..] {
                [name, _, data] => Some((name.to_owned(), data.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

/// The `Name: N kB` lines of /proc/meminfo, in bytes.
fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let kib: u64 = rest.trim().strip_suffix(" kB")?.parse().ok()?;
            Some((name.to_owned(), kib * 1024))
        })
        .collect()
}

/// Whether `rules` fire on the attribute-less points of a `once` snapshot, judged by the
/// agent's own rule engine.
fn fires(rules: &[hostwarden::config::RuleConfig], snap: &Value) -> bool {
    use hostwarden::model::{Attrs, MetricName, MetricPoint, Snapshot};
    let points = snap["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter(|p| p["attributes"].as_object().is_none_or(|a| a.is_empty()))
        .filter_map(|p| {
            let name = MetricName::from_name(p["name"].as_str()?)?;
            Some(MetricPoint::new(name, Attrs::new(), p["value"].as_f64()?))
        })
        .collect();
    let snapshot = Snapshot {
        points,
        ..Snapshot::default()
    };
    let mut engine = hostwarden::rules::Engine::new(rules);
    engine.evaluate_at(1_000, &snapshot);
    !engine.active().is_empty()
}

fn ratio(a: u64, b: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let r = a as f64 / b as f64;
    r
}

fn check_arc(guest: &Guest, version: &str) {
    let snap: Value = serde_json::from_str(&guest.ok("arc-once")).expect("arc-once JSON");
    let arc = ["before", "after"].map(|w| parse_arcstats(&guest.ok(&format!("arc-arcstats-{w}"))));
    let mem = ["before", "after"].map(|w| parse_meminfo(&guest.ok(&format!("arc-meminfo-{w}"))));
    let total = mem[0]["MemTotal"];
    for a in &arc {
        assert!(
            a["size"] * 3 >= total,
            "OpenZFS {version}: the ARC ({}) did not grow to a third of MemTotal ({total})",
            a["size"]
        );
    }
    // What once read lies between the two readings around it (1 % slack: the ARC keeps
    // adapting while zpool and hostwarden run).
    let size = bytes(must(&snap, "zfs.arc.size", &[]));
    let (lo, hi) = (
        arc[0]["size"].min(arc[1]["size"]),
        arc[0]["size"].max(arc[1]["size"]),
    );
    assert!(
        ratio(size, lo) >= 0.99 && ratio(size, hi) <= 1.01,
        "OpenZFS {version}: once's ARC size {size} outside the arcstats around it [{lo}, {hi}]"
    );
    let c_min = bytes(must(
        &snap,
        "zfs.arc.limit",
        &[("zfs.arc.limit_type", "min")],
    ));
    assert_eq!(c_min, arc[0]["c_min"], "c_min");
    assert_eq!(
        bytes(must(
            &snap,
            "zfs.arc.limit",
            &[("zfs.arc.limit_type", "max")]
        )),
        arc[0]["c_max"],
        "c_max"
    );
    // The ARC-aware available memory against MemAvailable + (size - c_min) read together,
    // before and after once.
    let aware = bytes(must(&snap, "zfs.arc.memory.available", &[]));
    for (i, when) in ["before", "after"].iter().enumerate() {
        let avail = mem[i]["MemAvailable"];
        let reference = avail + arc[i]["size"].saturating_sub(arc[i]["c_min"]);
        let off = (ratio(aware, reference) - 1.0).abs();
        eprintln!(
            "OpenZFS {version} ARC {when}: size {} c_min {} MemAvailable {avail} -> {reference}; \
             once: size {size}, zfs.arc.memory.available {aware} ({:.2} % off)",
            arc[i]["size"],
            arc[i]["c_min"],
            off * 100.0
        );
        assert!(
            off <= 0.05,
            "OpenZFS {version}: zfs.arc.memory.available {aware} is {:.1} % off MemAvailable + (size - c_min) = {reference} read {when} once",
            off * 100.0
        );
    }
    let ratio_once = must(&snap, "system.memory.linux.available_ratio", &[]);
    assert!(
        (ratio_once - ratio(aware, total)).abs() < 0.01,
        "available_ratio {ratio_once} is not zfs.arc.memory.available / MemTotal"
    );
    // The ARC-blind figure counts the ARC as used: system.memory.utilization includes it.
    let used = must(
        &snap,
        "system.memory.utilization",
        &[("system.memory.state", "used")],
    );
    assert!(
        used >= ratio(lo, total) * 0.99,
        "system.memory.utilization {used} does not hold the ARC ({lo} of {total})"
    );
    // The shipped memory rule, by the agent's engine, on once's own points. The rule before
    // issue 15 (`system.memory.utilization > 0.9`) is judged beside it; this guest cannot
    // reach its threshold (its root and vdevs are tmpfs, counted as cached), so its verdict
    // is printed, not asserted.
    let shipped: Vec<_> = hostwarden::config::default_rules()
        .into_iter()
        .filter(|r| r.name.as_str() == "memory_high")
        .collect();
    assert_eq!(shipped.len(), 1, "memory_high is shipped");
    let before_issue = hostwarden::config::parse_str(
        "[[rules]]\nname = \"memory_high\"\nmetric = \"system.memory.utilization\"\n\
         match = { \"system.memory.state\" = \"used\" }\nop = \">\"\nwarning = 0.9\n",
        Path::new("memory_high before issue 15"),
    )
    .expect("the old rule parses")
    .rules;
    let (now, then) = (fires(&shipped, &snap), fires(&before_issue, &snap));
    eprintln!(
        "OpenZFS {version} memory_high: available_ratio {ratio_once:.3} (< 0.1 fires) -> {now}; \
         before issue 15: utilization {used:.3} (> 0.9 fires) -> {then}; ARC {:.1} % of RAM, \
         {:.1} % reclaimable",
        ratio(size, total) * 100.0,
        ratio(size.saturating_sub(c_min), total) * 100.0
    );
    assert!(
        !now,
        "OpenZFS {version}: memory_high fires on a guest whose ARC merely grew"
    );
}

/// The squeeze (guest-init.sh): after the ARC grew, a process took anonymous memory until
/// MemAvailable was about 4 % of MemTotal. The usual MemAvailable alert (node_exporter's mixin:
/// available under 10 % of total) fires there, and Ollama refuses models (ollama/ollama #5700);
/// the ARC could give back what it holds above c_min. The shipped memory_high judges the
/// ARC-aware figure, so its verdict must follow MemAvailable + (size - c_min), not MemAvailable.
fn check_squeeze(guest: &Guest, version: &str) {
    let snap: Value = serde_json::from_str(&guest.ok("squeeze-once")).expect("squeeze-once JSON");
    let arc =
        ["before", "after"].map(|w| parse_arcstats(&guest.ok(&format!("squeeze-arcstats-{w}"))));
    let mem =
        ["before", "after"].map(|w| parse_meminfo(&guest.ok(&format!("squeeze-meminfo-{w}"))));
    let total = mem[0]["MemTotal"];
    let aware = bytes(must(&snap, "zfs.arc.memory.available", &[]));
    let blind = bytes(must(&snap, "system.memory.linux.available", &[]));
    let ratio_once = must(&snap, "system.memory.linux.available_ratio", &[]);
    let mut reference_ratio = Vec::new();
    for (i, when) in ["before", "after"].iter().enumerate() {
        let avail = mem[i]["MemAvailable"];
        assert!(
            ratio(avail, total) < 0.1,
            "OpenZFS {version}: the squeeze left MemAvailable at {:.1} % of MemTotal {when} once; \
             the ARC-blind alert would not fire",
            ratio(avail, total) * 100.0
        );
        let reference = avail + arc[i]["size"].saturating_sub(arc[i]["c_min"]);
        let off = (ratio(aware, reference) - 1.0).abs();
        eprintln!(
            "OpenZFS {version} squeeze {when} once: MemAvailable {avail} ({:.1} %), ARC size {} \
             c_min {}; once: zfs.arc.memory.available {aware} ({:.2} % off), \
             system.memory.linux.available {blind}",
            ratio(avail, total) * 100.0,
            arc[i]["size"],
            arc[i]["c_min"],
            off * 100.0
        );
        assert!(
            off <= 0.05,
            "OpenZFS {version} squeeze: zfs.arc.memory.available {aware} is {:.1} % off \
             MemAvailable + (size - c_min) = {reference} read {when} once",
            off * 100.0
        );
        reference_ratio.push(ratio(reference, total));
    }
    assert!(
        ratio(blind, total) < 0.1,
        "once's ARC-blind available {blind} is not under 10 % of {total}"
    );
    let shipped: Vec<_> = hostwarden::config::default_rules()
        .into_iter()
        .filter(|r| r.name.as_str() == "memory_high")
        .collect();
    let now = fires(&shipped, &snap);
    eprintln!(
        "OpenZFS {version} squeeze memory_high: available_ratio {ratio_once:.3} (< 0.1 fires) -> \
         {now}; MemAvailable alone {:.3} -> the ARC-blind alert fires",
        ratio(blind, total)
    );
    // The scenario this test is for: the ARC still held enough to give back. If the kernel
    // had already shrunk it below that, firing would be right, and the test says so.
    assert!(
        reference_ratio.iter().all(|r| *r >= 0.11),
        "OpenZFS {version}: the ARC shrank under the squeeze (MemAvailable + (size - c_min) is \
         {reference_ratio:?} of MemTotal); the case where memory_high must stay quiet was not reached"
    );
    assert!(
        !now,
        "OpenZFS {version}: memory_high fires while the ARC could give back {:.1} % of RAM",
        (reference_ratio[0] - ratio(mem[0]["MemAvailable"], total)) * 100.0
    );
}

fn hostwarden_once_matches_zpool_in_an_openzfs_guest() {
    let versions =
        std::env::var("HOSTWARDEN_ZFSVM_VERSIONS").unwrap_or_else(|_| "2.3.2".to_owned());
    let bin = release_bin();
    for version in versions.split_whitespace() {
        run_version(version, &bin);
    }
}

/// The parsers above read genuine OpenZFS output (tests/fixtures/zfs, captured in the same kind
/// of guest), so a failure of the guest test is about hostwarden, not about them.
fn the_comparison_parsers_read_genuine_openzfs_output() {
    let dir = workspace_root().join("tests/fixtures/zfs");
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).expect(p);
    let list = parse_list(&read("openzfs-2.3.2-qemu/degraded-list-Hp-v-o.txt"));
    let tank = &list["tank"];
    assert_eq!(
        (tank.size, tank.alloc, tank.free),
        (251_658_240, 109_478_912, 142_179_328)
    );
    assert_eq!(tank.health, "DEGRADED");
    assert!(
        tank.vdevs
            .contains(&("/vdev/tank-b".to_owned(), "OFFLINE".to_owned()))
    );
    assert!(
        tank.vdevs
            .contains(&("/vdev/tank-log".to_owned(), "ONLINE".to_owned()))
    );

    let json = errors_from_json(&read("openzfs-2.3.2-qemu/degraded-status-j-json-int.txt"));
    assert_eq!(
        json,
        errors_from_text(&read("openzfs-2.3.2-qemu/degraded-status.txt"))
    );
    let text = errors_from_text(&read("openzfs-2.1.11-qemu/cksum-status.txt"));
    assert_eq!(text["tank"], [0, 0, 198]);
    assert_eq!(text["scratch"], [0, 0, 0]);

    // 2.1 has no rebuild column: 10 latencies; 2.3 has 11.
    let old = iostat_latencies(&read("openzfs-2.1.11-qemu/iostat-Hpl.txt"));
    let new = iostat_latencies(&read("openzfs-2.3.2-qemu/iostat-Hpl.txt"));
    assert_eq!((old["tank"].len(), new["tank"].len()), (10, 11));
    assert_eq!(new["tank"][..2], [16_262_493, 3_961_915]);
    assert_eq!(old["tank"][9], 0, "`-` reads as 0");
}
