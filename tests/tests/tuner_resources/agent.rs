//! The agent itself (`hostwarden run`) driving `[tuner.resources]` through its tick, against
//! the same real `systemd --user` rig: limits set live on the unchanged process and exported as
//! metrics, observe mode that only journals, and an OOM limit rolled back once, not in a loop.

use std::process::Command;
use std::time::Duration;

use hostwarden_tests::bin;
use hostwarden_tests::daemon::Daemon;
use hostwarden_tests::systemd_user::tuner_journal;
use hostwarden_tests::wait::poll_until;
use serde_json::Value as Json;

use super::{MIB, Rig, UNIT, cgroups_of, file};

const WAIT: Duration = Duration::from_secs(60);

/// An agent config for the rig: ticks of 300 ms, the tuner in `mode`, the given
/// `[tuner.resources]` lines.
fn config(rig: &Rig, mode: &str, verify: &str, resources: &str) -> std::path::PathBuf {
    let dir = rig.state.path();
    let path = dir.join("hostwarden.toml");
    let text = format!(
        "[agent]\ninterval = \"300ms\"\nstate_dir = \"{state}\"\nstatus_socket = \"{state}/status.sock\"\n\n\
         [gpu]\nenabled = false\n\n[zfs]\nenabled = false\n\n\
         [ollama]\nurl = \"{url}\"\nunit = \"{UNIT}\"\n\n\
         [tuner]\nmode = \"{mode}\"\nbus = \"{bus}\"\ndropin_dir = \"{dropins}\"\nsettle = \"0s\"\n\
         cooldown = \"0s\"\nrestart_when = \"now\"\nverify_timeout = \"{verify}\"\n\n\
         [tuner.resources]\n{resources}",
        state = dir.display(),
        url = rig.url,
        bus = rig.mgr.bus_address(),
        dropins = rig.mgr.unit_dir().display(),
    );
    std::fs::write(&path, text).expect("config");
    path
}

fn events<'a>(j: &'a [Json], name: &str) -> Vec<&'a Json> {
    j.iter().filter(|e| e["event"] == name).collect()
}

