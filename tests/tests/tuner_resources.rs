//! `[tuner.resources]` against a real systemd: a `systemd --user` manager that enforces cgroup
//! limits (on this project's hybrid CI host, the v1 memory, cpu, cpuacct and pids controllers,
//! given to it by `UserManager::start_with_controllers`) runs the stand-in Ollama. Limits are
//! set live over D-Bus and checked on the unchanged process, in `systemctl --user show` and in
//! the cgroup files the kernel enforces; a limit that gets the unit OOM-killed is rolled back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use hostwarden::sys::systemd::SystemdClient;
use hostwarden::tuner::apply::journal::{ActionResult, JOURNAL_NAME, Journal};
use hostwarden::tuner::resources::apply::LimitsApplier;
use hostwarden::tuner::resources::config::Value;
use hostwarden::tuner::resources::limits::{Limits, RESOURCES_DROPIN};
use hostwarden_tests::harness::Harness;
use hostwarden_tests::standin::standin_bin;
use hostwarden_tests::systemd_user::{self, UserManager};

fn main() -> ExitCode {
    let needs = systemd_user::NEEDS;
    let h = Harness::new();
    h.run(vec![
        h.tokio_test(
            "limits_are_set_live_and_read_back_from_systemd_and_the_cgroup",
            needs,
            limits_are_set_live_and_read_back_from_systemd_and_the_cgroup,
        ),
        h.tokio_test(
            "a_limit_that_gets_ollama_oom_killed_is_rolled_back",
            needs,
            a_limit_that_gets_ollama_oom_killed_is_rolled_back,
        ),
        h.test(
            "the_agent_sets_limits_live_through_its_tick",
            needs,
            agent::the_agent_sets_limits_live_through_its_tick,
        ),
        h.test(
            "observe_mode_journals_the_limits_and_changes_nothing",
            needs,
            agent::observe_mode_journals_the_limits_and_changes_nothing,
        ),
        h.test(
            "the_agent_rolls_back_an_oom_limit_once_and_does_not_retry_it",
            needs,
            agent::the_agent_rolls_back_an_oom_limit_once_and_does_not_retry_it,
        ),
        h.test(
            "an_interrupted_limits_change_is_reconciled_in_observe_mode",
            needs,
            agent::an_interrupted_limits_change_is_reconciled_in_observe_mode,
        ),
        h.test(
            "an_operator_memory_max_is_reported_once_and_not_fought",
            needs,
            agent::an_operator_memory_max_is_reported_once_and_not_fought,
        ),
    ])
}

#[path = "tuner_resources/agent.rs"]
mod agent;

const UNIT: &str = "ollama.service";
const MIB: u64 = 1 << 20;

struct Rig {
    mgr: UserManager,
    state: tempfile::TempDir,
    trigger: PathBuf,
    /// The stand-in's API.
    url: String,
}

impl Rig {
    /// The stand-in as ollama.service, plus a helper process in the unit (as Ollama's model
    /// runner is) that, once `trigger` exists, allocates without end (`tail` of /dev/zero keeps
    /// the whole endless line).
    fn start() -> Rig {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mgr = UserManager::start_with_controllers();
        let trigger = mgr.scratch().join("allocate");
        mgr.install_unit(
            UNIT,
            &format!(
                "[Service]\nType=exec\nExecStart={} --listen 127.0.0.1:{port}\n\
                 ExecStartPost=/bin/sh -c '(while [ ! -e {t} ]; do sleep 0.05; done; exec tail /dev/zero) >/dev/null 2>&1 &'\n",
                standin_bin().display(),
                t = trigger.display()
            ),
        );
        mgr.systemctl(&["start", UNIT]);
        Rig {
            mgr,
            state: tempfile::tempdir().expect("state"),
            trigger,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn applier(&self, verify: Duration) -> LimitsApplier {
        let (journal, _) = Journal::open(self.state.path()).expect("journal");
        LimitsApplier {
            mgr: Arc::new(SystemdClient::new(&self.mgr.bus_address())),
            unit: UNIT.to_owned(),
            dropin_dir: self.mgr.unit_dir().join(format!("{UNIT}.d")),
            proc_root: PathBuf::from("/proc"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            verify_timeout: verify,
            journal: Arc::new(Mutex::new(journal)),
        }
    }

    fn main_pid(&self) -> u32 {
        self.mgr.property(UNIT, "MainPID").parse().expect("MainPID")
    }
}

/// `controller -> directory` of a process's cgroups, read by the test itself (not the agent's
/// reader): v1 hierarchies by name, the unified tree as "unified".
fn cgroups_of(pid: u32) -> BTreeMap<String, PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let root = Path::new("/sys/fs/cgroup");
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let mut p = l.splitn(3, ':');
        let (id, ctrl, path) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
        let rel = path.trim_start_matches('/');
        if id == "0" {
            let base = if root.join("cgroup.controllers").exists() {
                root.to_path_buf()
            } else {
                root.join("unified")
            };
            out.insert("unified".to_owned(), base.join(rel));
        }
        for c in ctrl.split(',').filter(|c| !c.is_empty()) {
            out.insert(c.to_owned(), root.join(c).join(rel));
        }
    }
    out
}

fn file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
        .trim()
        .to_owned()
}

