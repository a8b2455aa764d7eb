//! The tuner as the runtime sees it: `on_tick` takes the policy's decision, runs the gate, and
//! spawns the apply (or the `/api/ps` poll the idle judgement needs) off the tick loop, so a
//! minute-long verification never delays collection. Results come back on a later tick.

mod decide;
mod limits;
mod operator;

pub use decide::fingerprint;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::collectors::ollama::OllamaConfig;
use crate::model::{AttrKey, Attrs, MetricName, MetricPoint, Snapshot};
use crate::rules::event::AlertEvent;
use crate::sys::ollama::{Api, ApiError};
use crate::sys::proc::ProcReader;
use crate::sys::systemd::{ReadClock, SystemdClient, UnitChanges, UnitManager};
use crate::sys::time::wall_ms;
use crate::tuner::apply::dropin::{self, DropinPath, Env};
use crate::tuner::apply::journal::{self, ActionResult, Entry, Event, Journal};
use crate::tuner::apply::operator::{Overrides, Scan};
use crate::tuner::apply::{Applier, ApplyReport, show};
use crate::tuner::config::TunerConfig;
use crate::tuner::gate::idle::PsObservation;
use crate::tuner::gate::{Gate, HostFingerprint, RestartWindow};
use crate::tuner::policy::decision::Decision;

