//! Running `hostwarden run` as a child and waiting on the lines it prints (never on sleeps).

// Tests wait on real wall-clock time for a real process; tokio's virtual clock does not apply.
#![allow(clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use crate::bin;

/// A line the daemon printed, with when the test saw it.
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
    pub at: Instant,
}

/// A running daemon whose stdout and stderr lines arrive on one channel. Killed on drop.
pub struct Daemon {
    pub child: Child,
    lines: Receiver<Line>,
    /// Every line seen so far, for failure messages.
    pub seen: Vec<String>,
}

impl Daemon {
    /// Starts `hostwarden run --config <config> --view always` with `HOSTWARDEN_LOG=debug` plus
    /// `extra_args`, and the environment in `envs`.
    pub fn start(config: &Path, extra_args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .args(["--view", "always"])
            .args(extra_args)
            .env("HOSTWARDEN_LOG", "debug")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Daemon::spawn(cmd)
    }

    /// Spawns `cmd` (a `hostwarden run` the caller set up) with its stdout and stderr lines on
    /// one channel.
    pub fn spawn(mut cmd: Command) -> Daemon {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn hostwarden run");
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for text in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx
                        .send(Line {
                            text,
                            at: Instant::now(),
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line satisfying `pred`, up to `timeout`; panics with everything seen if not.
    pub fn wait_for(&mut self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> Line {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.text.clone());
                    if pred(&line.text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let tail: Vec<_> = self.seen.iter().rev().take(40).rev().cloned().collect();
                    panic!(
                        "timed out waiting for {what}; last lines:\n{}",
                        tail.join("\n")
                    );
                }
            }
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit within {timeout:?}"
            );
            // Polling the exit status: there is no portable exit event for a child.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

/// Parses the `tick=N points=M` fields of a debug "Tick." line.
pub fn tick_fields(line: &str) -> Option<(u64, usize)> {
    if !line.contains("Tick.") {
        return None;
    }
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("tick=")?, usize::try_from(field("points=")?).ok()?))
}

/// Writes `text` to `path` the way editors save: a temporary file renamed over the original.
pub fn save_like_an_editor(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}
