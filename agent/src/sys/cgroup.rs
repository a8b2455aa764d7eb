//! A unit's cgroup, read from the files the kernel enforces (not what systemd says it wrote):
//! the limits, memory and CPU use, and the OOM-kill count. The directory comes from
//! `<proc_root>/<pid>/cgroup` of the unit's main process, so the paths are the ones the agent's
//! own cgroup namespace sees, whatever the manager's view (`ControlGroup`) is.
//!
//! Both layouts: the unified v2 tree (memory.high, memory.max, cpu.max, cpu.weight, pids.max),
//! and the v1 controllers of a hybrid host, where systemd maps MemoryMax to
//! memory.limit_in_bytes, CPUQuota to cpu.cfs_quota_us, CPUWeight to cpu.shares and TasksMax to
//! pids.max, and has no file for MemoryHigh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::sys::proc::ProcReader;

/// What systemd writes for infinity, normalised: `u64::MAX`.
const INFINITY: u64 = u64::MAX;
/// v1 memory.limit_in_bytes for "no limit" is LONG_MAX rounded down to a page.
const V1_UNLIMITED: u64 = 1 << 62;
/// A cgroup file holds a line or a few: anything longer is not one.
const MAX_FILE: u64 = 64 * 1024;

/// Where one unit's cgroup files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitCgroup {
    V2(PathBuf),
    /// Controller name -> its directory.
    V1(BTreeMap<String, PathBuf>),
}

/// The cgroup of a unit's main process, derived once per main PID instead of every tick (a read
/// of `<pid>/cgroup`, a stat of the root and a few allocations). On the unified tree a
/// service's main process stays in its cgroup for life. On v1 systemd moves it into a
/// controller's hierarchy the first time the unit gets a setting there (a limit set live), so
/// a v1 entry is kept only while `<pid>/cgroup` still reads the same.
#[derive(Debug, Default)]
pub struct CgroupCache {
    entry: Option<Cached>,
}

#[derive(Debug)]
struct Cached {
    pid: u32,
    /// The `<pid>/cgroup` text it was derived from (v1 only).
    v1_text: Option<String>,
    cg: UnitCgroup,
}

impl CgroupCache {
    /// `UnitCgroup::of_pid`, from the cache while `pid` (and on v1 its cgroup file) is the same.
    pub fn of_pid(
        &mut self,
        proc: &ProcReader,
        pid: u32,
        cgroup_root: &Path,
    ) -> Result<&UnitCgroup, String> {
        let path = proc.root().join(pid.to_string()).join("cgroup");
        let mut text = None;
        let fresh = match &self.entry {
            Some(c) if c.pid == pid => match &c.v1_text {
                None => true,
                Some(old) => {
                    text = read(&path);
                    text.as_ref() == Some(old)
                }
            },
            _ => false,
        };
        if !fresh {
            self.entry = None;
            let text = match text {
                Some(t) => t,
                None => read(&path).ok_or_else(|| format!("cannot read {}", path.display()))?,
            };
            let cg = UnitCgroup::of_text(&text, &path, cgroup_root)?;
            let v1_text = matches!(cg, UnitCgroup::V1(_)).then_some(text);
            self.entry = Some(Cached { pid, v1_text, cg });
        }
        self.entry
            .as_ref()
            .map(|c| &c.cg)
            .ok_or_else(|| format!("no cgroup for {}", path.display()))
    }
}

/// Limits and usage read from the files, in systemd's units (`u64::MAX` is infinity; `None`
/// where the layout has no such file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupReading {
    pub memory_high: Option<u64>,
    pub memory_max: Option<u64>,
    /// CPU time per second, in microseconds.
    pub cpu_quota_per_sec_usec: Option<u64>,
    /// v2 cpu.weight.
    pub cpu_weight: Option<u64>,
    /// v1 cpu.shares (systemd writes weight × 1024 / 100).
    pub cpu_shares: Option<u64>,
    pub tasks_max: Option<u64>,
    pub memory_current: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    pub oom_kills: Option<u64>,
}

