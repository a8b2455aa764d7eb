//! A real systemd manager for the tuner's tests: `systemd --user` in a private mount namespace
//! (its own tmpfs on /run/systemd, so it believes systemd is the init system) and its own
//! cgroup, with XDG_RUNTIME_DIR and XDG_CONFIG_HOME in temp dirs. Its D-Bus (dbus-user-session's
//! `dbus.socket`) appears at `$XDG_RUNTIME_DIR/bus`. Stopped, and its cgroup emptied, on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use tokio::time::Instant;

use crate::need::Need;

/// Runs inside `unshare --mount --propagation private`: the tmpfs is only seen by this manager.
const START: &str = r#"set -e
mkdir -p /run/systemd
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/system
for d in "$@"; do mkdir -p "$d"; echo $$ > "$d/cgroup.procs"; done
exec systemd --user
"#;

/// `START` for a manager that also gets the memory, cpu, cpuacct and pids controllers on a
/// hybrid host (v1 controllers, as on this project's CI machine, whose unified tree has none to
/// delegate): the shell is moved into a cgroup of its own in every hierarchy, nested below the
/// test's own memory cgroup so the machine's memory accounting still covers the manager, then
/// a cgroup namespace and bind mounts of those cgroups over /sys/fs/cgroup/<hierarchy> make them
/// the manager's root. A root `systemd --user` then writes memory.limit_in_bytes,
/// cpu.cfs_quota_us, cpu.shares and pids.max for its units as the system manager would.
const START_CONTROLLED: &str = r#"set -e
for d in "$@"; do mkdir -p "$d"; echo $$ > "$d/cgroup.procs"; done
exec unshare --cgroup sh -c '
set -e
mkdir -p /run/systemd
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/system
for d in "$@"; do h=${d#/sys/fs/cgroup/}; h=${h%%/*}; mount --bind "$d" "/sys/fs/cgroup/$h"; done
exec systemd --user' sh "$@"
"#;

/// The hierarchies a controlled manager is given (hybrid host), each nested below the test's
/// own cgroup there; `None` on a unified host, where `START` already gives the manager the v2
/// tree and systemd enables the controllers itself.
fn controlled_dirs(name: &str) -> Option<Vec<PathBuf>> {
    let root = Path::new("/sys/fs/cgroup");
    if !root.join("systemd").is_dir() {
        return None;
    }
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut dirs = Vec::new();
    for h in ["systemd", "unified", "memory", "cpu", "cpuacct", "pids"] {
        let path = own.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (id, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
            let hit = match h {
                "systemd" => ctrl == "name=systemd",
                "unified" => id == "0",
                h => ctrl.split(',').any(|c| c == h),
            };
            hit.then(|| path.trim_start_matches('/').to_owned())
        })?;
        if root.join(h).join("cgroup.procs").exists() {
            dirs.push(root.join(h).join(path).join(name));
        }
    }
    Some(dirs)
}

/// What a user manager needs: root for the private mount namespace and cgroups, systemd and
/// dbus-user-session (tests/ci/install-tuner.sh installs them).
pub const NEEDS: &[Need] = &[
    Need::Root,
    Need::Tool("systemd"),
    Need::Tool("unshare"),
    Need::Tool("systemctl"),
    Need::Tool("dbus-daemon"),
    Need::File("/usr/lib/systemd/user/dbus.socket"),
];

/// The cgroup directories the manager is moved into: both trees of a hybrid (v1) host, or the
/// one unified tree.
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("systemd").is_dir() {
        ["systemd", "unified"]
            .iter()
            .map(|h| root.join(h))
            .filter(|h| h.join("cgroup.procs").exists())
            .map(|h| h.join(name))
            .collect()
    } else {
        vec![root.join(name)]
    }
}

pub struct UserManager {
    child: Child,
    runtime_dir: tempfile::TempDir,
    config_home: tempfile::TempDir,
    cgroups: Vec<PathBuf>,
}

impl UserManager {
    /// Starts the manager and waits (up to 20 s) for its bus socket.
    pub fn start() -> UserManager {
        UserManager::start_as(false)
    }

    /// A manager that enforces MemoryMax, CPUQuota, CPUWeight and TasksMax in real cgroups
    /// (see `START_CONTROLLED`).
    pub fn start_with_controllers() -> UserManager {
        UserManager::start_as(true)
    }

