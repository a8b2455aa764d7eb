//! Alert rules through the real binary: a rule on a real host metric goes pending → firing →
//! resolved, and a restart in the middle of `for` keeps the timer.
//!
//! The host collector reads a copy of this machine's /proc files ([host] proc_root), whose
//! meminfo the test rewrites to move system.memory.utilization; everything else is real.
//! Tests synchronise on the agent's output lines (logs and the `--view always` lines).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostwarden_tests::fake_proc::{copy_proc, host_only_sections, memory_rule, set_memory_use};
use hostwarden_tests::strip_ansi;

fn write_config(dir: &Path, proc_root: &Path, state_dir: &Path, for_: &str) -> PathBuf {
    let text = format!(
        r#"[agent]
interval = "500ms"
state_dir = "{state}"

{host}
{rule}"#,
        state = state_dir.display(),
        host = host_only_sections(proc_root),
        rule = memory_rule("mem_test", for_, "test rule on a rewritten meminfo"),
    );
    let path = dir.join("hostwarden.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The running agent, its output lines arriving on a channel; SIGTERMed when dropped.
struct Agent {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Agent {
    fn start(config: &Path) -> Agent {
        let mut child = Command::new(hostwarden_tests::bin())
            .args(["run", "--view", "always", "--config"])
            .arg(config)
            .env("HOSTWARDEN_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("JOURNAL_STREAM")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hostwarden");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(strip_ansi(&line)).is_err() {
                    break;
                }
            }
        });
        Agent {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the next line satisfying `pred` (a failure guard of 60 s, not a sleep).
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = now_ms() + 60_000;
        loop {
            let left = deadline.saturating_sub(now_ms());
            match self.lines.recv_timeout(Duration::from_millis(left)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no {what} line; output so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn stop(&mut self) {
        // SAFETY: kill(2) on the pid of a child this test started and has not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait for hostwarden");
        assert!(status.success(), "agent exited with {status}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: as in `stop`.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            if let Err(e) = self.child.wait() {
                eprintln!("hostwarden not reaped: {e}");
            }
        }
    }
}

/// An alert log line of rule mem_test entering `state`.
fn is_event(line: &str, state: &str) -> bool {
    line.contains("rule=mem_test") && line.contains(&format!("state=\"{state}\""))
}

fn field(line: &str, name: &str) -> u64 {
    let at = line
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("{name} in {line}"));
    line[at + name.len() + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|e| panic!("{name} in {line}: {e}"))
}

#[cfg(test)]
mod binary {
    use super::*;

    #[test]
    fn a_rule_on_host_memory_goes_pending_firing_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path().join("proc");
        copy_proc(&proc_root);
        set_memory_use(&proc_root, 0.95);
        let config = write_config(dir.path(), &proc_root, &dir.path().join("state"), "2s");

        let mut agent = Agent::start(&config);
        let pending = agent.wait_for("pending", |l| is_event(l, "pending"));
        assert!(
            pending.contains("WARN") || pending.contains("INFO"),
            "{pending}"
        );
        let firing = agent.wait_for("firing", |l| is_event(l, "firing"));
        assert!(
            firing.contains("WARN"),
            "a warning firing logs at WARN: {firing}"
        );
        assert!(
            firing.contains("system.memory.utilization{system.memory.state=used} is 0.95, > 0.5"),
            "{firing}"
        );
        assert_eq!(field(&pending, "since_ms"), field(&firing, "since_ms"));
        assert!(
            field(&firing, "at_ms") - field(&firing, "since_ms") >= 2000,
            "fired before `for`"
        );
        agent.wait_for("view line of the firing alert", |l| {
            l.starts_with(
                "ALERT firing   warning  mem_test{system.memory.state=used} value 0.95 threshold 0.5",
            )
        });

        set_memory_use(&proc_root, 0.10);
        let resolved = agent.wait_for("resolved", |l| is_event(l, "resolved"));
        assert!(resolved.contains("INFO"), "{resolved}");
        assert!(
            resolved.contains("is 0.1, back past clear 0.5"),
            "{resolved}"
        );
        agent.stop();

        let events = agent
            .seen
            .iter()
            .filter(|l| l.contains("rule=mem_test"))
            .count();
        assert_eq!(
            events,
            3,
            "exactly pending, firing, resolved:\n{}",
            agent.seen.join("\n")
        );
        let outbox = std::fs::read_to_string(dir.path().join("state").join("outbox.json")).unwrap();
        assert_eq!(
            outbox.matches("\"rule\":\"mem_test\"").count(),
            3,
            "{outbox}"
        );
    }

    #[test]
    fn a_restart_mid_for_keeps_the_timer() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path().join("proc");
        copy_proc(&proc_root);
        set_memory_use(&proc_root, 0.95);
        let state_dir = dir.path().join("state");
        let config = write_config(dir.path(), &proc_root, &state_dir, "8s");

        let mut first = Agent::start(&config);
        let pending = first.wait_for("pending", |l| is_event(l, "pending"));
        let since = field(&pending, "since_ms");
        // Let four more ticks pass in pending, so the restart is well after the condition began.
        for _ in 0..4 {
            first.wait_for("pending view line", |l| l.starts_with("ALERT pending"));
        }
        first.stop();
        assert!(
            !first.seen.iter().any(|l| is_event(l, "firing")),
            "fired too early"
        );

        let restarted_ms = now_ms();
        let mut second = Agent::start(&config);
        second.wait_for("restored state", |l| {
            l.contains("Rule state restored") && l.contains("restored=1")
        });
        let firing = second.wait_for("firing", |l| is_event(l, "firing"));
        assert!(
            !second.seen.iter().any(|l| is_event(l, "pending")),
            "the restarted agent went pending again:\n{}",
            second.seen.join("\n")
        );
        assert_eq!(
            field(&firing, "since_ms"),
            since,
            "the condition's start was kept"
        );
        let at = field(&firing, "at_ms");
        assert!(
            at >= since + 8000,
            "fired before `for` had passed since {since}: {at}"
        );
        assert!(
            at < restarted_ms + 8000,
            "fired a full `for` after the restart ({restarted_ms}), not at the original deadline ({})",
            since + 8000
        );
        second.stop();
    }
}
