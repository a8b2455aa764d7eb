//! The one reader of the proc filesystem. It owns the root (`[host] proc_root`: `/proc`,
//! `/host/proc` in a container, a captured tree in tests) and serves every reader of it but the
//! host collector's per-tick files (procfile.rs, which keeps them open): a process's CPU time
//! and memory (Ollama's server, the agent itself), a process found by its command line, and the
//! names of GPU processes.

use std::path::{Path, PathBuf};

use procfs::FromRead;
use procfs::process::{Stat, Status};

/// Resident memory and CPU time of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessUsage {
    pub rss_bytes: u64,
    /// user + system CPU time.
    pub cpu_seconds: f64,
}

/// Reads files below one proc root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcReader {
    root: PathBuf,
}

impl ProcReader {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcReader { root: root.into() }
    }

    /// The agent's own process. It lives in the proc filesystem of the agent's own PID
    /// namespace, which is `/proc` even when `proc_root` points at a host's tree.
    pub fn own() -> Self {
        ProcReader::new("/proc")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// CPU time and resident memory from `<root>/<pid>/stat` and `status`.
    pub fn usage(&self, pid: u32) -> Result<ProcessUsage, String> {
        self.usage_of(&pid.to_string())
    }

    fn usage_of(&self, entry: &str) -> Result<ProcessUsage, String> {
        let dir = self.root.join(entry);
        let stat = Stat::from_file(dir.join("stat"))
            .map_err(|e| format!("cannot read {}/stat: {e}", dir.display()))?;
        let status = Status::from_file(dir.join("status"))
            .map_err(|e| format!("cannot read {}/status: {e}", dir.display()))?;
        let ticks = procfs::ticks_per_second().max(1);
        // Tick counts stay far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        let cpu_seconds = (stat.utime + stat.stime) as f64 / ticks as f64;
        Ok(ProcessUsage {
            // VmRSS is in kB; a kernel thread has none.
            rss_bytes: status.vmrss.unwrap_or(0) * 1024,
            cpu_seconds,
        })
    }

    /// The lowest PID whose command line (`<root>/<pid>/cmdline`, NUL-separated) matches.
    pub fn find_process(&self, matches: impl Fn(&[u8]) -> bool) -> Option<u32> {
        let entries = std::fs::read_dir(&self.root).ok()?;
        let mut pids: Vec<u32> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        pids.into_iter()
            .find(|pid| self.cmdline(*pid).is_some_and(|c| matches(&c)))
    }

    /// PIDs whose parent is `parent`, lowest first. Runs every tick where Ollama lives, so it
    /// asks the kernel's `<pid>/task/<tid>/children` lists first (a few reads: one per thread
    /// of `parent`, any of which may have spawned a runner); only a kernel built without
    /// CONFIG_PROC_CHILDREN (some sandboxes) falls back to reading every `<pid>/stat`.
    pub fn children(&self, parent: u32) -> Vec<u32> {
        if let Some(mut pids) = self.children_from_task_lists(parent) {
            pids.sort_unstable();
            pids.dedup();
            return pids;
        }
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|pid: &u32| self.ppid(*pid) == Some(parent))
            .collect();
        pids.sort_unstable();
        pids
    }

    /// The union of `<root>/<parent>/task/*/children`, or `None` when the kernel has no such
    /// files (or `parent` is gone).
    fn children_from_task_lists(&self, parent: u32) -> Option<Vec<u32>> {
        let tasks = std::fs::read_dir(self.root.join(parent.to_string()).join("task")).ok()?;
        let mut found_a_list = false;
        let mut pids = Vec::new();
        for task in tasks.filter_map(Result::ok) {
            let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            found_a_list = true;
            pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        found_a_list.then_some(pids)
    }

    /// The parent PID from `<root>/<pid>/stat` (after the last `)`: the name may hold spaces).
    fn ppid(&self, pid: u32) -> Option<u32> {
        let stat = std::fs::read_to_string(self.root.join(pid.to_string()).join("stat")).ok()?;
        let (_, rest) = stat.rsplit_once(')')?;
        rest.split_whitespace().nth(1)?.parse().ok()
    }

    /// `<root>/<pid>/cmdline`; `None` when the process is gone or not visible.
    pub fn cmdline(&self, pid: u32) -> Option<Vec<u8>> {
        std::fs::read(self.root.join(pid.to_string()).join("cmdline")).ok()
    }

    /// `<root>/<pid>/environ`, read without blocking the runtime.
    pub async fn environ(&self, pid: u32) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.root.join(pid.to_string()).join("environ")).await
    }

    /// A process's name from `<root>/<pid>/comm`; `None` when it is gone or not visible.
    pub fn process_name(&self, pid: u32) -> Option<String> {
        let text = std::fs::read_to_string(self.root.join(pid.to_string()).join("comm")).ok()?;
        let name = text.trim_end_matches('\n');
        (!name.is_empty()).then(|| name.to_owned())
    }
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_agents_own_process() {
        let me = ProcReader::own();
        assert!(me.usage(std::process::id()).unwrap().rss_bytes > 0);
        assert!(me.process_name(std::process::id()).is_some());
    }

    #[test]
    fn process_name_reads_comm_and_tolerates_a_gone_process() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("42")).unwrap();
        std::fs::write(dir.path().join("42/comm"), "ollama_llama_se\n").unwrap();
        let proc = ProcReader::new(dir.path());
        assert_eq!(proc.process_name(42).as_deref(), Some("ollama_llama_se"));
        assert_eq!(proc.process_name(43), None);
    }

    #[test]
    fn a_missing_root_reads_nothing() {
        let r = ProcReader::new("/nonexistent/proc");
        assert!(r.usage(1).unwrap_err().contains("/nonexistent/proc/1/stat"));
        assert_eq!(r.find_process(|_| true), None);
        assert_eq!(r.process_name(1), None);
        assert!(r.children(1).is_empty());
    }

    #[test]
    fn children_come_from_every_threads_task_list_when_the_kernel_has_them() {
        let root = tempfile::tempdir().unwrap();
        for (tid, list) in [("40", "41 43 "), ("42", "44 41"), ("45", "")] {
            let dir = root.path().join("40/task").join(tid);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("children"), list).unwrap();
        }
        // A stat scan would find nothing here: no <pid>/stat files exist.
        let proc = ProcReader::new(root.path());
        assert_eq!(proc.children(40), [41, 43, 44]);
    }

    #[test]
    fn children_are_found_by_the_parent_in_stat() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = ProcReader::own();
        let kids = me.children(std::process::id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(kids.contains(&child.id()), "{kids:?}");
    }
}