    fn start_as(controllers: bool) -> UserManager {
        let runtime_dir = tempfile::Builder::new()
            .prefix("hw-xdg-run")
            .tempdir()
            .expect("runtime dir");
        let config_home = tempfile::Builder::new()
            .prefix("hw-xdg-cfg")
            .tempdir()
            .expect("config home");
        let name = format!(
            "hostwarden-test-{}-{}",
            std::process::id(),
            runtime_dir
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let controlled = controllers.then(|| controlled_dirs(&name)).flatten();
        let script = if controlled.is_some() {
            START_CONTROLLED
        } else {
            START
        };
        let cgroups = controlled.unwrap_or_else(|| cgroup_dirs(&name));
        fs::create_dir_all(config_home.path().join("systemd/user")).expect("unit dir");
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "start",
            ])
            .args(&cgroups)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("XDG_RUNTIME_DIR", runtime_dir.path())
            .env("XDG_CONFIG_HOME", config_home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn unshare … systemd --user");
        let mut m = UserManager {
            child,
            runtime_dir,
            config_home,
            cgroups,
        };
        let bus = m.runtime_dir.path().join("bus");
        let deadline = Instant::now() + Duration::from_secs(20);
        // Polled, not slept on: the socket shows up in well under a second.
        while !bus.exists() {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("systemd --user exited before its bus appeared: {status}");
            }
            assert!(Instant::now() < deadline, "no {} after 20s", bus.display());
            std::thread::sleep(Duration::from_millis(5));
        }
        m
    }

    /// `unix:path=$XDG_RUNTIME_DIR/bus`, for `[tuner] bus`.
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path={}",
            self.runtime_dir.path().join("bus").display()
        )
    }

    /// `$XDG_CONFIG_HOME/systemd/user`: the unit and drop-in directory (`[tuner] dropin_dir`).
    pub fn unit_dir(&self) -> PathBuf {
        self.config_home.path().join("systemd/user")
    }

    /// A scratch directory that lives as long as the manager.
    pub fn scratch(&self) -> PathBuf {
        self.runtime_dir.path().to_path_buf()
    }

    pub fn install_unit(&self, name: &str, body: &str) {
        fs::write(self.unit_dir().join(name), body).expect("write unit");
        self.systemctl(&["daemon-reload"]);
    }

    /// `systemctl --user ARGS`, asserting success.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        let out = Command::new("systemctl")
            .arg("--user")
            .args(args)
            .env("XDG_RUNTIME_DIR", self.runtime_dir.path())
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .output()
            .expect("run systemctl");
        assert!(
            out.status.success(),
            "systemctl --user {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `systemctl --user show -p PROP --value UNIT`.
    pub fn property(&self, unit: &str, prop: &str) -> String {
        let out = self.systemctl(&["show", "-p", prop, "--value", unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn cgroup_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for root in &self.cgroups {
            collect_pids(root, &mut pids);
        }
        pids
    }
}

fn collect_pids(dir: &Path, pids: &mut Vec<i32>) {
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                collect_pids(&e.path(), pids);
            }
        }
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                remove_tree(&e.path());
            }
        }
    }
    if let Err(e) = fs::remove_dir(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("cannot remove cgroup {}: {e}", dir.display());
    }
}

impl Drop for UserManager {
    /// SIGTERM lets the manager stop its units; whatever is left in its cgroups is killed.
    fn drop(&mut self) {
        let pid = i32::try_from(self.child.id()).unwrap_or(0);
        // SAFETY: kill has no memory preconditions; pid is our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for _ in 0..50 {
            let pids = self.cgroup_pids();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                // SAFETY: as above; these are the manager's own processes.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Err(e) = self.child.kill()
            && e.kind() != std::io::ErrorKind::InvalidInput
        {
            eprintln!("killing systemd --user: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("waiting for systemd --user: {e}");
        }
        for c in &self.cgroups {
            remove_tree(c);
        }
    }
}

/// The `KEY=value` environment of a running process, from /proc/PID/environ. A process that is
/// gone fails the test: an empty map would let "key absent" checks pass on nothing.
pub fn process_env(pid: u32) -> std::collections::BTreeMap<String, String> {
    let path = format!("/proc/{pid}/environ");
    let raw = fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let s = String::from_utf8_lossy(kv);
            s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The tuner's audit journal in `state_dir`, one JSON value per entry (none before the first).
pub fn tuner_journal(state_dir: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(state_dir.join("tuner-journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
