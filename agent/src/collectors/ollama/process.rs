//! Ollama's processes from `<proc_root>/<pid>/`: resident memory and CPU time of the server and
//! of its runners. The server's PID is the unit's MainPID, or, without systemd, the `ollama
//! serve` process found by scanning proc_root. Its runners (`ollama runner ...`, before 0.4
//! `ollama_llama_server ...`) are its children: they hold the model, and most of the CPU and RAM
//! during inference.

use serde::Serialize;

use crate::sys::proc::ProcReader;

/// A runner's model when its command line does not name one (newer runners are told the model
/// over their own HTTP API, not by `--model`).
pub const UNNAMED_MODEL: &str = "unknown";

/// RSS and CPU time of Ollama's main process and of its runners.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MainProcess {
    pub pid: u32,
    pub rss_bytes: u64,
    /// user + system CPU time.
    pub cpu_seconds: f64,
    pub runners: Vec<RunnerProcess>,
}

/// One runner child of the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunnerProcess {
    pub pid: u32,
    /// The model blob's file name (`sha256-<hex>`) from `--model`, or `UNNAMED_MODEL`.
    pub model: String,
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

impl MainProcess {
    /// Server and runners together.
    pub fn total(&self) -> (u64, f64) {
        self.runners
            .iter()
            .fold((self.rss_bytes, self.cpu_seconds), |(r, c), p| {
                (r + p.rss_bytes, c + p.cpu_seconds)
            })
    }

    /// Runners summed per model, in model order.
    pub fn by_model(&self) -> std::collections::BTreeMap<&str, (u64, f64)> {
        let mut out = std::collections::BTreeMap::new();
        for p in &self.runners {
            let e = out.entry(p.model.as_str()).or_insert((0, 0.0));
            e.0 += p.rss_bytes;
            e.1 += p.cpu_seconds;
        }
        out
    }
}

/// Reads `<proc_root>/<pid>/stat` and `status` of the server and of each runner child. A runner
/// that exits between the scan and the read is skipped, not an error.
pub fn read_usage(proc: &ProcReader, pid: u32) -> Result<MainProcess, String> {
    let usage = proc.usage(pid)?;
    let runners = proc
        .children(pid)
        .into_iter()
        .filter_map(|child| {
            let model = runner_model(&proc.cmdline(child)?)?;
            let u = proc.usage(child).ok()?;
            Some(RunnerProcess {
                pid: child,
                model,
                rss_bytes: u.rss_bytes,
                cpu_seconds: u.cpu_seconds,
            })
        })
        .collect();
    Ok(MainProcess {
        pid,
        rss_bytes: usage.rss_bytes,
        cpu_seconds: usage.cpu_seconds,
        runners,
    })
}

fn args(cmdline: &[u8]) -> impl Iterator<Item = &[u8]> {
    cmdline.split(|b| *b == 0).filter(|a| !a.is_empty())
}

fn base_name(arg: &[u8]) -> &[u8] {
    arg.rsplit(|b| *b == b'/').next().unwrap_or(arg)
}

/// Splits a command line into arguments. A process renamed with `exec -a "ollama runner ..."`
/// has the whole string as argv[0]: when argv[0] is not itself a runner's path, it is split on
/// spaces.
fn argv(cmdline: &[u8]) -> Vec<&[u8]> {
    let mut a: Vec<&[u8]> = args(cmdline).collect();
    if let Some(first) = a.first().copied()
        && first.contains(&b' ')
        && !is_runner_name(base_name(first))
    {
        let split = first.split(|b| *b == b' ').filter(|s| !s.is_empty());
        a = split.chain(a.into_iter().skip(1)).collect();
    }
    a
}

fn is_runner_name(name: &[u8]) -> bool {
    name == b"ollama" || name == b"ollama_llama_server"
}

/// True for the command line of Ollama's server: argv[0] named `ollama`, and a `serve` argument.
pub fn is_ollama_serve(cmdline: &[u8]) -> bool {
    let mut args = args(cmdline);
    let Some(argv0) = args.next() else {
        return false;
    };
    base_name(argv0) == b"ollama" && args.any(|a| a == b"serve")
}

