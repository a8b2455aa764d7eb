//! node_exporter as the oracle for disks, filesystems and network: Debian's
//! `prometheus-node-exporter` reads the same kernel files as hostwarden's host collector, so
//! what one scrape before and one after `hostwarden once --format json` say must bracket what
//! `once` says. Shared by tests/tests/host_oracle.rs (this host), tests/tests/zfs_vm.rs (the
//! OpenZFS guest, which runs node_exporter itself and writes the scrapes down) and the captured
//! proc trees (where nothing moves, so `Between` is exact).

// Tests wait on real wall-clock time for real processes; tokio's virtual clock does not apply.
#![allow(clippy::disallowed_types)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hostwarden::collectors::host::HostConfig;
use hostwarden::collectors::host::disk::PARTITION_PATTERN;
use serde_json::Value;

use crate::prometheus_server::http_get;

/// Debian's node_exporter (tests/ci/install-node-exporter.sh).
pub const NODE_EXPORTER: &str = "prometheus-node-exporter";

/// `once`'s config beside node_exporter: the host collector alone.
pub const ONCE_CONFIG: &str =
    "[gpu]\nenabled = false\n[zfs]\nenabled = false\n[ollama]\nenabled = false\n";

/// One sample of the Prometheus text format: name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// hostwarden's default filters written as node_exporter's flags, after `collectors`: one disk
/// pattern (exclusions and partitions together), and /proc/net/dev rather than netlink, whose
/// rx_dropped leaves out the missed packets /proc/net/dev adds to "drop".
pub fn filter_args(collectors: &[Family]) -> Vec<String> {
    let d = HostConfig::default();
    let mut args = vec!["--collector.disable-defaults".to_owned()];
    for family in collectors {
        args.extend(match family {
            Family::Disks => vec![
                "--collector.diskstats".to_owned(),
                format!(
                    "--collector.diskstats.device-exclude={}|{}",
                    d.disk.device_exclude, PARTITION_PATTERN
                ),
            ],
            Family::Mounts => vec![
                "--collector.filesystem".to_owned(),
                format!(
                    "--collector.filesystem.fs-types-exclude={}",
                    d.filesystem.fs_types_exclude
                ),
                format!(
                    "--collector.filesystem.mount-points-exclude={}",
                    d.filesystem.mount_points_exclude
                ),
            ],
            Family::Interfaces => vec![
                "--collector.netdev".to_owned(),
                "--no-collector.netdev.netlink".to_owned(),
                format!(
                    "--collector.netdev.device-exclude={}",
                    d.network.device_exclude
                ),
            ],
        });
    }
    args
}

/// node_exporter on a port of its own, stopped on drop.
pub struct NodeExporter {
    child: Child,
    addr: String,
}

impl NodeExporter {
    /// Starts node_exporter with `args` (collectors and filters) on a free port.
    pub fn start(args: &[String]) -> NodeExporter {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address={addr}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter");
        let ne = NodeExporter { child, addr };
        let start = Instant::now();
        while std::net::TcpStream::connect(&ne.addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node_exporter did not listen on {} within 20s",
                ne.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ne
    }

    pub fn scrape(&self) -> Vec<Sample> {
        let reply = http_get(&self.addr, "/metrics", &[]);
        assert_eq!(reply.status, 200, "{}", reply.body);
        parse_metrics(&reply.body)
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Every sample of a scrape's body.
pub fn parse_metrics(body: &str) -> Vec<Sample> {
    body.lines().filter_map(parse_sample).collect()
}

/// `name{a="x",b="y"} 1.5e+06`; comments and malformed lines are `None`.
fn parse_sample(line: &str) -> Option<Sample> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head.to_owned(), BTreeMap::new(), value));
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.trim_end_matches('}').chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        chars.next(); // the opening quote
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => v.push('\n'),
                    Some(o) => v.push(o),
                    None => {}
                },
                '"' => break,
                c => v.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), v);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name.to_owned(), labels, value))
}

/// A series: metric name and its sorted attributes (or labels), as text.
type Key = (String, Vec<(String, String)>);

fn hostwarden_points(snap: &Value) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    for p in snap["points"].as_array().expect("points") {
        let name = p["name"].as_str().expect("name").to_owned();
        let attrs = p["attributes"]
            .as_object()
            .expect("attributes")
            .iter()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (k.clone(), text)
            })
            .collect();
        out.insert((name, attrs), p["value"].as_f64().expect("number"));
    }
    out
}

/// The three families compared; a proc tree has no mounts to stat, so it compares two.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Family {
    Disks,
    Mounts,
    Interfaces,
}

/// How a value compares with node_exporter's two scrapes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Compare {
    Exact,
    /// A counter: between the two scrapes.
    Between,
    /// Space on a filesystem being written: it moves both ways, so between the two scrapes
    /// widened by what it moved between them (a quiet filesystem: exact).
    Moving,
}

