//! Alerts into real Alertmanagers (Debian's `prometheus-alertmanager` 0.25, started by each
//! test with its own data dir and port): a rule fires on the real agent and the alert is listed
//! by `GET /api/v2/alerts` with its labels, starting at the firing moment (not when `for`
//! began); it resolves; an Alertmanager killed and restarted mid-way still gets it; two members
//! both get it.
//!
//! The rule watches system.memory.utilization, read from a copy of this host's /proc files
//! whose meminfo the test rewrites ([host] proc_root); everything else is real. The agent ticks
//! every 500ms and re-sends firing alerts every 2s, so each test takes seconds.

// Tests wait on real wall-clock time for real processes; tokio's virtual clock does not apply.
#![allow(clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, UNIX_EPOCH};

use hostwarden::exporters::identity;
use hostwarden_tests::alertmanager_server::{AlertmanagerServer, PROGRAM};
use hostwarden_tests::daemon::Daemon;
use hostwarden_tests::harness::Harness;
use hostwarden_tests::need::Need;
use hostwarden_tests::strip_ansi;

const RULE: &str = "am_mem_test";
/// How long anything may take before the test fails (a guard, never a sleep).
const GUARD: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let h = Harness::new();
    let am = [Need::Tool(PROGRAM)];
    h.run(vec![
        h.test(
            "a_firing_rule_is_listed_with_its_labels_from_the_firing_moment_and_resolves",
            &am,
            a_firing_rule_is_listed_with_its_labels_from_the_firing_moment_and_resolves,
        ),
        h.test(
            "an_alertmanager_down_or_restarted_still_gets_the_alert",
            &am,
            an_alertmanager_down_or_restarted_still_gets_the_alert,
        ),
        h.test(
            "both_members_of_a_cluster_get_the_alert",
            &am,
            both_members_of_a_cluster_get_the_alert,
        ),
    ])
}

/// A copy of this host's /proc files the host collector reads.
fn copy_proc(dst: &Path) {
    std::fs::create_dir_all(dst.join("pressure")).expect("create proc copy");
    for f in [
        "stat",
        "meminfo",
        "loadavg",
        "vmstat",
        "pressure/cpu",
        "pressure/memory",
        "pressure/io",
    ] {
        // PSI may be missing (kernel without CONFIG_PSI); the collector copes, so do we.
        if let Ok(text) = std::fs::read(Path::new("/proc").join(f)) {
            std::fs::write(dst.join(f), text).expect("write proc copy");
        }
    }
}

/// Rewrites meminfo so that used memory is `used_share` of the total, atomically.
fn set_memory_use(proc_root: &Path, used_share: f64) {
    let path = proc_root.join("meminfo");
    let text = std::fs::read_to_string(&path).expect("read meminfo copy");
    let total: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal in meminfo");
    let free = ((1.0 - used_share) * total as f64) as u64;
    let out: Vec<String> = text
        .lines()
        .map(|l| match l.split(':').next().unwrap_or("") {
            "MemFree" => format!("MemFree:        {free} kB"),
            "MemAvailable" => format!("MemAvailable:        {free} kB"),
            k @ ("Buffers" | "Cached" | "SReclaimable") => format!("{k}:        0 kB"),
            _ => l.to_owned(),
        })
        .collect();
    let tmp = proc_root.join("meminfo.tmp");
    std::fs::write(&tmp, out.join("\n") + "\n").expect("write meminfo");
    std::fs::rename(&tmp, &path).expect("replace meminfo");
}

