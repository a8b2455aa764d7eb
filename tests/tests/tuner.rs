//! The tuner against a real systemd: a `systemd --user` manager in a private mount namespace
//! runs the stand-in Ollama as `ollama.service`; the tuner writes its drop-in into the
//! manager's unit directory and talks to it over its D-Bus. Every claim is checked on the real
//! restarted process (/proc/MAINPID/environ). Time for the gate is injected.

use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;

use hostwarden::config::OllamaConfig;
use hostwarden::model::{AttrKey, MetricName, MetricPoint, Snapshot};
use hostwarden::rules::event::Severity;
use hostwarden::sys::systemd::{SystemdClient, UnitManager};
use hostwarden::tuner::apply::ApplyReport;
use hostwarden::tuner::apply::dropin::DropinPath;
use hostwarden::tuner::apply::journal::{ActionResult, JOURNAL_NAME, Timings};
use hostwarden::tuner::config::{RestartWhen, TunerConfig, TunerMode};
use hostwarden::tuner::driver::Tuner;
use hostwarden::tuner::policy::decision::{Decision, KeyDecision};
use hostwarden_tests::harness::Harness;
use hostwarden_tests::standin::standin_bin;
use hostwarden_tests::systemd_user::{self, UserManager, process_env};

fn main() -> ExitCode {
    // Every test runs its own `systemd --user` manager.
    let needs = systemd_user::NEEDS;
    let h = Harness::new();
    h.run(vec![
        h.tokio_test(
            "a_decided_change_is_applied_to_the_restarted_process",
            needs,
            a_decided_change_is_applied_to_the_restarted_process,
        ),
        h.tokio_test(
            "a_change_that_fails_to_start_is_rolled_back",
            needs,
            a_change_that_fails_to_start_is_rolled_back,
        ),
        h.tokio_test(
            "values_already_in_force_are_recorded_without_a_restart",
            needs,
            values_already_in_force_are_recorded_without_a_restart,
        ),
        h.test(
            "an_agent_killed_mid_apply_reconciles_on_restart",
            needs,
            an_agent_killed_mid_apply_reconciles_on_restart,
        ),
        h.tokio_test(
            "settle_cooldown_and_daily_cap_hold",
            needs,
            settle_cooldown_and_daily_cap_hold,
        ),
        h.tokio_test(
            "observe_mode_never_touches_the_unit",
            needs,
            observe_mode_never_touches_the_unit,
        ),
        h.tokio_test(
            "an_operator_dropin_is_reported_once_and_never_fought",
            needs,
            an_operator_dropin_is_reported_once_and_never_fought,
        ),
        h.tokio_test(
            "the_in_force_check_reads_proc_root",
            needs,
            the_in_force_check_reads_proc_root,
        ),
        h.tokio_test(
            "bench_decision_to_verified_applied",
            needs,
            bench_decision_to_verified_applied,
        ),
    ])
}

const UNIT: &str = "ollama.service";
/// 2026-01-01T00:00:00Z: the injected clock's origin.
const T0: u64 = 1_767_225_600_000;
const MIN: u64 = 60_000;

/// A user manager running the stand-in as ollama.service, plus the tuner's state dir.
struct Rig {
    mgr: UserManager,
    url: String,
    state: tempfile::TempDir,
}

impl Rig {
    /// Starts the manager and installs the unit (not started), its service section ending
    /// with `extra_service_lines`.
    fn start(extra_service_lines: &str) -> Rig {
        let standin = standin_bin();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mgr = UserManager::start();
        mgr.install_unit(
            UNIT,
            &format!(
                "[Unit]\nDescription=stand-in Ollama\n\n[Service]\nType=exec\n\
                 ExecStart={} --listen 127.0.0.1:{port} --fail-if OLLAMA_NUM_PARALLEL=13\n{extra_service_lines}\n",
                standin.display()
            ),
        );
        Rig {
            mgr,
            url: format!("http://127.0.0.1:{port}"),
            state: tempfile::tempdir().expect("state dir"),
        }
    }

    fn start_unit(&self) {
        self.mgr.systemctl(&["start", UNIT]);
    }

