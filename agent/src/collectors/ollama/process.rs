//! Ollama's main process from `<proc_root>/<pid>/`: resident memory and CPU time. The PID is the
//! unit's MainPID, or, without systemd, the `ollama serve` process found by scanning proc_root.

use std::path::Path;

use procfs::FromRead;
use procfs::process::{Stat, Status};

/// RSS and CPU time of one process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProcessUsage {
    pub pid: u32,
    pub rss_bytes: u64,
    /// user + system CPU time.
    pub cpu_seconds: f64,
}

use serde::Serialize;

/// Reads `<proc_root>/<pid>/stat` and `status`.
pub fn read_usage(proc_root: &Path, pid: u32) -> Result<ProcessUsage, String> {
    let dir = proc_root.join(pid.to_string());
    let stat = Stat::from_file(dir.join("stat"))
        .map_err(|e| format!("cannot read {}/stat: {e}", dir.display()))?;
    let status = Status::from_file(dir.join("status"))
        .map_err(|e| format!("cannot read {}/status: {e}", dir.display()))?;
    let ticks = procfs::ticks_per_second().max(1);
    #[allow(clippy::cast_precision_loss)]
    let cpu_seconds = (stat.utime + stat.stime) as f64 / ticks as f64;
    Ok(ProcessUsage {
        pid,
        // VmRSS is in kB; a kernel thread has none.
        rss_bytes: status.vmrss.unwrap_or(0) * 1024,
        cpu_seconds,
    })
}

/// True for the command line of Ollama's server: argv[0] named `ollama`, and a `serve` argument.
pub fn is_ollama_serve(cmdline: &[u8]) -> bool {
    let mut args = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty());
    let Some(argv0) = args.next() else {
        return false;
    };
    let name = argv0.rsplit(|b| *b == b'/').next().unwrap_or(argv0);
    name == b"ollama" && args.any(|a| a == b"serve")
}

/// The lowest PID whose command line is `ollama serve` (the server, not its runners).
pub fn find_ollama_serve(proc_root: &Path) -> Option<u32> {
    let entries = std::fs::read_dir(proc_root).ok()?;
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        std::fs::read(proc_root.join(pid.to_string()).join("cmdline"))
            .is_ok_and(|c| is_ollama_serve(&c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_ollama_serve_and_not_its_runners() {
        assert!(is_ollama_serve(b"/usr/local/bin/ollama\0serve\0"));
        assert!(is_ollama_serve(b"ollama\0serve"));
        assert!(!is_ollama_serve(
            b"/usr/local/bin/ollama\0runner\0--model\0x\0"
        ));
        assert!(!is_ollama_serve(b"/usr/bin/llama-server\0serve\0"));
        assert!(!is_ollama_serve(b""));
    }

    #[test]
    fn reads_a_process_tree_and_finds_ollama_serve() {
        // A proc root holding this test process's real stat and status under two PIDs: one
        // whose command line is Ollama's runner, one whose command line is the server.
        let root = tempfile::tempdir().unwrap();
        let me = Path::new("/proc/self");
        for (pid, cmdline) in [
            (300u32, &b"/usr/local/bin/ollama\0runner\0--model\0x\0"[..]),
            (301, &b"/usr/local/bin/ollama\0serve\0"[..]),
        ] {
            let dir = root.path().join(pid.to_string());
            std::fs::create_dir(&dir).unwrap();
            std::fs::copy(me.join("stat"), dir.join("stat")).unwrap();
            std::fs::copy(me.join("status"), dir.join("status")).unwrap();
            std::fs::write(dir.join("cmdline"), cmdline).unwrap();
        }
        assert_eq!(find_ollama_serve(root.path()), Some(301));
        let usage = read_usage(root.path(), 301).unwrap();
        assert_eq!(usage.pid, 301);
        assert!(usage.rss_bytes > 0);
        assert!(usage.cpu_seconds >= 0.0);
    }

    #[test]
    fn a_missing_process_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_usage(dir.path(), 4242).unwrap_err();
        assert!(err.contains("4242/stat"), "{err}");
        assert_eq!(find_ollama_serve(dir.path()), None);
    }
}