/// The agent with a rule on its (rewritable) memory use and the Alertmanager sink.
struct Agent {
    daemon: Daemon,
    proc_root: PathBuf,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Agent {
    /// `for_`: the rule's `for`; `urls`: the sink's members; memory starts at `used_share`.
    fn start(for_: &str, urls: &[String], used_share: f64) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc_root = dir.path().join("proc");
        copy_proc(&proc_root);
        set_memory_use(&proc_root, used_share);
        let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
        let config = format!(
            r#"[agent]
interval = "500ms"
state_dir = "{d}/state"
status_socket = "{d}/status.sock"

[host]
proc_root = "{p}"
per_cpu = false

[gpu]
enabled = false

[zfs]
enabled = false

[ollama]
enabled = false

[export.alertmanager]
urls = [{urls}]
resend_interval = "2s"
timeout = "1s"

[[rules]]
name = "{RULE}"
metric = "system.memory.utilization"
match = {{ "system.memory.state" = "used" }}
op = ">"
warning = 0.5
for = "{for_}"
summary = "memory use above half"
"#,
            d = dir.path().display(),
            p = proc_root.display(),
            urls = urls.join(", "),
        );
        let path = dir.path().join("hostwarden.toml");
        std::fs::write(&path, config).expect("write config");
        let daemon = Daemon::start(&path, &[], &[("NO_COLOR", "1")]);
        Agent {
            daemon,
            socket: dir.path().join("status.sock"),
            proc_root,
            dir,
        }
    }

    /// Waits for the rule's log line entering `state`; returns the line and its `at_ms`.
    fn wait_event(&mut self, state: &str) -> (String, Instant, u64) {
        let want = format!("state=\"{state}\"");
        let line = self.daemon.wait_for(GUARD, state, |l| {
            l.contains(&format!("rule={RULE}")) && l.contains(&want)
        });
        let text = strip_ansi(&line.text);
        let at_ms = field(&text, "at_ms").expect("at_ms in the alert line");
        (text, line.at, at_ms)
    }

    /// Polls `hostwarden status` until `ok` holds (the report is published once per tick).
    fn wait_status(&self, what: &str, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + GUARD;
        loop {
            let s = self.status();
            if ok(&s) {
                return;
            }
            assert!(Instant::now() < deadline, "no {what}; last status:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `hostwarden status` as the operator runs it.
    fn status(&self) -> String {
        let out = Command::new(hostwarden_tests::bin())
            .arg("status")
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .expect("run hostwarden status");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A `key=N` field of a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim_matches('"').parse().ok())
}

fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// This host's instance label, as the agent derives it (from /etc/machine-id).
fn this_instance() -> Option<String> {
    std::fs::read_to_string("/etc/machine-id")
        .ok()
        .filter(|m| !m.trim().is_empty())
        .map(|m| identity::from_machine_id(&m))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned()
}

/// Waits until `am` lists the rule's alert; returns it and when it was seen.
fn wait_listed(am: &AlertmanagerServer, what: &str) -> (serde_json::Value, Instant) {
    am.wait_until(GUARD, what, || !am.alerts_named(RULE).is_empty());
    let seen = Instant::now();
    (am.alerts_named(RULE).remove(0), seen)
}

fn a_firing_rule_is_listed_with_its_labels_from_the_firing_moment_and_resolves() {
    let am = AlertmanagerServer::start();
    let mut agent = Agent::start("2s", &[am.url()], 0.9);
    let (_, _, pending_ms) = agent.wait_event("pending");
    let (firing, fired_at, fired_ms) = agent.wait_event("firing");
    assert!(
        fired_ms >= pending_ms + 2000,
        "fired {fired_ms}, pending {pending_ms}"
    );
    assert_eq!(field(&firing, "since_ms"), Some(pending_ms));
    let (alert, listed_at) = wait_listed(&am, "the firing alert");
    eprintln!(
        "firing -> listed by Alertmanager: {} ms",
        listed_at.duration_since(fired_at).as_millis()
    );
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], RULE, "{alert}");
    assert_eq!(labels["severity"], "warning", "{alert}");
    assert_eq!(labels["host"], host_name().as_str(), "{alert}");
    if let Some(instance) = this_instance() {
        assert_eq!(labels["instance"], instance.as_str(), "{alert}");
    }
    for (name, _) in labels.as_object().expect("labels") {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "label {name}"
        );
    }
    assert_eq!(
        alert["annotations"]["summary"]
            .as_str()
            .map(|s| s.contains("memory")),
        Some(true),
        "{alert}"
    );
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("system.memory.utilization")),
        "{alert}"
    );
    // startsAt is the firing moment, not the start of `for`.
    assert_eq!(alert["startsAt"], rfc3339_ms(fired_ms).as_str(), "{alert}");
    let want = format!("alertmanager {}: 1 firing; 0 queued", am.url());
    agent.wait_status("the sink's state in `hostwarden status`", |s| {
        s.contains(&want)
    });

    set_memory_use(&agent.proc_root, 0.1);
    let (_, resolved_at, _) = agent.wait_event("resolved");
    am.wait_until(GUARD, "the alert to resolve", || {
        am.alerts_named(RULE).is_empty()
    });
    eprintln!(
        "resolved -> gone from Alertmanager: {} ms",
        resolved_at.elapsed().as_millis()
    );
    drop(agent.dir);
}