    fn config(
        &self,
        mode: TunerMode,
        settle_m: u64,
        cooldown_m: u64,
        cap: u32,
    ) -> (TunerConfig, OllamaConfig) {
        let tuner = TunerConfig {
            mode,
            bus: self.mgr.bus_address(),
            dropin_dir: self.mgr.unit_dir(),
            settle: Duration::from_secs(settle_m * 60),
            cooldown: Duration::from_secs(cooldown_m * 60),
            max_restarts_per_day: cap,
            restart_when: RestartWhen::Now,
            verify_timeout: Duration::from_secs(15),
            ..TunerConfig::default()
        };
        let ollama = OllamaConfig {
            url: self.url.clone(),
            unit: UNIT.to_owned(),
            ..OllamaConfig::default()
        };
        (tuner, ollama)
    }

    fn tuner(&self, mode: TunerMode, settle_m: u64, cooldown_m: u64, cap: u32) -> Tuner {
        self.tuner_with_proc(
            mode,
            settle_m,
            cooldown_m,
            cap,
            std::path::Path::new("/proc"),
        )
    }

    fn tuner_with_proc(
        &self,
        mode: TunerMode,
        settle_m: u64,
        cooldown_m: u64,
        cap: u32,
        proc_root: &std::path::Path,
    ) -> Tuner {
        let (t, o) = self.config(mode, settle_m, cooldown_m, cap);
        Tuner::from_config(&t, &o, self.state.path(), proc_root).expect("tuner")
    }

    fn client(&self) -> SystemdClient {
        SystemdClient::new(&self.mgr.bus_address())
    }

    fn main_pid(&self) -> u32 {
        self.mgr.property(UNIT, "MainPID").parse().expect("MainPID")
    }

    fn dropin(&self) -> DropinPath {
        DropinPath::new(&self.mgr.unit_dir(), UNIT)
    }

    /// Writes an operator's drop-in `name` with `body` beside ours and reloads the manager.
    fn write_operator_dropin(&self, name: &str, body: &str) -> std::path::PathBuf {
        let dir = self.dropin().dir;
        std::fs::create_dir_all(&dir).expect("drop-in dir");
        let path = dir.join(name);
        std::fs::write(&path, body).expect("operator drop-in");
        self.mgr.systemctl(&["daemon-reload"]);
        path
    }

    fn journal(&self) -> String {
        std::fs::read_to_string(self.state.path().join(JOURNAL_NAME)).unwrap_or_default()
    }
}

fn decision(pairs: &[(&str, &str)]) -> Decision {
    Decision {
        keys: pairs
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    KeyDecision {
                        value: (*v).to_owned(),
                        reasons: vec![format!("test wants {k}={v}")],
                        constrained_by_operator: false,
                    },
                )
            })
            .collect(),
    }
}

/// Checks the value of `key` in the environment of the process `pid`, as systemd started it.
fn assert_env(pid: u32, key: &str, want: &str) {
    let env = process_env(pid);
    assert_eq!(
        env.get(key).map(String::as_str),
        Some(want),
        "{key} of {pid}"
    );
}

/// Waits for the apply `tuner` started and checks it was applied.
async fn applied(tuner: &mut Tuner) -> ApplyReport {
    let r = tuner.settle_task().await.expect("an apply ran");
    assert_eq!(r.result, ActionResult::Applied, "{}", r.detail);
    r
}

/// Decides OLLAMA_NUM_PARALLEL=2, which is already in force: the drop-in is recorded and
/// `pid` goes on, not restarted (`why` says what a restart would mean).
async fn applied_without_restart(rig: &Rig, tuner: &mut Tuner, pid: u32, why: &str) {
    let d = decision(&[("OLLAMA_NUM_PARALLEL", "2")]);
    tuner.on_tick(T0, &Snapshot::default(), Some(&d));
    let r = applied(tuner).await;
    assert!(r.restarts_ms.is_empty(), "{}", r.detail);
    assert_eq!(rig.main_pid(), pid, "{why}");
}

fn actions(points: &[MetricPoint], result: &str) -> f64 {
    points
        .iter()
        .find(|p| {
            p.name == MetricName::HostwardenTunerActions
                && p.attributes
                    .get(AttrKey::HostwardenTunerResult)
                    .map(|v| v.as_text())
                    .as_deref()
                    == Some(result)
        })
        .map_or(0.0, |p| p.value.as_f64())
}