fn read(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

fn number(path: &Path) -> Option<u64> {
    let t = read(path)?;
    let t = t.trim();
    if t == "max" {
        return Some(INFINITY);
    }
    t.parse().ok()
}

/// `key value` lines (cpu.stat, memory.events, memory.oom_control).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    read(path)?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

impl UnitCgroup {
    /// The cgroup of process `pid` (the unit's main process) below `cgroup_root`
    /// (/sys/fs/cgroup): v2 when the root is the unified tree, else the v1 controllers.
    pub fn of_pid(proc: &ProcReader, pid: u32, cgroup_root: &Path) -> Result<UnitCgroup, String> {
        let path = proc.root().join(pid.to_string()).join("cgroup");
        let text = read(&path).ok_or_else(|| format!("cannot read {}", path.display()))?;
        UnitCgroup::of_text(&text, &path, cgroup_root)
    }

    /// The cgroup a `<pid>/cgroup` file (`path`, for messages) names.
    fn of_text(text: &str, path: &Path, cgroup_root: &Path) -> Result<UnitCgroup, String> {
        let rel = |p: &str| PathBuf::from(p.trim_start_matches('/'));
        if cgroup_root.join("cgroup.controllers").exists() {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or_else(|| format!("{} has no unified entry", path.display()))?;
            return Ok(UnitCgroup::V2(cgroup_root.join(rel(line))));
        }
        let mut dirs = BTreeMap::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, p) = (parts.next(), parts.next(), parts.next());
            let (Some(controllers), Some(p)) = (controllers, p) else {
                continue;
            };
            for c in controllers.split(',').filter(|c| !c.is_empty()) {
                if ["memory", "cpu", "cpuacct", "pids"].contains(&c) {
                    dirs.insert(c.to_owned(), cgroup_root.join(c).join(rel(p)));
                }
            }
        }
        if dirs.is_empty() {
            return Err(format!(
                "{} names no memory, cpu or pids cgroup",
                path.display()
            ));
        }
        Ok(UnitCgroup::V1(dirs))
    }

    /// The files now.
    pub fn read(&self) -> CgroupReading {
        match self {
            UnitCgroup::V2(d) => CgroupReading {
                memory_high: number(&d.join("memory.high")),
                memory_max: number(&d.join("memory.max")),
                cpu_quota_per_sec_usec: read(&d.join("cpu.max")).and_then(|t| cpu_max(&t)),
                cpu_weight: number(&d.join("cpu.weight")),
                cpu_shares: None,
                tasks_max: number(&d.join("pids.max")),
                memory_current: number(&d.join("memory.current")),
                cpu_usage_usec: keyed(&d.join("cpu.stat"), "usage_usec"),
                oom_kills: keyed(&d.join("memory.events"), "oom_kill"),
            },
            UnitCgroup::V1(dirs) => {
                let f = |c: &str, name: &str| dirs.get(c).map(|d| d.join(name));
                let quota = f("cpu", "cpu.cfs_quota_us").and_then(|p| read(&p));
                let period = f("cpu", "cpu.cfs_period_us").and_then(|p| number(&p));
                CgroupReading {
                    memory_high: None,
                    memory_max: f("memory", "memory.limit_in_bytes")
                        .and_then(|p| number(&p))
                        .map(|b| if b >= V1_UNLIMITED { INFINITY } else { b }),
                    cpu_quota_per_sec_usec: match (quota, period) {
                        (Some(q), Some(p)) if p > 0 => match q.trim().parse::<i64>() {
                            Ok(q) if q < 0 => Some(INFINITY),
                            Ok(q) => Some(q.unsigned_abs() * 1_000_000 / p),
                            Err(_) => None,
                        },
                        _ => None,
                    },
                    cpu_weight: None,
                    cpu_shares: f("cpu", "cpu.shares").and_then(|p| number(&p)),
                    tasks_max: f("pids", "pids.max").and_then(|p| number(&p)),
                    memory_current: f("memory", "memory.usage_in_bytes").and_then(|p| number(&p)),
                    // cpuacct.usage is nanoseconds.
                    cpu_usage_usec: f("cpuacct", "cpuacct.usage")
                        .and_then(|p| number(&p))
                        .map(|ns| ns / 1000),
                    oom_kills: f("memory", "memory.oom_control")
                        .and_then(|p| keyed(&p, "oom_kill")),
                }
            }
        }
    }

    /// The directory holding the memory files (for messages).
    pub fn memory_dir(&self) -> Option<&Path> {
        match self {
            UnitCgroup::V2(d) => Some(d),
            UnitCgroup::V1(dirs) => dirs.get("memory").map(PathBuf::as_path),
        }
    }
}