/// Deadline of the idle check's `/api/ps` poll.
const PS_POLL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TunerError {
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Ollama(#[from] ApiError),
}

/// What a spawned apply (or reconcile) brings back: its report, and the drop-in scan an apply
/// makes first.
#[derive(Default)]
struct TaskOutcome {
    scan: Option<Scan>,
    report: Option<ApplyReport>,
}

#[derive(Default)]
struct Counts {
    applied: u64,
    rolled_back: u64,
    skipped: u64,
}

pub struct Tuner {
    cfg: TunerConfig,
    window: Option<RestartWindow>,
    applier: Arc<Applier>,
    gate: Gate,
    /// What our drop-in holds (adopted at start, then what the last apply left in force).
    current: Env,
    task: Option<JoinHandle<TaskOutcome>>,
    /// The tick time the running task started at: its restarts count from then (the injected
    /// clock, so tests can drive cooldown and the cap).
    task_started_ms: u64,
    ps_task: Option<JoinHandle<PsObservation>>,
    ps: (Option<PsObservation>, Option<PsObservation>),
    last_cpu: Option<(u64, f64)>,
    /// The host when the running apply started (a rollback remembers it).
    last_host: HostFingerprint,
    /// The env the running apply tries.
    task_env: Env,
    /// The highest apply id in the journal.
    last_id: u64,
    last_journaled: Option<(Env, String)>,
    counts: Counts,
    alerts: Vec<AlertEvent>,
    /// Keys a drop-in sorting after ours sets, as last reported.
    overrides: Overrides,
    scan_task: Option<JoinHandle<Option<Scan>>>,
    /// When the drop-ins were last scanned (scans follow systemd's change signals).
    scan_clock: ReadClock,
    /// Moved by systemd's signals for the unit; shared with the limits driver.
    changes: Arc<UnitChanges>,
    /// Scan problems already logged (each once).
    scan_problems: std::collections::BTreeSet<String>,
    /// `[tuner.resources]`: the unit's limits, driven from `limits_tick`.
    limits: crate::tuner::resources::drive::LimitsDriver,
    /// Ollama's CPU use in cores at the last tick (the idle judgement of `limits_tick`).
    last_cores: Option<f64>,
}

impl Tuner {
    /// A tuner talking to systemd on `[tuner] bus`.
    pub fn from_config(
        tuner: &TunerConfig,
        ollama: &OllamaConfig,
        state_dir: &std::path::Path,
        proc_root: &std::path::Path,
    ) -> Result<Tuner, TunerError> {
        Tuner::new(
            tuner,
            ollama,
            state_dir,
            proc_root,
            Arc::new(SystemdClient::new(&tuner.bus)),
        )
    }

    /// Opens the journal, adopts an existing drop-in, restores cooldown and cap history, and (in
    /// either mode) starts reconciling an apply the agent died in. Call inside a tokio runtime.
    pub fn new(
        tuner: &TunerConfig,
        ollama: &OllamaConfig,
        state_dir: &std::path::Path,
        proc_root: &std::path::Path,
        mgr: Arc<dyn UnitManager>,
    ) -> Result<Tuner, TunerError> {
        let (journal, entries) = Journal::open(state_dir)?;
        let journal = Arc::new(Mutex::new(journal));
        let changes = UnitChanges::new();
        let limits = crate::tuner::resources::drive::LimitsDriver::new(
            crate::tuner::resources::apply::LimitsApplier {
                mgr: Arc::clone(&mgr),
                unit: ollama.unit.clone(),
                dropin_dir: tuner.dropin_dir.join(format!("{}.d", ollama.unit)),
                proc_root: proc_root.to_path_buf(),
                cgroup_root: std::path::PathBuf::from("/sys/fs/cgroup"),
                verify_timeout: tuner.verify_timeout,
                journal: Arc::clone(&journal),
            },
            &entries,
            Arc::clone(&changes),
        );
        let applier = Arc::new(Applier {
            mgr,
            unit: ollama.unit.clone(),
            dropin: DropinPath::new(&tuner.dropin_dir, &ollama.unit),
            // Not under a collector's deadline: the configured value or the default.
            ollama: Api::new(&ollama.url, ollama.probe_timeout_within(Duration::MAX))?,
            verify_timeout: tuner.verify_timeout,
            proc: ProcReader::new(proc_root),
            journal,
        });
        let mut t = Tuner {
            cfg: tuner.clone(),
            window: RestartWindow::parse(&tuner.window).ok(),
            applier,
            gate: Gate::default(),
            current: Env::new(),
            task: None,
            task_started_ms: wall_ms(),
            ps_task: None,
            ps: (None, None),
            last_cpu: None,
            last_host: HostFingerprint::default(),
            task_env: Env::new(),
            last_id: 0,
            last_journaled: None,
            counts: Counts::default(),
            alerts: Vec::new(),
            overrides: Overrides::new(),
            scan_task: None,
            scan_clock: ReadClock::new(operator::SCAN_FALLBACK),
            changes,
            scan_problems: std::collections::BTreeSet::new(),
            limits,
            last_cores: None,
        };
        t.restore_history(&entries);
        t.restore_overrides(&entries);
        t.adopt();
        // In observe mode too: the half-done change is the agent's own, from when it applied,
        // and leaving it half done is worse than either finishing or undoing it.
        if let Some(started) = journal::unfinished(&entries).cloned() {
            warn!(unit = %t.applier.unit, "The journal shows an apply the agent did not finish; reconciling.");
            if let Event::ApplyStarted { after, .. } = &started.event {
                t.task_env = after.clone();
            }
            let a = Arc::clone(&t.applier);
            t.task = Some(tokio::spawn(async move {
                TaskOutcome {
                    scan: None,
                    report: a.reconcile(&started).await,
                }
            }));
        }
        Ok(t)
    }

    /// Takes the config of a reload (the journal and gate memory stay).
    pub fn reconfigure(&mut self, tuner: &TunerConfig) {
        self.window = RestartWindow::parse(&tuner.window).ok();
        self.cfg = tuner.clone();
    }

    fn restore_history(&mut self, entries: &[Entry]) {
        let mut started: BTreeMap<u64, (u64, Env)> = BTreeMap::new();
        for e in entries {
            match &e.event {
                Event::ApplyStarted { id, after, .. } => {
                    self.last_id = self.last_id.max(*id);
                    started.insert(*id, (e.at_ms, after.clone()));
                }
                Event::ApplyFinished {
                    id,
                    result,
                    restarts,
                    ..
                } => {
                    for _ in 0..*restarts {
                        self.gate.record_restart(e.at_ms);
                    }
                    if matches!(
                        result,
                        ActionResult::RolledBack | ActionResult::RollbackFailed
                    ) && let Some((_, env)) = started.get(id)
                    {
                        // The host then is unknown: back off by time alone.
                        self.gate
                            .record_rollback(env.clone(), HostFingerprint::default(), e.at_ms);
                    }
                }
                _ => {}
            }
        }
    }

    fn adopt(&mut self) {
        match self.applier.dropin.read() {
            Ok(Some(text)) => match dropin::parse(&text) {
                Ok(env) => {
                    info!(file = %self.applier.dropin.file.display(), env = %show(&env), "Adopted the tuner drop-in of an earlier run.");
                    self.applier.journal(Event::Adopted { env: env.clone() });
                    self.current = env;
                }
                Err(e) => {
                    warn!(file = %self.applier.dropin.file.display(), error = %e, "Drop-in is not one hostwarden wrote; it will be replaced (and restored on rollback).")
                }
            },
            Ok(None) => {}
            Err(e) => warn!(error = %e, "Cannot read the tuner drop-in."),
        }
    }

    /// The newest `n` journal entries, oldest first (for `hostwarden status`).
    pub fn last_actions(&self, n: usize) -> Vec<Entry> {
        self.applier
            .journal
            .lock()
            .map(|j| j.last(n))
            .unwrap_or_default()
    }

    /// Critical alerts raised since the last call (rollbacks), for the rules' outbox.
    pub fn take_alerts(&mut self) -> Vec<AlertEvent> {
        std::mem::take(&mut self.alerts)
    }

    /// True while an apply or reconcile runs.
    pub fn busy(&self) -> bool {
        self.task.is_some()
    }

    /// Waits for a running apply to end and takes its report (tests and shutdown).
    pub async fn settle_task(&mut self) -> Option<ApplyReport> {
        let task = self.task.take()?;
        let outcome = task.await.unwrap_or_default();
        self.scan_clock.force();
        if let Some(scan) = outcome.scan {
            self.note_scan(scan);
        }
        let report = outcome.report;
        if let Some(r) = &report {
            let host = self.last_host.clone();
            self.absorb(r.clone(), Some(&host), self.task_started_ms);
        }
        report
    }

    fn absorb(&mut self, r: ApplyReport, host: Option<&HostFingerprint>, at_ms: u64) {
        for _ in &r.restarts_ms {
            self.gate.record_restart(at_ms);
        }
        match r.result {
            ActionResult::Applied => self.counts.applied += 1,
            ActionResult::RolledBack | ActionResult::RollbackFailed => {
                self.counts.rolled_back += 1;
                let tried = self.task_env.clone();
                self.gate
                    .record_rollback(tried, host.cloned().unwrap_or_default(), at_ms);
            }
            ActionResult::Skipped => self.counts.skipped += 1,
        }
        self.current = r.in_force;
        self.alerts.extend(r.alert);
    }

    /// One tick: collect a finished apply, gate the decision, maybe start an apply. Returns
    /// the tuner's metric points for the snapshot. Never waits on systemd or Ollama.
    pub fn on_tick(
        &mut self,
        now_ms: u64,
        snap: &Snapshot,
        decision: Option<&Decision>,
    ) -> Vec<MetricPoint> {
        let host = fingerprint(snap);
        if let Some(task) = self.task.as_mut()
            && task.is_finished()
        {
            let outcome = task.now_or_never().and_then(Result::ok).unwrap_or_default();
            self.task = None;
            // Our apply reloaded the manager: see what the unit's drop-ins are now.
            self.scan_clock.force();
            if let Some(scan) = outcome.scan {
                self.note_scan(scan);
            }
            if let Some(r) = outcome.report {
                let started_host = self.last_host.clone();
                self.absorb(r, Some(&started_host), self.task_started_ms);
            }
        }
        if let Some(p) = self.ps_task.as_mut()
            && p.is_finished()
        {
            if let Some(Ok(obs)) = p.now_or_never() {
                self.ps = (self.ps.1.take(), Some(obs));
            }
            self.ps_task = None;
        }
        if let Some(p) = self.scan_task.as_mut()
            && p.is_finished()
        {
            if let Some(Ok(Some(scan))) = p.now_or_never() {
                self.note_scan(scan);
            }
            self.scan_task = None;
        }
        if self.task.is_none() {
            self.start_scan();
        }
        let cpu = self.ollama_cpu(now_ms, snap);
        self.last_cores = cpu;
        // A limits change under watch would read the restart as its own failure: wait for it.
        if let (Some(d), None, false) = (decision, &self.task, self.limits.changing()) {
            self.gate_and_apply(now_ms, snap, d, &host, cpu);
        }
        self.points()
    }

    fn points(&self) -> Vec<MetricPoint> {
        [
            ("applied", self.counts.applied),
            ("rolled_back", self.counts.rolled_back),
            ("skipped", self.counts.skipped),
        ]
        .into_iter()
        .map(|(r, n)| {
            MetricPoint::new(
                MetricName::HostwardenTunerActions,
                Attrs::new().with(AttrKey::HostwardenTunerResult, r),
                n,
            )
        })
        .collect()
    }
}