fn limits(pairs: &[(&str, Value)]) -> Limits {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

async fn limits_are_set_live_and_read_back_from_systemd_and_the_cgroup() {
    let rig = Rig::start();
    let pid = rig.main_pid();
    let applier = rig.applier(Duration::from_secs(2));
    let after = limits(&[
        ("memory_high", Value::Bytes(512 * MIB)),
        ("memory_max", Value::Bytes(768 * MIB)),
        ("cpu_quota", Value::UsecPerSec(1_500_000)),
        ("cpu_weight", Value::Count(200)),
        ("tasks_max", Value::Count(64)),
    ]);
    let mut rows = Vec::new();
    for round in 0..5u64 {
        let mut want = after.clone();
        // Alternate so every round changes something.
        want.insert(
            "memory_max".to_owned(),
            Value::Bytes((768 + 64 * (round % 2)) * MIB),
        );
        let before = applier.current(&want).await.expect("current limits");
        let decided = Instant::now();
        let r = applier
            .apply(round + 1, before, want, "test".into(), decided)
            .await;
        assert_eq!(r.result, ActionResult::Applied, "{}", r.detail);
        rows.push(r.timings);
    }
    // Round 5 left memory_max at 768M.
    assert_eq!(rig.main_pid(), pid, "the unit was restarted");
    let show = |p: &str| rig.mgr.property(UNIT, p);
    assert_eq!(show("MemoryHigh"), (512 * MIB).to_string());
    assert_eq!(show("MemoryMax"), (768 * MIB).to_string());
    assert_eq!(show("CPUQuotaPerSecUSec"), "1.500000s");
    assert_eq!(show("CPUWeight"), "200");
    assert_eq!(show("TasksMax"), "64");

    let cg = cgroups_of(pid);
    if let Some(mem) = cg.get("memory") {
        // v1 (hybrid host): systemd maps the settings onto the v1 files; v1 has no memory.high.
        assert_eq!(file(mem, "memory.limit_in_bytes"), (768 * MIB).to_string());
        let cpu = &cg["cpu"];
        assert_eq!(file(cpu, "cpu.cfs_quota_us"), "150000");
        assert_eq!(file(cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(file(cpu, "cpu.shares"), "2048");
        assert_eq!(file(&cg["pids"], "pids.max"), "64");
        println!("cgroup layout: v1 controllers (hybrid host); memory.high does not exist in v1");
    } else {
        let d = &cg["unified"];
        assert_eq!(file(d, "memory.high"), (512 * MIB).to_string());
        assert_eq!(file(d, "memory.max"), (768 * MIB).to_string());
        assert_eq!(file(d, "cpu.max"), "150000 100000");
        assert_eq!(file(d, "cpu.weight"), "200");
        assert_eq!(file(d, "pids.max"), "64");
        println!("cgroup layout: unified v2");
    }
    let dropin = std::fs::read_to_string(
        rig.mgr
            .unit_dir()
            .join(format!("{UNIT}.d"))
            .join(RESOURCES_DROPIN),
    )
    .expect("the limits persisted in our drop-in");
    assert!(dropin.contains("\nMemoryMax=768M\n"), "{dropin}");
    assert!(dropin.contains("\nCPUQuota=150%\n"), "{dropin}");
    // A reload reads the drop-in: the limits stay, the process too.
    rig.mgr.systemctl(&["daemon-reload"]);
    assert_eq!(show("MemoryMax"), (768 * MIB).to_string());
    assert_eq!(rig.main_pid(), pid);

    println!("\nlimits set live, decision to verified (ms), systemd --user + stand-in Ollama:");
    println!("run | SetUnitProperties (systemd) | verified (D-Bus + cgroup) | agent's own");
    for (i, t) in rows.iter().enumerate() {
        println!(
            "{:>3} | {:>27.2} | {:>25.2} | {:>11.2}",
            i + 1,
            t.set_ms,
            t.verified_ms,
            t.agent_ms
        );
    }
}

async fn a_limit_that_gets_ollama_oom_killed_is_rolled_back() {
    let rig = Rig::start();
    let pid = rig.main_pid();
    let verify = Duration::from_secs(15);
    let applier = rig.applier(verify);
    let after = limits(&[("memory_max", Value::Bytes(64 * MIB))]);
    let before = applier.current(&after).await.expect("current limits");
    let started = Instant::now();
    let task = tokio::spawn(async move {
        applier
            .apply(1, before, after, "test".into(), Instant::now())
            .await
    });
    // Once the limit is in force, the helper starts allocating.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.mgr.property(UNIT, "MemoryMax") != (64 * MIB).to_string() {
        assert!(Instant::now() < deadline, "the limit never showed");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&rig.trigger, "").expect("trigger");
    let r = task.await.expect("apply task");
    let took = started.elapsed();
    assert_eq!(r.result, ActionResult::RolledBack, "{}", r.detail);
    assert!(r.detail.contains("OOM-killed"), "{}", r.detail);
    assert!(took < verify, "rolled back after {took:?}");
    assert_eq!(rig.mgr.property(UNIT, "MemoryMax"), "infinity");
    assert!(
        !rig.mgr
            .unit_dir()
            .join(format!("{UNIT}.d"))
            .join(RESOURCES_DROPIN)
            .exists()
    );
    let alert = r.alert.expect("a critical alert");
    assert_eq!(alert.rule, "tuner_rollback");
    assert!(
        alert.summary.contains("memory_max=64M"),
        "{}",
        alert.summary
    );
    // The helper was the one killed; the server itself still runs.
    assert_eq!(rig.main_pid(), pid);
    let journal = std::fs::read_to_string(rig.state.path().join(JOURNAL_NAME)).expect("journal");
    assert!(journal.contains(r#""event":"limits_started""#), "{journal}");
    assert!(journal.contains(r#""result":"rolled_back""#), "{journal}");
    println!("OOM kill to rollback: rolled back {took:?} after the decision");
}