/// `hostwarden status --format json` of the running agent.
fn status(rig: &Rig) -> Json {
    let out = Command::new(bin())
        .args(["status", "--format", "json", "--socket"])
        .arg(rig.state.path().join("status.sock"))
        .output()
        .expect("hostwarden status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

fn point(status: &Json, name: &str, attr: Option<(&str, &str)>) -> Option<f64> {
    status["points"].as_array()?.iter().find_map(|p| {
        let hit = p["name"] == name && attr.is_none_or(|(k, v)| p["attributes"][k] == v);
        hit.then(|| p["value"].as_f64()).flatten()
    })
}

/// The environment apply comes first (the stand-in's unit has none of the policy's keys) and
/// restarts the unit once; the limits wait for it, then go on live.
fn wait_env_applied(agent: &mut Daemon) {
    agent.wait_for(WAIT, "the environment applied", |l| {
        l.contains("Tuner applied a change.")
    });
}

pub fn the_agent_sets_limits_live_through_its_tick() {
    let rig = Rig::start();
    let cfg = config(
        &rig,
        "apply",
        "2s",
        "memory_high = \"512M\"\nmemory_max = \"768M\"\ncpu_quota = \"auto\"\n",
    );
    let mut agent = Daemon::start(&cfg, &[], &[]);
    wait_env_applied(&mut agent);
    let pid = rig.main_pid();
    agent.wait_for(WAIT, "limits set", |l| {
        l.contains("Tuner set resource limits live.")
    });
    let show = |p: &str| rig.mgr.property(UNIT, p);
    assert_eq!(show("MemoryHigh"), (512 * MIB).to_string());
    assert_eq!(show("MemoryMax"), (768 * MIB).to_string());
    // This machine has 2 logical CPUs: auto keeps one for the host.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(show("CPUQuotaPerSecUSec"), format!("{}s", cpus - 1));
    assert_eq!(rig.main_pid(), pid, "the unit was restarted for its limits");
    let cg = cgroups_of(pid);
    if let Some(mem) = cg.get("memory") {
        assert_eq!(file(mem, "memory.limit_in_bytes"), (768 * MIB).to_string());
        assert_eq!(
            file(&cg["cpu"], "cpu.cfs_quota_us"),
            ((cpus - 1) * 100_000).to_string()
        );
    } else {
        assert_eq!(file(&cg["unified"], "memory.max"), (768 * MIB).to_string());
        assert_eq!(file(&cg["unified"], "memory.high"), (512 * MIB).to_string());
    }
    // The metrics: the limit from the cgroup file, the usage of the unit's processes.
    agent.wait_for(WAIT, "a tick after the change", |l| l.contains("Tick."));
    let deadline = tokio::time::Instant::now() + WAIT;
    let s = loop {
        let s = status(&rig);
        if point(
            &s,
            "ollama.unit.memory.limit",
            Some(("ollama.unit.limit_type", "max")),
        ) == Some((768 * MIB) as f64)
        {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no limit metric: {s}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let usage = point(&s, "ollama.unit.memory.usage", None).expect("usage metric");
    assert!(usage > 0.0 && usage < (768 * MIB) as f64, "usage {usage}");
    assert!(point(&s, "ollama.unit.cpu.time", None).is_some_and(|c| c >= 0.0));
    let line = s["actuations"]
        .as_array()
        .expect("actuations")
        .iter()
        .any(|a| {
            a["summary"]
                .as_str()
                .is_some_and(|t| t.starts_with("limits "))
        });
    assert!(line, "status shows no limits line: {}", s["actuations"]);

    let j = tuner_journal(rig.state.path());
    let done = events(&j, "limits_finished");
    assert_eq!(done.len(), 1, "{j:?}");
    assert_eq!(done[0]["result"], "applied");
    let t = &done[0]["timings"];
    println!(
        "agent tick -> limits verified: decision to verified {:.1} ms, of it SetUnitProperties \
         (systemd) {:.1} ms, the agent's own {:.1} ms; usage {:.1} MiB under max 768 MiB",
        t["verified_ms"].as_f64().unwrap_or(0.0),
        t["set_ms"].as_f64().unwrap_or(0.0),
        t["agent_ms"].as_f64().unwrap_or(0.0),
        usage / MIB as f64
    );
}

pub fn observe_mode_journals_the_limits_and_changes_nothing() {
    let rig = Rig::start();
    let pid = rig.main_pid();
    let cfg = config(&rig, "observe", "2s", "memory_max = \"768M\"\n");
    let mut agent = Daemon::start(&cfg, &[], &[]);
    let line = agent.wait_for(WAIT, "the limits decision", |l| {
        l.contains("Tuner limits decision.")
    });
    assert!(
        line.text.contains("would set memory_max=768M"),
        "{}",
        line.text
    );
    // A few more ticks: still nothing set, journaled once.
    for _ in 0..5 {
        agent.wait_for(WAIT, "a tick", |l| l.contains("Tick."));
    }
    assert_eq!(rig.mgr.property(UNIT, "MemoryMax"), "infinity");
    assert_eq!(rig.main_pid(), pid);
    let j = tuner_journal(rig.state.path());
    let decisions = events(&j, "limits_decision");
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert!(
        decisions[0]["verdict"]
            .as_str()
            .is_some_and(|v| v.contains("observe mode: would set memory_max=768M")),
        "{}",
        decisions[0]
    );
    assert_eq!(
        decisions[0]["reasons"]["memory_max"][0],
        "fixed in [tuner.resources]"
    );
    assert!(events(&j, "limits_started").is_empty());
}

pub fn the_agent_rolls_back_an_oom_limit_once_and_does_not_retry_it() {
    let rig = Rig::start();
    let verify = Duration::from_secs(15);
    let cfg = config(&rig, "apply", "15s", "memory_max = \"64M\"\n");
    let mut agent = Daemon::start(&cfg, &[], &[]);
    wait_env_applied(&mut agent);
    // Once the limit is in force, the stand-in's helper allocates past it.
    poll_until(
        WAIT,
        Duration::from_millis(10),
        "the limit to show",
        || rig.mgr.property(UNIT, "MemoryMax") == (64 * MIB).to_string(),
        String::new,
    );
    std::fs::write(&rig.trigger, "").expect("trigger");
    agent.wait_for(WAIT, "the rollback", |l| {
        l.contains("Tuner resource limits failed; rolling back.")
    });
    // Ten more ticks (3 s): the rolled-back limit is not tried again.
    for _ in 0..10 {
        agent.wait_for(WAIT, "a tick", |l| l.contains("Tick."));
    }
    assert_eq!(rig.mgr.property(UNIT, "MemoryMax"), "infinity");
    let j = tuner_journal(rig.state.path());
    let started = events(&j, "limits_started");
    let finished = events(&j, "limits_finished");
    assert_eq!(started.len(), 1, "retried: {started:?}");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["result"], "rolled_back", "{}", finished[0]);
    let took =
        finished[0]["at_ms"].as_u64().unwrap_or(0) - started[0]["at_ms"].as_u64().unwrap_or(0);
    assert!(
        Duration::from_millis(took) < verify,
        "rolled back after {took} ms"
    );
    let waits: Vec<&Json> = events(&j, "limits_decision")
        .into_iter()
        .filter(|d| {
            d["verdict"]
                .as_str()
                .is_some_and(|v| v.contains("rolled back"))
        })
        .collect();
    assert_eq!(waits.len(), 1, "the backoff is journaled once: {waits:?}");
    println!(
        "OOM limit: started to rolled back {took} ms (verify_timeout {verify:?}); 1 attempt over 10 ticks"
    );
}

/// A `limits_started` the agent died after (systemd took the limits, nothing was recorded): the
/// next agent, in observe mode, records it complete and persists the drop-in.
pub fn an_interrupted_limits_change_is_reconciled_in_observe_mode() {
    let rig = Rig::start();
    let pid = rig.main_pid();
    rig.mgr
        .systemctl(&["set-property", "--runtime", UNIT, "MemoryMax=768M"]);
    let started = serde_json::json!({
        "at_ms": 1, "unit": UNIT, "event": "limits_started", "id": 7,
        "before": {"memory_max": {"bytes": u64::MAX}},
        "after": {"memory_max": {"bytes": 768 * MIB}},
        "why_now": "restart_when = now", "previous_dropin": null
    });
    std::fs::write(
        rig.state.path().join("tuner-journal.jsonl"),
        format!("{started}\n"),
    )
    .expect("journal");
    let cfg = config(&rig, "observe", "2s", "memory_max = \"768M\"\n");
    let mut agent = Daemon::start(&cfg, &[], &[]);
    agent.wait_for(WAIT, "the reconcile", |l| {
        l.contains("Interrupted limits change found complete")
    });
    // The line is logged just before the journal entry is written: wait for the entry.
    let deadline = tokio::time::Instant::now() + WAIT;
    let j = loop {
        let j = tuner_journal(rig.state.path());
        if !events(&j, "limits_finished").is_empty() || tokio::time::Instant::now() > deadline {
            break j;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let done = events(&j, "limits_finished");
    assert_eq!(done.len(), 1, "{j:?}");
    assert_eq!(done[0]["id"], 7);
    assert_eq!(done[0]["result"], "applied");
    let dropin = rig
        .mgr
        .unit_dir()
        .join(format!("{UNIT}.d"))
        .join(super::RESOURCES_DROPIN);
    let text = std::fs::read_to_string(&dropin).expect("the reconciled limits persisted");
    assert!(text.contains("\nMemoryMax=768M\n"), "{text}");
    assert_eq!(rig.main_pid(), pid);
}

/// An operator's `90-operator.conf` sets `MemoryMax=` after our resources drop-in: the agent
/// reports it once (log, journal, alert, status), stops setting that key (no apply of it over
/// many ticks, so no fight at each reload), drops it from its own drop-in, keeps managing the
/// other keys, and takes the key back when the file is gone.
pub fn an_operator_memory_max_is_reported_once_and_not_fought() {
    let rig = Rig::start();
    let cfg = config(
        &rig,
        "apply",
        "1s",
        "memory_max = \"768M\"\ntasks_max = \"64\"\n",
    );
    let mut agent = Daemon::start(&cfg, &[], &[]);
    wait_env_applied(&mut agent);
    agent.wait_for(WAIT, "limits set", |l| {
        l.contains("Tuner set resource limits live.")
    });
    let dropins = rig.mgr.unit_dir().join(format!("{UNIT}.d"));
    let operator = dropins.join("90-operator.conf");
    std::fs::write(&operator, "[Service]\nMemoryMax=900M\n").expect("operator drop-in");
    rig.mgr.systemctl(&["daemon-reload"]);
    let path = operator.display().to_string();
    // Two tasks read the reload (the tuner's drop-in scan, the limits driver's read): their
    // lines come in either order.
    let report = |l: &str| l.contains("An operator drop-in sorting after") && l.contains(&path);
    let leaves = |l: &str| l.contains("Tuner leaves this limit to the operator's drop-in");
    let first = agent.wait_for(
        WAIT,
        "the report or the limits driver leaving the key",
        |l| report(l) || leaves(l),
    );
    if report(&first.text) {
        agent.wait_for(WAIT, "the limits driver leaving the key", leaves);
    } else {
        agent.wait_for(WAIT, "the report", report);
    }
    // Twenty ticks (6 s), one more reload among them: the key is not set again.
    for i in 0..20 {
        if i == 10 {
            rig.mgr.systemctl(&["daemon-reload"]);
        }
        agent.wait_for(WAIT, "a tick", |l| l.contains("Tick."));
    }
    let show = |p: &str| rig.mgr.property(UNIT, p);
    let listed = show("DropInPaths");
    println!("DropInPaths: {listed}");
    assert!(listed.contains(&path), "{listed}");
    assert_eq!(show("MemoryMax"), (900 * MIB).to_string());
    assert_eq!(show("TasksMax"), "64");
    let ours = std::fs::read_to_string(dropins.join(super::RESOURCES_DROPIN)).expect("ours");
    assert!(!ours.contains("MemoryMax"), "{ours}");
    assert!(ours.contains("\nTasksMax=64\n"), "{ours}");
    let j = tuner_journal(rig.state.path());
    let reports = events(&j, "operator_override");
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["key"], "MemoryMax");
    assert_eq!(reports[0]["path"], path.as_str());
    assert_eq!(reports[0]["value"], "900M");
    let sets_memory = |j: &[Json]| {
        events(j, "limits_started")
            .into_iter()
            .filter(|e| !e["after"]["memory_max"].is_null())
            .count()
    };
    assert_eq!(sets_memory(&j), 1, "MemoryMax set again: {j:?}");
    assert!(
        events(&j, "limits_finished")
            .iter()
            .all(|e| e["result"] == "applied")
    );
    let s = status(&rig);
    let acts = s["actuations"].as_array().expect("actuations");
    let said = |needle: &str| {
        acts.iter()
            .any(|a| a["summary"].as_str().is_some_and(|t| t.contains(needle)))
    };
    assert!(said(&path), "no report in status: {acts:?}");
    assert!(said("memory_max left to"), "no limits line: {acts:?}");

    // The other keys are still managed: a changed TasksMax is set back, MemoryMax is not.
    rig.mgr
        .systemctl(&["set-property", "--runtime", UNIT, "TasksMax=100"]);
    poll_until(
        WAIT,
        Duration::from_millis(100),
        "TasksMax managed",
        || show("TasksMax") == "64",
        String::new,
    );
    let j = tuner_journal(rig.state.path());
    let started = events(&j, "limits_started").len();
    assert_eq!(sets_memory(&j), 1, "MemoryMax set again: {j:?}");
    assert_eq!(show("MemoryMax"), (900 * MIB).to_string());

    // The file goes: the key is the tuner's again, persisted in our drop-in once more.
    std::fs::remove_file(&operator).expect("remove");
    rig.mgr.systemctl(&["daemon-reload"]);
    agent.wait_for(WAIT, "the key taken back", |l| {
        l.contains("No later drop-in sets this limit any more")
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ours =
            std::fs::read_to_string(dropins.join(super::RESOURCES_DROPIN)).unwrap_or_default();
        if ours.contains("\nMemoryMax=768M\n") && show("MemoryMax") == (768 * MIB).to_string() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not taken back: {ours}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let j = tuner_journal(rig.state.path());
    assert_eq!(events(&j, "operator_override_gone").len(), 1, "{j:?}");
    assert_eq!(events(&j, "operator_override").len(), 1, "{j:?}");
    println!(
        "operator MemoryMax=900M: 1 report over 20 ticks and 2 reloads; applies setting memory_max: \
         1 (before the file); limits changes in all before the file went: {started}"
    );
}