/// hostwarden's series (name and attributes beyond the device key) for one node_exporter
/// metric; `None` for metrics the oracle does not compare.
fn counterpart(ne_name: &str) -> Option<(&'static str, &'static [(&'static str, &'static str)])> {
    Some(match ne_name {
        "node_disk_read_bytes_total" => ("system.disk.io", &[("disk.io.direction", "read")]),
        "node_disk_written_bytes_total" => ("system.disk.io", &[("disk.io.direction", "write")]),
        "node_disk_reads_completed_total" => {
            ("system.disk.operations", &[("disk.io.direction", "read")])
        }
        "node_disk_writes_completed_total" => {
            ("system.disk.operations", &[("disk.io.direction", "write")])
        }
        "node_disk_read_time_seconds_total" => (
            "system.disk.operation_time",
            &[("disk.io.direction", "read")],
        ),
        "node_disk_write_time_seconds_total" => (
            "system.disk.operation_time",
            &[("disk.io.direction", "write")],
        ),
        "node_disk_reads_merged_total" => ("system.disk.merged", &[("disk.io.direction", "read")]),
        "node_disk_writes_merged_total" => {
            ("system.disk.merged", &[("disk.io.direction", "write")])
        }
        "node_disk_io_time_seconds_total" => ("system.disk.io_time", &[]),
        "node_network_receive_bytes_total" => {
            ("system.network.io", &[("network.io.direction", "receive")])
        }
        "node_network_transmit_bytes_total" => {
            ("system.network.io", &[("network.io.direction", "transmit")])
        }
        "node_network_receive_packets_total" => (
            "system.network.packet.count",
            &[("network.io.direction", "receive")],
        ),
        "node_network_transmit_packets_total" => (
            "system.network.packet.count",
            &[("network.io.direction", "transmit")],
        ),
        "node_network_receive_errs_total" => (
            "system.network.errors",
            &[("network.io.direction", "receive")],
        ),
        "node_network_transmit_errs_total" => (
            "system.network.errors",
            &[("network.io.direction", "transmit")],
        ),
        "node_network_receive_drop_total" => (
            "system.network.packet.dropped",
            &[("network.io.direction", "receive")],
        ),
        "node_network_transmit_drop_total" => (
            "system.network.packet.dropped",
            &[("network.io.direction", "transmit")],
        ),
        _ => return None,
    })
}

fn labels_of<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a BTreeMap<String, String>> {
    samples
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, l, _)| l)
        .collect()
}

fn value_of(samples: &[Sample], name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l == labels)
        .map(|(_, _, v)| *v)
}

/// hostwarden's value of `name` whose attributes include all of `with`.
fn hw_value(points: &BTreeMap<Key, f64>, name: &str, with: &[(&str, &str)]) -> Option<f64> {
    points
        .iter()
        .find(|((n, attrs), _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| attrs.iter().any(|(ak, av)| ak == k && av == v))
        })
        .map(|(_, v)| *v)
}

/// What one comparison found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// One line per disagreement; a space figure that moved ends with `(Moving)`.
    pub failures: Vec<String>,
    /// Values compared.
    pub compared: usize,
    /// Per family, the devices, mounts or interfaces node_exporter reported.
    pub names: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Verdict {
    /// Records a failure unless `hw` lies between the two scrapes (or equals them for
    /// `Exact`). Go writes `ms * 0.001` where hostwarden writes `ms / 1000.0`: a last-bit
    /// difference is not a disagreement.
    fn check(&mut self, what: &str, hw: Option<f64>, before: f64, after: f64, how: Compare) {
        let Some(hw) = hw else {
            self.failures.push(format!(
                "{what}: node_exporter has {before}, hostwarden none"
            ));
            return;
        };
        self.compared += 1;
        let (lo, hi) = (before.min(after), before.max(after));
        let eps = 1e-12 * hi.abs().max(1.0);
        let ok = match how {
            Compare::Exact => (hw - before).abs() <= eps && (hw - after).abs() <= eps,
            Compare::Between => hw >= lo - eps && hw <= hi + eps,
            Compare::Moving => {
                let moved = hi - lo;
                hw >= lo - moved - eps && hw <= hi + moved + eps
            }
        };
        if !ok {
            self.failures.push(format!(
                "{what}: hostwarden {hw}, node_exporter {before} then {after} ({how:?})"
            ));
        }
    }

    /// Whether every failure is a space figure that moved (worth another round).
    pub fn only_moving(&self) -> bool {
        self.failures.iter().all(|f| f.ends_with("(Moving)"))
    }
}

