//! Ollama's main process from `<proc_root>/<pid>/`: resident memory and CPU time. The PID is the
//! unit's MainPID, or, without systemd, the `ollama serve` process found by scanning proc_root.

use serde::Serialize;

use crate::sys::proc::ProcReader;

/// RSS and CPU time of Ollama's main process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MainProcess {
    pub pid: u32,
    pub rss_bytes: u64,
    /// user + system CPU time.
    pub cpu_seconds: f64,
}

/// Reads `<proc_root>/<pid>/stat` and `status`.
pub fn read_usage(proc: &ProcReader, pid: u32) -> Result<MainProcess, String> {
    let usage = proc.usage(pid)?;
    Ok(MainProcess {
        pid,
        rss_bytes: usage.rss_bytes,
        cpu_seconds: usage.cpu_seconds,
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
pub fn find_ollama_serve(proc: &ProcReader) -> Option<u32> {
    proc.find_process(is_ollama_serve)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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
        let proc = ProcReader::new(root.path());
        assert_eq!(find_ollama_serve(&proc), Some(301));
        let usage = read_usage(&proc, 301).unwrap();
        assert_eq!(usage.pid, 301);
        assert!(usage.rss_bytes > 0);
        assert!(usage.cpu_seconds >= 0.0);
    }

    #[test]
    fn a_missing_process_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let proc = ProcReader::new(dir.path());
        let err = read_usage(&proc, 4242).unwrap_err();
        assert!(err.contains("4242/stat"), "{err}");
        assert_eq!(find_ollama_serve(&proc), None);
    }
}