/// v2 cpu.max: `max 100000` or `150000 100000` -> microseconds per second.
fn cpu_max(text: &str) -> Option<u64> {
    let mut it = text.split_whitespace();
    let (q, p) = (it.next()?, it.next()?.parse::<u64>().ok()?);
    if q == "max" {
        return Some(INFINITY);
    }
    Some(q.parse::<u64>().ok()? * 1_000_000 / p.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, body) in files {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        d
    }

    #[test]
    fn reads_a_v2_unit() {
        let proc = tree(&[("42/cgroup", "0::/system.slice/ollama.service\n")]);
        let cg = tree(&[
            ("cgroup.controllers", "cpu memory pids\n"),
            ("system.slice/ollama.service/memory.high", "536870912\n"),
            ("system.slice/ollama.service/memory.max", "max\n"),
            ("system.slice/ollama.service/cpu.max", "150000 100000\n"),
            ("system.slice/ollama.service/cpu.weight", "200\n"),
            ("system.slice/ollama.service/pids.max", "4096\n"),
            ("system.slice/ollama.service/memory.current", "1000\n"),
            (
                "system.slice/ollama.service/cpu.stat",
                "usage_usec 1234\nuser_usec 1000\n",
            ),
            (
                "system.slice/ollama.service/memory.events",
                "low 0\nhigh 3\nmax 1\noom 1\noom_kill 1\n",
            ),
        ]);
        let u = UnitCgroup::of_pid(&ProcReader::new(proc.path()), 42, cg.path()).unwrap();
        let r = u.read();
        assert_eq!(r.memory_high, Some(512 << 20));
        assert_eq!(r.memory_max, Some(INFINITY));
        assert_eq!(r.cpu_quota_per_sec_usec, Some(1_500_000));
        assert_eq!(r.cpu_weight, Some(200));
        assert_eq!(r.tasks_max, Some(4096));
        assert_eq!(r.cpu_usage_usec, Some(1234));
        assert_eq!(r.oom_kills, Some(1));
    }

    #[test]
    fn the_cache_keeps_a_v2_path_per_pid_and_a_v1_one_while_the_file_is_the_same() {
        let proc = tree(&[
            ("42/cgroup", "0::/system.slice/ollama.service\n"),
            ("43/cgroup", "0::/system.slice/other.service\n"),
        ]);
        let cg = tree(&[("cgroup.controllers", "cpu memory pids\n")]);
        let p = ProcReader::new(proc.path());
        let mut cache = CgroupCache::default();
        let first = cache.of_pid(&p, 42, cg.path()).unwrap().clone();
        // v2: not read again for the same PID.
        std::fs::remove_file(proc.path().join("42/cgroup")).unwrap();
        assert_eq!(cache.of_pid(&p, 42, cg.path()).unwrap(), &first);
        // A new main PID is derived again.
        let other = cache.of_pid(&p, 43, cg.path()).unwrap().clone();
        assert_eq!(
            other,
            UnitCgroup::V2(cg.path().join("system.slice/other.service"))
        );

        // v1: the process moved into its own cpu cgroup (a limit set live): derived again.
        let proc = tree(&[("7/cgroup", "4:memory:/a/x.service\n1:cpu:/a\n")]);
        let cg = tree(&[]);
        let p = ProcReader::new(proc.path());
        let mut cache = CgroupCache::default();
        let before = cache.of_pid(&p, 7, cg.path()).unwrap().clone();
        assert_eq!(cache.of_pid(&p, 7, cg.path()).unwrap(), &before);
        std::fs::write(
            proc.path().join("7/cgroup"),
            "4:memory:/a/x.service\n1:cpu:/a/x.service\n",
        )
        .unwrap();
        let UnitCgroup::V1(dirs) = cache.of_pid(&p, 7, cg.path()).unwrap() else {
            panic!("v1 expected");
        };
        assert_eq!(dirs["cpu"], cg.path().join("cpu/a/x.service"));
    }

    #[test]
    fn reads_the_v1_controllers_of_a_hybrid_host() {
        let proc = tree(&[(
            "7/cgroup",
            "9:name=systemd:/a/ollama.service\n8:pids:/a/ollama.service\n4:memory:/x/a/ollama.service\n1:cpu:/a/ollama.service\n0::/a/ollama.service\n",
        )]);
        let cg = tree(&[
            (
                "memory/x/a/ollama.service/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("memory/x/a/ollama.service/memory.usage_in_bytes", "4096\n"),
            (
                "memory/x/a/ollama.service/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            ("cpu/a/ollama.service/cpu.cfs_quota_us", "-1\n"),
            ("cpu/a/ollama.service/cpu.cfs_period_us", "100000\n"),
            ("cpu/a/ollama.service/cpu.shares", "2048\n"),
            ("pids/a/ollama.service/pids.max", "max\n"),
        ]);
        let u = UnitCgroup::of_pid(&ProcReader::new(proc.path()), 7, cg.path()).unwrap();
        let r = u.read();
        assert_eq!(r.memory_max, Some(INFINITY));
        assert_eq!(r.memory_high, None);
        assert_eq!(r.cpu_quota_per_sec_usec, Some(INFINITY));
        assert_eq!(r.cpu_shares, Some(2048));
        assert_eq!(r.tasks_max, Some(INFINITY));
        assert_eq!(r.memory_current, Some(4096));
        assert_eq!(r.oom_kills, Some(2));
    }
}