async fn a_decided_change_is_applied_to_the_restarted_process() {
    let rig = Rig::start("");
    rig.start_unit();
    let pid0 = rig.main_pid();
    let snap = Snapshot::default();
    // systemd's special characters must reach the process verbatim.
    let tricky = r#"5 %n "q" \ $HOME"#;
    let d = decision(&[
        ("OLLAMA_NUM_PARALLEL", "2"),
        ("OLLAMA_KEEP_ALIVE", "10m"),
        ("OLLAMA_MAX_QUEUE", tricky),
    ]);
    let mut tuner = rig.tuner(TunerMode::Apply, 0, 0, 100);
    tuner.on_tick(T0, &snap, Some(&d));
    applied(&mut tuner).await;

    let pid1 = rig.main_pid();
    assert_ne!(pid1, pid0, "the unit was restarted");
    assert_env(pid1, "OLLAMA_NUM_PARALLEL", "2");
    assert_env(pid1, "OLLAMA_KEEP_ALIVE", "10m");
    assert_env(pid1, "OLLAMA_MAX_QUEUE", tricky);
    let status = rig.client().unit_status(UNIT).await.expect("status");
    assert!(status.is_active());
    assert_eq!(status.main_pid, pid1);
    assert!(
        status
            .drop_in_paths
            .iter()
            .any(|p| p.ends_with("60-hostwarden.conf"))
    );

    let journal = rig.journal();
    assert!(journal.contains(r#""event":"apply_started""#), "{journal}");
    assert!(journal.contains(r#""result":"applied""#), "{journal}");
    let points = tuner.on_tick(T0 + 1, &snap, Some(&d));
    assert_eq!(actions(&points, "applied"), 1.0);
    assert!(!tuner.busy(), "nothing left to do");
    assert!(!tuner.last_actions(10).is_empty());

    // A new agent adopts its drop-in and does not restart for the same decision.
    drop(tuner);
    let mut again = rig.tuner(TunerMode::Apply, 0, 0, 100);
    again.on_tick(T0 + 2, &snap, Some(&d));
    assert!(!again.busy());
    assert_eq!(rig.main_pid(), pid1);
    assert!(rig.journal().contains(r#""event":"adopted""#));
}

async fn a_change_that_fails_to_start_is_rolled_back() {
    let rig = Rig::start("");
    rig.start_unit();
    let snap = Snapshot::default();
    let mut tuner = rig.tuner(TunerMode::Apply, 0, 0, 100);
    let good = decision(&[("OLLAMA_NUM_PARALLEL", "2")]);
    tuner.on_tick(T0, &snap, Some(&good));
    applied(&mut tuner).await;
    let good_text = rig.dropin().read().expect("read").expect("drop-in");

    // The stand-in refuses to start with OLLAMA_NUM_PARALLEL=13.
    let bad = decision(&[("OLLAMA_NUM_PARALLEL", "13")]);
    tuner.on_tick(T0 + MIN, &snap, Some(&bad));
    let r = tuner.settle_task().await.expect("apply");
    assert_eq!(r.result, ActionResult::RolledBack, "{}", r.detail);
    assert!(r.detail.contains("failed"), "{}", r.detail);

    let status = rig.client().unit_status(UNIT).await.expect("status");
    assert!(status.is_active(), "{status:?}");
    assert_env(status.main_pid, "OLLAMA_NUM_PARALLEL", "2");
    assert_eq!(rig.dropin().read().expect("read"), Some(good_text));

    let alerts = tuner.take_alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule, "tuner_rollback");
    assert_eq!(alerts[0].severity, Severity::Critical);
    assert!(
        alerts[0].summary.contains("OLLAMA_NUM_PARALLEL=13"),
        "{}",
        alerts[0].summary
    );

    // Never a restart loop: the same wish on the same host waits.
    let pid = status.main_pid;
    let points = tuner.on_tick(T0 + 2 * MIN, &snap, Some(&bad));
    assert!(!tuner.busy());
    assert_eq!(rig.main_pid(), pid);
    assert_eq!(actions(&points, "rolled_back"), 1.0);
    assert!(
        rig.journal().contains("was rolled back"),
        "{}",
        rig.journal()
    );
}

async fn values_already_in_force_are_recorded_without_a_restart() {
    let rig = Rig::start("Environment=OLLAMA_NUM_PARALLEL=2");
    rig.start_unit();
    let pid = rig.main_pid();
    let mut tuner = rig.tuner(TunerMode::Apply, 0, 0, 100);
    applied_without_restart(
        &rig,
        &mut tuner,
        pid,
        "restarted although nothing would change",
    )
    .await;
    assert!(rig.dropin().read().expect("read").is_some());
}

/// Runs an apply in its own runtime and drops that runtime while systemd's restart job waits on
/// the unit's ExecStartPre: the agent is gone mid-apply, exactly as if killed (no code of it
/// runs again). Then lets the job go on.
fn kill_agent_mid_apply(rig: &Rig, d: &Decision, fifo: &std::path::Path, open: &std::path::Path) {
    std::fs::remove_file(open).expect("close the gate");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut tuner = rt.block_on(async { rig.tuner(TunerMode::Apply, 0, 0, 100) });
    rt.block_on(async { tuner.on_tick(T0, &Snapshot::default(), Some(d)) });
    let deadline = Instant::now() + Duration::from_secs(20);
    while rig.mgr.property(UNIT, "SubState") != "start-pre" {
        assert!(
            Instant::now() < deadline,
            "restart never reached ExecStartPre"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(rig.journal().contains(r#""event":"apply_started""#));
    rt.shutdown_background();
    drop(tuner);
    release_gate(fifo);
    // Only now: had the gate file come back before ExecStartPre's `test -e`, the shell would
    // skip `cat`, and nothing would ever read the FIFO.
    std::fs::write(open, "").expect("open the gate");
}

/// Writes to the FIFO once ExecStartPre's `cat` has it open (`start-pre` is reached when the
/// shell is forked, a moment before `cat` opens it). A non-blocking open fails with ENXIO until
/// there is a reader, so this never blocks the test.
fn release_gate(fifo: &std::path::Path) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            Ok(mut f) => {
                f.write_all(b"go\n").expect("release ExecStartPre");
                return;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                assert!(
                    Instant::now() < deadline,
                    "ExecStartPre never opened the FIFO"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("open {}: {e}", fifo.display()),
        }
    }
}

/// Checks that the agent back after a kill finished the apply it found half done.
fn assert_completed_after_restart(report: Option<ApplyReport>) {
    let r = report.expect("reconcile ran");
    assert_eq!(r.result, ActionResult::Applied, "{}", r.detail);
    assert!(
        r.detail.contains("completed after an agent restart"),
        "{}",
        r.detail
    );
}

fn an_agent_killed_mid_apply_reconciles_on_restart() {
    let probe_dir = tempfile::tempdir().expect("dir");
    let fifo = probe_dir.path().join("gate.fifo");
    let open = probe_dir.path().join("gate.open");
    let rig = Rig::start(&format!(
        "ExecStartPre=/bin/sh -c 'test -e {} || cat {} >/dev/null'",
        open.display(),
        fifo.display()
    ));
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    std::fs::write(&open, "").expect("gate open");
    rig.start_unit();

    // A: the change cannot start; the next agent rolls back to "no drop-in".
    kill_agent_mid_apply(
        &rig,
        &decision(&[("OLLAMA_NUM_PARALLEL", "13")]),
        &fifo,
        &open,
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let report = rt.block_on(async {
        let mut t = rig.tuner(TunerMode::Apply, 0, 0, 100);
        t.settle_task().await
    });
    let r = report.expect("reconcile ran");
    assert_eq!(r.result, ActionResult::RolledBack, "{}", r.detail);
    assert_eq!(rig.dropin().read().expect("read"), None);
    assert_eq!(rig.mgr.property(UNIT, "ActiveState"), "active");
    assert!(!process_env(rig.main_pid()).contains_key("OLLAMA_NUM_PARALLEL"));

    // B: the change is good; the next agent finds it done, verifies and records completion.
    kill_agent_mid_apply(
        &rig,
        &decision(&[("OLLAMA_NUM_PARALLEL", "2")]),
        &fifo,
        &open,
    );
    let (report, journal_tail) = rt.block_on(async {
        let mut t = rig.tuner(TunerMode::Apply, 0, 0, 100);
        let r = t.settle_task().await;
        (r, t.last_actions(1))
    });
    assert_completed_after_restart(report);
    assert_eq!(journal_tail.len(), 1);
    assert_env(rig.main_pid(), "OLLAMA_NUM_PARALLEL", "2");

    // C: the agent comes back in observe mode: the half-done change is still its own to finish
    // (a good value: the rolled-back 13 of A is not tried again on the same host).
    kill_agent_mid_apply(
        &rig,
        &decision(&[("OLLAMA_NUM_PARALLEL", "3")]),
        &fifo,
        &open,
    );
    let report = rt.block_on(async {
        let mut t = rig.tuner(TunerMode::Observe, 0, 0, 100);
        t.settle_task().await
    });
    assert_completed_after_restart(report);
    assert_eq!(rig.mgr.property(UNIT, "ActiveState"), "active");
    assert_env(rig.main_pid(), "OLLAMA_NUM_PARALLEL", "3");
}

async fn settle_cooldown_and_daily_cap_hold() {
    let rig = Rig::start("");
    rig.start_unit();
    let snap = Snapshot::default();
    let mut tuner = rig.tuner(TunerMode::Apply, 10, 30, 2);
    let t = |m: u64| T0 + m * MIN;
    let mut pids = vec![rig.main_pid()];

    let two = decision(&[("OLLAMA_NUM_PARALLEL", "2")]);
    tuner.on_tick(t(0), &snap, Some(&two));
    tuner.on_tick(t(9), &snap, Some(&two));
    assert!(!tuner.busy(), "applied before the 10m settle");
    // One journal entry for the settling wish, not one per tick.
    assert_eq!(
        rig.journal().matches("settling").count(),
        1,
        "{}",
        rig.journal()
    );
    tuner.on_tick(t(10), &snap, Some(&two));
    assert!(tuner.busy(), "settled after 10m");
    applied(&mut tuner).await;
    pids.push(rig.main_pid());

    let three = decision(&[("OLLAMA_NUM_PARALLEL", "3")]);
    tuner.on_tick(t(11), &snap, Some(&three));
    tuner.on_tick(t(21), &snap, Some(&three));
    assert!(!tuner.busy(), "restarted inside the 30m cooldown");
    assert!(rig.journal().contains("cooldown"), "{}", rig.journal());
    tuner.on_tick(t(40), &snap, Some(&three));
    applied(&mut tuner).await;
    pids.push(rig.main_pid());

    let four = decision(&[("OLLAMA_NUM_PARALLEL", "4")]);
    tuner.on_tick(t(41), &snap, Some(&four));
    tuner.on_tick(t(80), &snap, Some(&four));
    assert!(
        !tuner.busy(),
        "a third restart within a day with max_restarts_per_day = 2"
    );
    assert!(rig.journal().contains("daily cap"), "{}", rig.journal());
    // The restarts happened exactly when allowed: three distinct processes, the last still on.
    pids.dedup();
    assert_eq!(pids.len(), 3);
    assert_eq!(rig.main_pid(), pids[2]);
    assert_env(pids[2], "OLLAMA_NUM_PARALLEL", "3");
}

async fn observe_mode_never_touches_the_unit() {
    let rig = Rig::start("");
    rig.start_unit();
    let pid = rig.main_pid();
    let restarts = rig.mgr.property(UNIT, "NRestarts");
    let snap = Snapshot::default();
    let mut tuner = rig.tuner(TunerMode::Observe, 0, 0, 100);
    let d = decision(&[("OLLAMA_NUM_PARALLEL", "4"), ("OLLAMA_KEEP_ALIVE", "15m")]);
    let mut points = Vec::new();
    for i in 0..5 {
        points = tuner.on_tick(T0 + i * 24 * 60 * MIN, &snap, Some(&d));
        assert!(!tuner.busy());
    }
    assert_eq!(rig.main_pid(), pid);
    assert_eq!(rig.mgr.property(UNIT, "NRestarts"), restarts);
    assert_eq!(rig.dropin().read().expect("read"), None);
    assert!(!rig.dropin().dir.exists());
    assert!(rig.journal().contains("observe mode"), "{}", rig.journal());
    assert_eq!(actions(&points, "skipped"), 1.0);
    assert!(!process_env(pid).contains_key("OLLAMA_NUM_PARALLEL"));
}

fn count(journal: &str, needle: &str) -> usize {
    journal.matches(needle).count()
}

/// Waits until the tuner has heard systemd announce a change after `seen` (the `Reloading`
/// signal of a daemon-reload): the drop-in scan follows that signal, and these ticks run back
/// to back, faster than a signal crosses the bus.
async fn reload_heard(tuner: &Tuner, seen: u64) {
    tokio::time::timeout(Duration::from_secs(10), tuner.unit_changed_since(seen))
        .await
        .expect("the tuner heard no Reloading signal within 10 s");
}

/// An operator's 90-operator.conf sets OLLAMA_NUM_PARALLEL after our 60-hostwarden.conf: the
/// tuner reports it once, applies the other keys, and never fights the file (no apply of that
/// key, no failed verification, no rollback) however many ticks pass; a new version of the file
/// is reported again, and once the file is gone the tuner manages the key again.
async fn an_operator_dropin_is_reported_once_and_never_fought() {
    let rig = Rig::start("");
    let operator = rig.write_operator_dropin(
        "90-operator.conf",
        "[Service]\nEnvironment=OLLAMA_NUM_PARALLEL=3\n",
    );
    rig.start_unit();
    let snap = Snapshot::default();
    let mut tuner = rig.tuner(TunerMode::Apply, 0, 0, 100);
    let d = decision(&[("OLLAMA_NUM_PARALLEL", "4"), ("OLLAMA_KEEP_ALIVE", "10m")]);
    let mut alerts = Vec::new();
    for i in 0..8 {
        tuner.on_tick(T0 + i * MIN, &snap, Some(&d));
        if let Some(r) = tuner.settle_task().await {
            assert_eq!(r.result, ActionResult::Applied, "{}", r.detail);
        }
        tuner.settle_scan().await;
        alerts.extend(tuner.take_alerts());
    }
    let journal = rig.journal();
    assert_eq!(
        count(&journal, r#""event":"apply_started""#),
        1,
        "{journal}"
    );
    assert_eq!(count(&journal, "rolled_back"), 0, "{journal}");
    assert_eq!(
        count(&journal, r#""event":"operator_override""#),
        1,
        "{journal}"
    );
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].rule, "tuner_operator_override");
    assert_eq!(alerts[0].severity, Severity::Warning);
    let path = operator.display().to_string();
    assert!(alerts[0].summary.contains(&path), "{}", alerts[0].summary);
    assert_eq!(tuner.operator_overrides()["OLLAMA_NUM_PARALLEL"].path, path);
    assert_env(rig.main_pid(), "OLLAMA_NUM_PARALLEL", "3");
    assert_env(rig.main_pid(), "OLLAMA_KEEP_ALIVE", "10m");
    let ours = rig.dropin().read().expect("read").expect("our drop-in");
    assert!(!ours.contains("OLLAMA_NUM_PARALLEL"), "{ours}");

    // The status line of the report.
    let status: Vec<_> = tuner
        .last_actions(50)
        .iter()
        .map(hostwarden::status::ActuationReport::from)
        .filter(|a| a.result == "operator_override")
        .collect();
    assert_eq!(status.len(), 1);
    assert!(status[0].summary.contains(&path), "{}", status[0].summary);

    // A new version of the file is reported again, once; an agent restart reports nothing new.
    let seen = tuner.unit_changes();
    rig.write_operator_dropin(
        "90-operator.conf",
        "[Service]\nEnvironment=OLLAMA_NUM_PARALLEL=5\n",
    );
    reload_heard(&tuner, seen).await;
    for i in 8..11 {
        tuner.on_tick(T0 + i * MIN, &snap, Some(&d));
        tuner.settle_task().await;
        tuner.settle_scan().await;
    }
    drop(tuner);
    let mut tuner = rig.tuner(TunerMode::Apply, 0, 0, 100);
    for i in 11..14 {
        tuner.on_tick(T0 + i * MIN, &snap, Some(&d));
        tuner.settle_task().await;
        tuner.settle_scan().await;
    }
    let journal = rig.journal();
    assert_eq!(
        count(&journal, r#""event":"operator_override""#),
        2,
        "{journal}"
    );
    assert_eq!(
        count(&journal, r#""event":"apply_started""#),
        1,
        "{journal}"
    );

    // The operator removes the file: the tuner takes the key back.
    std::fs::remove_file(&operator).expect("remove");
    let seen = tuner.unit_changes();
    rig.mgr.systemctl(&["daemon-reload"]);
    reload_heard(&tuner, seen).await;
    for i in 14..17 {
        tuner.on_tick(T0 + i * MIN, &snap, Some(&d));
        if let Some(r) = tuner.settle_task().await {
            assert_eq!(r.result, ActionResult::Applied, "{}", r.detail);
        }
        tuner.settle_scan().await;
    }
    let journal = rig.journal();
    assert_eq!(count(&journal, "operator_override_gone"), 1, "{journal}");
    assert_eq!(count(&journal, "rolled_back"), 0, "{journal}");
    assert_env(rig.main_pid(), "OLLAMA_NUM_PARALLEL", "4");
}

/// The "already in force" check reads the main process's environ below `[host] proc_root`:
/// a proc root whose copy of the process holds the wanted value makes the apply record the
/// drop-in without a restart, although the process seen in /proc lacks the value.
async fn the_in_force_check_reads_proc_root() {
    let rig = Rig::start("");
    rig.start_unit();
    let pid = rig.main_pid();
    let root = tempfile::tempdir().expect("proc root");
    let proc_dir = root.path().join(pid.to_string());
    std::fs::create_dir(&proc_dir).expect("pid dir");
    std::fs::write(
        proc_dir.join("environ"),
        b"PATH=/usr/bin\0OLLAMA_NUM_PARALLEL=2\0",
    )
    .expect("environ");
    assert!(!process_env(pid).contains_key("OLLAMA_NUM_PARALLEL"));
    let mut tuner = rig.tuner_with_proc(TunerMode::Apply, 0, 0, 100, root.path());
    applied_without_restart(
        &rig,
        &mut tuner,
        pid,
        "restarted: /proc was read, not proc_root",
    )
    .await;
}

/// Not an assertion: prints where an apply's time goes, over several runs.
async fn bench_decision_to_verified_applied() {
    let rig = Rig::start("");
    rig.start_unit();
    let snap = Snapshot::default();
    let mut tuner = rig.tuner(TunerMode::Apply, 0, 0, 1000);
    let mut rows: Vec<Timings> = Vec::new();
    for i in 0..8u64 {
        let n = (2 + i % 2).to_string();
        tuner.on_tick(
            T0 + i * MIN,
            &snap,
            Some(&decision(&[("OLLAMA_NUM_PARALLEL", &n)])),
        );
        let r = applied(&mut tuner).await;
        rows.push(r.timings);
    }
    println!("\ntuner apply, decision to verified (ms), systemd --user + stand-in Ollama:");
    println!(
        "run | write+fsync | reload | restart job (systemd) | verify (incl. start-up) | last check | total | agent's own"
    );
    for (i, t) in rows.iter().enumerate() {
        println!(
            "{:>3} | {:>11.2} | {:>6.2} | {:>21.2} | {:>23.2} | {:>10.2} | {:>5.1} | {:>11.2}",
            i + 1,
            t.write_ms,
            t.reload_ms,
            t.job_ms,
            t.verify_ms,
            t.verify_check_ms,
            t.total_ms,
            t.agent_ms
        );
    }
    let mut agent: Vec<f64> = rows.iter().map(|t| t.agent_ms).collect();
    agent.sort_by(f64::total_cmp);
    println!(
        "agent's own time: median {:.2} ms, max {:.2} ms",
        agent[agent.len() / 2],
        agent[agent.len() - 1]
    );
}
