//! The host collector keeps the mount table open and reads it again only when the kernel flags
//! it as changed (POLLPRI on a mountinfo descriptor): checked on this kernel with a real mount
//! and unmount in a private mount namespace, tick by tick.
//!
//! The namespace is a shell started by `unshare -m -p -f --mount-proc`: PID 1 of its own proc
//! filesystem, reached from outside as `/proc/<pid>/root/proc`, so the collector's
//! `1/mountinfo` is the private table and nothing on the host is mounted.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};

use hostwarden::collectors::Collector;
use hostwarden::collectors::host::{DiskConfig, HostCollector, NetworkConfig};
use hostwarden::config::HostConfig;
use hostwarden::model::{AttrKey, MetricName, Snapshot, Value};
use hostwarden_tests::harness::Harness;
use hostwarden_tests::need::Need;

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![h.tokio_test(
        "a_mount_and_an_unmount_are_seen_on_the_next_tick_through_a_kept_descriptor",
        &[
            Need::Root,
            Need::Tool("unshare"),
            Need::Tool("mount"),
            Need::Tool("umount"),
        ],
        a_mount_and_an_unmount_are_seen_on_the_next_tick_through_a_kept_descriptor,
    )])
}

/// The test's mount source: a name no real mount has.
const SOURCE: &str = "hw-mounts-test";

/// A shell in its own mount and PID namespaces that mounts, unmounts and ends on request.
struct Namespace {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Namespace {
    fn start(dir: &Path) -> Namespace {
        let script = format!(
            "echo ready; read x; mount -t tmpfs -o size=1m {SOURCE} {d} && echo mounted; \
             read x; umount {d} && echo unmounted; read x",
            d = dir.display()
        );
        let mut child = Command::new("unshare")
            .args(["-m", "-p", "-f", "--mount-proc", "sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start unshare");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut ns = Namespace {
            child,
            stdin,
            stdout,
        };
        ns.expect("ready");
        ns
    }

    /// The shell's PID outside: unshare's one child.
    fn shell_pid(&self) -> u32 {
        let unshare = self.child.id();
        let list = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .expect("unshare's children");
        list.split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("unshare forked the shell")
    }

    fn step(&mut self, answer: &str) {
        writeln!(self.stdin, "go").expect("write to the shell");
        self.expect(answer);
    }

    fn expect(&mut self, line: &str) {
        let mut got = String::new();
        self.stdout
            .read_line(&mut got)
            .expect("read from the shell");
        assert_eq!(got.trim_end(), line, "the shell in the namespace failed");
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // The shell ends when its input closes; kill it in case a step failed first.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

async fn tick(host: &mut HostCollector) -> Snapshot {
    let sample = host.collect().await.expect("a host sample");
    Snapshot {
        points: sample.points,
        ..Snapshot::default()
    }
}

/// `system.filesystem.usage` of the test's mount in `state`, if reported.
fn usage(s: &Snapshot, dir: &Path, state: &str) -> Option<Value> {
    let mp = dir.to_str().expect("UTF-8 path");
    s.find(
        MetricName::SystemFilesystemUsage,
        &[
            (AttrKey::SystemDevice, SOURCE),
            (AttrKey::SystemFilesystemMountpoint, mp),
            (AttrKey::SystemFilesystemState, state),
        ],
    )
    .map(|p| p.value)
}

/// Descriptors of this process open on a mountinfo file.
fn open_mountinfos() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.ends_with("mountinfo"))
        .count()
}

async fn a_mount_and_an_unmount_are_seen_on_the_next_tick_through_a_kept_descriptor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ns = Namespace::start(dir.path());
    let shell = Path::new("/proc").join(ns.shell_pid().to_string());
    let mut host = HostCollector::new(&HostConfig {
        proc_root: shell.join("root/proc"),
        root_fs: shell.join("root"),
        disk: DiskConfig {
            enabled: false,
            ..DiskConfig::default()
        },
        network: NetworkConfig {
            enabled: false,
            ..NetworkConfig::default()
        },
        ..HostConfig::default()
    });
    let before = open_mountinfos();

    let first = tick(&mut host).await;
    assert_eq!(usage(&first, dir.path(), "used"), None);
    assert!(
        first.find(MetricName::SystemFilesystemLimit, &[]).is_some(),
        "the namespace's other mounts are reported"
    );
    assert_eq!(
        open_mountinfos(),
        before + 1,
        "the mount table's descriptor is kept between ticks, so only the kernel's flag can \
         make the next tick see a change"
    );

    ns.step("mounted");
    let mounted = tick(&mut host).await;
    let limit = mounted.find(
        MetricName::SystemFilesystemLimit,
        &[(AttrKey::SystemDevice, SOURCE)],
    );
    assert_eq!(limit.map(|p| p.value), Some(Value::Int(1 << 20)));
    let used = usage(&mounted, dir.path(), "used").expect("the new mount's usage");

    // No mount event: the table is not read again, but free space is measured every tick.
    std::fs::write(
        shell
            .join("root")
            .join(dir.path().strip_prefix("/").unwrap())
            .join("f"),
        vec![1u8; 64 << 10],
    )
    .expect("write into the namespace's tmpfs");
    let written = tick(&mut host).await;
    let grown = usage(&written, dir.path(), "used").expect("the mount is still reported");
    assert!(
        matches!((used, grown), (Value::Int(a), Value::Int(b)) if b >= a + (64 << 10)),
        "used {used:?} then {grown:?}"
    );

    ns.step("unmounted");
    let unmounted = tick(&mut host).await;
    assert_eq!(usage(&unmounted, dir.path(), "used"), None);
    assert_eq!(open_mountinfos(), before + 1);
}