/// Holds `once`'s snapshot to node_exporter's scrapes right before and after it, for the
/// families given: every counter between the scrapes, sizes exact, space and inodes between
/// them widened by what they moved, and the same devices, mounts and interfaces on both sides
/// (none at all is a failure too: nothing would have been compared).
pub fn compare(before: &[Sample], snap: &Value, after: &[Sample], families: &[Family]) -> Verdict {
    let hw = hostwarden_points(snap);
    let mut v = Verdict::default();

    // Counters of disks and interfaces, series by series.
    for (name, labels, b) in before {
        let Some((hw_name, extra)) = counterpart(name) else {
            continue;
        };
        let device = labels.get("device").expect("a device label");
        let key = if hw_name.starts_with("system.disk") {
            "system.device"
        } else {
            "network.interface.name"
        };
        let mut with: Vec<(&str, &str)> = vec![(key, device.as_str())];
        with.extend_from_slice(extra);
        let Some(a) = value_of(after, name, labels) else {
            v.failures
                .push(format!("{name}{labels:?} vanished from node_exporter"));
            continue;
        };
        v.check(
            &format!("{name}{{device={device}}}"),
            hw_value(&hw, hw_name, &with),
            *b,
            a,
            Compare::Between,
        );
    }

    if families.contains(&Family::Mounts) {
        compare_mounts(before, &hw, after, &mut v);
    }

    // The same devices, mounts and interfaces on both sides.
    let ne_set = |name: &str, label: &str| -> BTreeSet<String> {
        labels_of(before, name)
            .into_iter()
            .map(|l| l[label].clone())
            .collect()
    };
    let hw_set = |name: &str, key: &str| -> BTreeSet<String> {
        hw.keys()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, attrs)| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
            .collect()
    };
    for family in families {
        let (what, ne_names, hw_names) = match family {
            Family::Disks => (
                "disks",
                ne_set("node_disk_reads_completed_total", "device"),
                hw_set("system.disk.operations", "system.device"),
            ),
            Family::Mounts => (
                "mounts",
                ne_set("node_filesystem_size_bytes", "mountpoint"),
                hw_set("system.filesystem.stale", "system.filesystem.mountpoint"),
            ),
            Family::Interfaces => (
                "interfaces",
                ne_set("node_network_receive_bytes_total", "device"),
                hw_set("system.network.io", "network.interface.name"),
            ),
        };
        if ne_names != hw_names {
            v.failures.push(format!(
                "{what} differ: node_exporter {ne_names:?}, hostwarden {hw_names:?}"
            ));
        }
        if ne_names.is_empty() {
            v.failures.push(format!("no {what} to compare"));
        }
        v.names.insert(what, ne_names);
    }
    v
}

/// Filesystems: size exact, the rest between the two scrapes.
fn compare_mounts(before: &[Sample], hw: &BTreeMap<Key, f64>, after: &[Sample], v: &mut Verdict) {
    for labels in labels_of(before, "node_filesystem_size_bytes") {
        let mp = labels["mountpoint"].as_str();
        let at = [("system.filesystem.mountpoint", mp)];
        let both = |n: &str| {
            (
                value_of(before, n, labels).unwrap_or(f64::NAN),
                value_of(after, n, labels).unwrap_or(f64::NAN),
            )
        };
        let state = |metric: &str, st: &str| {
            hw_value(
                hw,
                metric,
                &[
                    ("system.filesystem.mountpoint", mp),
                    ("system.filesystem.state", st),
                ],
            )
        };
        let (b, a) = both("node_filesystem_size_bytes");
        let limit = hw_value(hw, "system.filesystem.limit", &at);
        v.check(&format!("size of {mp}"), limit, b, a, Compare::Exact);
        let (b, a) = both("node_filesystem_avail_bytes");
        let free = state("system.filesystem.usage", "free");
        v.check(&format!("avail of {mp}"), free, b, a, Compare::Moving);
        let (b, a) = both("node_filesystem_free_bytes");
        let free_and_reserved = state("system.filesystem.usage", "free")
            .zip(state("system.filesystem.usage", "reserved"))
            .map(|(f, r)| f + r);
        v.check(
            &format!("free of {mp}"),
            free_and_reserved,
            b,
            a,
            Compare::Moving,
        );
        let (b, a) = both("node_filesystem_files");
        if b > 0.0 {
            let total = state("system.filesystem.inodes.usage", "used")
                .zip(state("system.filesystem.inodes.usage", "free"))
                .map(|(u, f)| u + f);
            v.check(&format!("inodes of {mp}"), total, b, a, Compare::Moving);
            let (b, a) = both("node_filesystem_files_free");
            let free = state("system.filesystem.inodes.usage", "free");
            v.check(&format!("free inodes of {mp}"), free, b, a, Compare::Moving);
        }
        let (b, a) = both("node_filesystem_readonly");
        let mode = hw
            .keys()
            .find(|(n, attrs)| {
                n == "system.filesystem.limit"
                    && attrs
                        .iter()
                        .any(|(k, v)| k == "system.filesystem.mountpoint" && v == mp)
            })
            .and_then(|(_, attrs)| {
                attrs
                    .iter()
                    .find(|(k, _)| k == "system.filesystem.mode")
                    .map(|(_, v)| if v == "ro" { 1.0 } else { 0.0 })
            });
        v.check(
            &format!("read-only flag of {mp}"),
            mode,
            b,
            a,
            Compare::Exact,
        );
    }
}