fn an_alertmanager_down_or_restarted_still_gets_the_alert() {
    let mut am = AlertmanagerServer::start();
    let mut agent = Agent::start("0s", &[am.url()], 0.1);
    // The agent is up and has nothing to say; the member goes away.
    agent.daemon.wait_for(GUARD, "the sink", |l| {
        l.contains("Alertmanager sink started")
    });
    am.kill(true);
    set_memory_use(&agent.proc_root, 0.9);
    agent.wait_event("firing");
    agent.daemon.wait_for(GUARD, "a failed delivery", |l| {
        l.contains("Alertmanager delivery failed")
    });
    agent.wait_status("the queued alert in `hostwarden status`", |s| {
        s.contains("1 queued") && s.contains("failing since")
    });
    // Back with its data dir: the queued alert arrives.
    let back = Instant::now();
    am.restart();
    let (alert, listed) = wait_listed(&am, "the queued alert after the restart");
    eprintln!(
        "restart (data kept) -> alert listed: {} ms after the member was started",
        listed.duration_since(back).as_millis()
    );
    assert_eq!(alert["labels"]["alertname"], RULE);
    // Killed and started again with an empty data dir while the agent did not notice: the
    // resend (every 2s here) brings the alert back.
    am.kill(false);
    let back = Instant::now();
    am.restart();
    wait_listed(
        &am,
        "the alert re-sent after a restart with a fresh data dir",
    );
    eprintln!(
        "restart (data wiped) -> alert listed: {} ms after the member was started",
        back.elapsed().as_millis()
    );
    // The sink's queue was saved: the state dir holds it.
    assert!(agent.dir.path().join("state/alertmanager.json").is_file());
}

fn both_members_of_a_cluster_get_the_alert() {
    let c1 = AlertmanagerServer::free_cluster_addr();
    let c2 = AlertmanagerServer::free_cluster_addr();
    let a = AlertmanagerServer::start_with(Some(c1.clone()), std::slice::from_ref(&c2));
    let mut b = AlertmanagerServer::start_with(Some(c2), &[c1]);
    // One member is down when the alert fires: the other gets it at once, and it gets it when
    // it is back.
    b.kill(true);
    let mut agent = Agent::start("0s", &[a.url(), b.url()], 0.9);
    let (_, fired_at, fired_ms) = agent.wait_event("firing");
    let (alert_a, _) = wait_listed(&a, "the alert on the live member");
    b.restart();
    let (alert_b, listed_b) = wait_listed(&b, "the alert on the member that was down");
    eprintln!(
        "second member back -> alert listed: {} ms after firing",
        listed_b.duration_since(fired_at).as_millis()
    );
    for alert in [&alert_a, &alert_b] {
        assert_eq!(alert["labels"]["alertname"], RULE);
        assert_eq!(alert["startsAt"], rfc3339_ms(fired_ms).as_str(), "{alert}");
    }
    assert_eq!(alert_a["fingerprint"], alert_b["fingerprint"]);
    set_memory_use(&agent.proc_root, 0.1);
    agent.wait_event("resolved");
    for am in [&a, &b] {
        am.wait_until(GUARD, "the alert to resolve on every member", || {
            am.alerts_named(RULE).is_empty()
        });
    }
    assert!(a.dir().is_dir() && b.dir().is_dir());
}