/// For a runner's command line (`ollama runner ...` or `ollama_llama_server ...`), the model it
/// serves: the file name of `--model <path>` (`sha256-<hex>`, the blob's digest: nothing at hand
/// maps a blob to the model's name, since `/api/ps` gives the manifest digest), or
/// `UNNAMED_MODEL`. `None` for any other command line.
pub fn runner_model(cmdline: &[u8]) -> Option<String> {
    let a = argv(cmdline);
    let name = base_name(a.first()?);
    let runner = is_runner_name(name)
        && (name == b"ollama_llama_server" || a.get(1).is_some_and(|s| *s == b"runner"));
    if !runner {
        return None;
    }
    let model: Option<&[u8]> = a.iter().enumerate().find_map(|(i, arg)| {
        if let Some(v) = arg.strip_prefix(b"--model=") {
            return Some(v);
        }
        (*arg == b"--model")
            .then(|| a.get(i + 1).copied())
            .flatten()
    });
    Some(model.map_or_else(
        || UNNAMED_MODEL.to_owned(),
        |m| String::from_utf8_lossy(base_name(m)).into_owned(),
    ))
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
    fn names_a_runners_model_by_its_blob() {
        let m = |c: &[u8]| runner_model(c);
        assert_eq!(
            m(b"/usr/local/bin/ollama\0runner\0--model\0/usr/share/ollama/.ollama/models/blobs/sha256-6a0746a1\0--port\x0038911\0")
                .as_deref(),
            Some("sha256-6a0746a1")
        );
        assert_eq!(
            m(b"/tmp/ollama123/runners/cuda_v12/ollama_llama_server\0--model=/m/blobs/sha256-ab\0")
                .as_deref(),
            Some("sha256-ab")
        );
        assert_eq!(
            m(b"/usr/bin/ollama\0runner\0--ollama-engine\0--port\x0041000\0").as_deref(),
            Some(UNNAMED_MODEL)
        );
        // Renamed with `exec -a`: the whole line is argv[0].
        assert_eq!(
            m(b"ollama runner --model /x/blobs/sha256-abc\x0060\0").as_deref(),
            Some("sha256-abc")
        );
        assert_eq!(m(b"/usr/local/bin/ollama\0serve\0"), None);
        assert_eq!(m(b"/usr/bin/sleep\x0060\0"), None);
    }

    /// Real runner-named children of this test process (standing in for `ollama serve`) are
    /// summed with it and broken down by model.
    #[test]
    fn sums_real_runner_children_by_model() {
        let spawn = |line: &str| {
            std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("exec -a '{line}' sleep 60"))
                .spawn()
                .unwrap()
        };
        let mut kids = [
            spawn("ollama runner --model /x/blobs/sha256-abc --port 1"),
            spawn("ollama runner --model /x/blobs/sha256-abc --port 2"),
            spawn("ollama_llama_server --model /x/blobs/sha256-def"),
            spawn("not-a-runner --model /x/blobs/sha256-zzz"),
        ];
        let proc = ProcReader::own();
        let me = std::process::id();
        // Each child is first a copy of this test, then bash, then the renamed sleep; wait
        // until all four show their new argv[0] (all of them hold `--model`; bash's own
        // argv[0] does not).
        let renamed = |pid: u32| {
            proc.cmdline(pid).is_some_and(|c| {
                let argv0 = c.split(|b| *b == 0).next().unwrap_or_default();
                argv0.windows(7).any(|w| w == b"--model")
            })
        };
        // At most 10 s.
        for _ in 0..500 {
            if kids.iter().all(|k| renamed(k.id())) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let usage = read_usage(&proc, me);
        for k in &mut kids {
            k.kill().unwrap();
            k.wait().unwrap();
        }
        let usage = usage.unwrap();
        let mut pids: Vec<u32> = usage.runners.iter().map(|r| r.pid).collect();
        pids.sort_unstable();
        let mut want: Vec<u32> = kids[..3].iter().map(std::process::Child::id).collect();
        want.sort_unstable();
        assert_eq!(pids, want);
        let by_model = usage.by_model();
        assert_eq!(
            by_model.keys().copied().collect::<Vec<_>>(),
            ["sha256-abc", "sha256-def"]
        );
        let runner_rss: u64 = usage.runners.iter().map(|r| r.rss_bytes).sum();
        assert!(runner_rss > 0);
        assert_eq!(usage.total().0, usage.rss_bytes + runner_rss);
        assert_eq!(
            by_model["sha256-abc"].0 + by_model["sha256-def"].0,
            runner_rss
        );
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
