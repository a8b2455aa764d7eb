//! `[tuner.resources]` on the tuner's tick. What systemd holds is read over D-Bus
//! (`unit_limits`, then `DropInPaths` and the later drop-ins), off the tick loop, only when it
//! can have changed: at start, after each change of ours, when systemd announces a reload or a
//! change of the unit's state (`UnitChanges`), and every `READ_FALLBACK`. The fallback is short
//! because one change is never signalled: an operator's `systemctl set-property` (the
//! resource-control properties carry no change flag, and busctl monitor shows no
//! `PropertiesChanged` for it), and the tuner puts a managed limit back within that time. Each tick the limits wanted (`auto::resolve`)
//! are compared with the last read. Observe mode journals and logs what it would set and why, and touches nothing. Apply mode
//! asks the same gate as the environment keys (settle, `restart_when`, the rollback backoff;
//! cooldown and the daily cap count restarts, which a live limit change never causes) and, on
//! go, runs `LimitsApplier` in a task whose report comes back on a later tick.
//!
//! A limit an operator's drop-in sets after ours (the scan of `apply::operator`, reported once
//! by the tuner) is left alone: not decided, set or persisted, and dropped from our drop-in so
//! ours does not put it back at the next reload. When that file no longer sets it, the key is
//! managed again (set live if systemd holds another value, persisted either way).
//!
//! After a rollback the same limits are not tried again until the wanted limits or the host
//! (GPU count and memory, RAM) change, or `ROLLBACK_BACKOFF` (24 h) has passed: the gate's
//! rule, fed with the limits as `key -> value`. An agent restart keeps it (rebuilt from the
//! journal, host unknown, so by time alone).

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use super::apply::{LimitsApplier, LimitsReport};
use super::auto::Wanted;
use super::limits::{self, Limits, as_env};
use crate::rules::event::AlertEvent;
use crate::sys::systemd::{ReadClock, UnitChanges, ensure_watch};
use crate::tuner::apply::journal::{self, ActionResult, Entry, Event};
use crate::tuner::apply::operator::{self, Overrides};
use crate::tuner::config::{TunerConfig, TunerMode};
use crate::tuner::gate::{Gate, GateInput, HostFingerprint, RestartWindow, Verdict};

/// The read's cadence when no signal asks for one: an operator's `systemctl set-property` (not
/// signalled), a missed signal, a manager whose signals cannot be received. One read (about 20
/// D-Bus calls) per 10 s instead of one per tick.
const READ_FALLBACK: Duration = Duration::from_secs(10);

enum Outcome {
    /// What systemd holds, every key, and what later drop-ins set, read after the limits (so a
    /// daemon-reload that brought an operator's value in is never seen without its file).
    Held(Result<(Limits, Overrides), String>),
    Report(Box<LimitsReport>),
}

/// One tick's inputs.
pub struct LimitsTick<'a> {
    pub now_ms: u64,
    pub cfg: &'a TunerConfig,
    pub window: Option<RestartWindow>,
    pub host: &'a HostFingerprint,
    pub wanted: &'a Wanted,
    /// The idle judgement, for `restart_when = "idle"`.
    pub idle: (bool, String),
}

/// Config key -> the operator's file that sets its directive after ours. The scan is the one
/// the tuner reports from (log, journal, alert, once per version of the file); this driver
/// reads it again with each read of the limits and only acts on it.
fn taken(operator: &Overrides) -> std::collections::BTreeMap<String, String> {
    operator
        .iter()
        .filter_map(|(d, o)| Some((limits::key_of(d)?.to_owned(), o.path.clone())))
        .collect()
}

pub struct LimitsDriver {
    applier: Arc<LimitsApplier>,
    gate: Gate,
    /// What systemd held at the last read; `None` until read (and after a change).
    held: Option<Limits>,
    /// The later drop-ins found by the same read.
    held_overrides: Overrides,
    read_error: Option<String>,
    /// Moved by systemd's signals for the unit (shared with the tuner's drop-in scan).
    changes: Arc<UnitChanges>,
    /// When the last read started, and the change count it started at.
    read_clock: ReadClock,
    task: Option<JoinHandle<Outcome>>,
    /// The task changes the unit (an apply or a reconcile), not only reads it.
    changing: bool,
    task_after: Limits,
    task_host: HostFingerprint,
    task_started_ms: u64,
    last_id: u64,
    last_journaled: Option<(Limits, String)>,
    /// Keys an operator's drop-in sets after ours (config key -> file), as of the last tick.
    taken: std::collections::BTreeMap<String, String>,
    /// The taken keys changed: our drop-in is rewritten with the managed keys at the next
    /// tick that finds systemd holding what is wanted (an apply rewrites it anyway).
    resync: bool,
    /// The last verdict, for `hostwarden status`.
    pub last_verdict: Option<String>,
    /// Results to count, and alerts to raise, since the tuner last took them.
    results: Vec<ActionResult>,
    alerts: Vec<AlertEvent>,
}

impl LimitsDriver {
    /// Rebuilds the rollback backoff from the journal and (in either mode) starts reconciling a
    /// change the agent died in.
    pub fn new(
        applier: LimitsApplier,
        entries: &[Entry],
        changes: Arc<UnitChanges>,
    ) -> LimitsDriver {
        let mut d = LimitsDriver {
            applier: Arc::new(applier),
            gate: Gate::default(),
            held: None,
            held_overrides: Overrides::new(),
            read_error: None,
            changes,
            read_clock: ReadClock::new(READ_FALLBACK),
            task: None,
            changing: false,
            task_after: Limits::new(),
            task_host: HostFingerprint::default(),
            task_started_ms: 0,
            last_id: 0,
            last_journaled: None,
            taken: std::collections::BTreeMap::new(),
            resync: false,
            last_verdict: None,
            results: Vec::new(),
            alerts: Vec::new(),
        };
        let mut started = std::collections::BTreeMap::new();
        for e in entries {
            match &e.event {
                Event::LimitsStarted { id, after, .. } => {
                    d.last_id = d.last_id.max(*id);
                    started.insert(*id, after.clone());
                }
                Event::LimitsFinished {
                    id,
                    result: ActionResult::RolledBack | ActionResult::RollbackFailed,
                    ..
                } => {
                    if let Some(after) = started.get(id) {
                        d.gate
                            .record_rollback(as_env(after), HostFingerprint::default(), e.at_ms);
                    }
                }
                _ => {}
            }
        }
        if let Some(s) = journal::unfinished_limits(entries).cloned() {
            warn!(unit = %d.applier.unit, "The journal shows a limits change the agent did not finish; reconciling.");
            if let Event::LimitsStarted { after, .. } = &s.event {
                d.task_after = after.clone();
            }
            let a = Arc::clone(&d.applier);
            d.changing = true;
            d.task = Some(tokio::spawn(async move {
                match a.reconcile(&s).await {
                    Some(r) => Outcome::Report(Box::new(r)),
                    None => Outcome::Held(Err("not a limits change".to_owned())),
                }
            }));
        }
        d
    }

    pub fn applier(&self) -> &LimitsApplier {
        &self.applier
    }

    /// Swaps the applier (another cgroup root); only between changes.
    pub fn set_applier(&mut self, applier: LimitsApplier) {
        if self.task.is_none() {
            self.applier = Arc::new(applier);
        }
    }

    pub fn busy(&self) -> bool {
        self.task.is_some()
    }

    /// True while a change (or its reconcile) runs: the environment apply waits, since its
    /// restart would read as a failure of the limits under watch.
    pub fn changing(&self) -> bool {
        self.changing
    }

    /// Results of finished changes and their alerts since the last call.
    pub fn take(&mut self) -> (Vec<ActionResult>, Vec<AlertEvent>) {
        (
            std::mem::take(&mut self.results),
            std::mem::take(&mut self.alerts),
        )
    }

    /// Waits for a running change or read to end (tests and shutdown).
    pub async fn settle_task(&mut self) -> Option<LimitsReport> {
        let task = self.task.take()?;
        self.changing = false;
        let outcome = task.await.ok()?;
        self.absorb(outcome)
    }

    fn absorb(&mut self, outcome: Outcome) -> Option<LimitsReport> {
        match outcome {
            Outcome::Held(Ok((l, o))) => {
                self.held = Some(l);
                self.held_overrides = o;
                self.read_error = None;
                None
            }
            Outcome::Held(Err(e)) => {
                if self.read_error.as_ref() != Some(&e) {
                    warn!(unit = %self.applier.unit, error = %e, "Cannot read the unit's limits; [tuner.resources] waits.");
                }
                self.held = None;
                self.read_error = Some(e);
                None
            }
            Outcome::Report(r) => {
                if matches!(
                    r.result,
                    ActionResult::RolledBack | ActionResult::RollbackFailed
                ) {
                    self.gate.record_rollback(
                        as_env(&self.task_after),
                        self.task_host.clone(),
                        self.task_started_ms,
                    );
                }
                self.results.push(r.result);
                self.alerts.extend(r.alert.clone());
                // Read again before the next decision.
                self.held = None;
                Some(*r)
            }
        }
    }

    /// One tick: take a finished read or change, decide, maybe start a change. Never waits.
    /// `env_busy`: an environment apply runs (its restart would fail the watch): decide nothing.
    pub fn on_tick(&mut self, t: &LimitsTick, env_busy: bool) {
        if let Some(task) = self.task.as_mut()
            && task.is_finished()
        {
            let outcome = task.now_or_never().and_then(Result::ok);
            self.task = None;
            self.changing = false;
            if let Some(o) = outcome {
                self.absorb(o);
            }
        }
        if self.task.is_some() || t.cfg.resources.is_empty() || env_busy {
            return;
        }
        let Some(held) = self.held.clone() else {
            self.spawn_read(None);
            return;
        };
        let taken = taken(&self.held_overrides);
        if taken != self.taken {
            for (k, path) in &taken {
                if self.taken.get(k) != Some(path) {
                    info!(unit = %self.applier.unit, key = %k, file = %path, "Tuner leaves this limit to the operator's drop-in: not set, not persisted.");
                }
            }
            for k in self.taken.keys().filter(|k| !taken.contains_key(*k)) {
                info!(unit = %self.applier.unit, key = %k, "No later drop-in sets this limit any more; the tuner manages it again.");
            }
            self.taken = taken;
            self.resync = true;
        }
        let mut desired = t.wanted.limits.clone();
        desired.retain(|k, _| !self.taken.contains_key(k));
        let current: Limits = desired
            .keys()
            .filter_map(|k| Some((k.clone(), held.get(k)?.clone())))
            .collect();
        let verdict = if t.cfg.mode == TunerMode::Observe {
            if desired == current {
                Verdict::NoChange
            } else {
                Verdict::Wait(format!(
                    "observe mode: would set {}; the unit is not touched",
                    limits::show(&desired)
                ))
            }
        } else {
            let (want, have) = (as_env(&desired), as_env(&current));
            let input = GateInput {
                now_ms: t.now_ms,
                desired: &want,
                current: &have,
                host: t.host,
                local_minute: crate::tuner::gate::local_minute_of_day(
                    i64::try_from(t.now_ms / 1000).unwrap_or(0),
                ),
                idle: t.idle.clone(),
            };
            self.gate.evaluate(t.cfg, t.window, &input)
        };
        self.journal_decision(t, &desired, &current, &verdict);
        match verdict {
            Verdict::Go(why) => {
                self.resync = false;
                self.spawn_apply(t, current, desired, why);
            }
            Verdict::NoChange if self.resync && t.cfg.mode == TunerMode::Apply => {
                self.resync = false;
                self.spawn_read(Some(desired));
            }
            // A wait needs no fresh read each tick either: whatever could change what systemd
            // holds is signalled, and an apply reads the unit again before it sets anything.
            _ if self.read_clock.due(&self.changes) => self.spawn_read(None),
            _ => {}
        }
    }

    /// Journals when the wish or the kind of verdict changes (the text before its first
    /// number), as the environment's decisions are.
    fn journal_decision(
        &mut self,
        t: &LimitsTick,
        desired: &Limits,
        current: &Limits,
        v: &Verdict,
    ) {
        let text = match v {
            Verdict::NoChange => "no change: the unit has the wanted limits".to_owned(),
            Verdict::Wait(r) => format!("wait: {r}"),
            Verdict::Go(r) => format!("apply: {r}"),
        };
        let left: Vec<String> = self
            .taken
            .iter()
            .map(|(k, path)| format!("{k} left to {path}"))
            .collect();
        let left = if left.is_empty() {
            String::new()
        } else {
            format!(" ({})", left.join(", "))
        };
        self.last_verdict = Some(format!("limits {}: {text}{left}", limits::show(desired)));
        let key: String = text.chars().take_while(|c| !c.is_ascii_digit()).collect();
        if self.last_journaled.as_ref() == Some(&(desired.clone(), key.clone())) {
            return;
        }
        let reasons = &t.wanted.reasons;
        info!(unit = %self.applier.unit, desired = %limits::show(desired), current = %limits::show(current), verdict = %text, reasons = ?reasons, "Tuner limits decision.");
        if t.cfg.mode == TunerMode::Observe && *v != Verdict::NoChange {
            self.results.push(ActionResult::Skipped);
        }
        self.applier.journal(Event::LimitsDecision {
            desired: desired.clone(),
            current: current.clone(),
            reasons: reasons.clone(),
            verdict: text,
        });
        self.last_journaled = Some((desired.clone(), key));
    }

    /// Reads what systemd holds; with `persist`, first makes our drop-in hold exactly those
    /// limits (systemd holds them already: the verdict was no change).
    fn spawn_read(&mut self, persist: Option<Limits>) {
        let a = Arc::clone(&self.applier);
        let changes = Arc::clone(&self.changes);
        self.read_clock.started(&changes);
        self.task = Some(tokio::spawn(async move {
            if let Some(l) = persist {
                a.persist(&l);
            }
            // Watched before the read, so a change after it is seen (a no-op once it runs).
            ensure_watch(
                a.mgr.as_ref(),
                &a.unit,
                &changes,
                "the limits read (every 10 s)",
            )
            .await;
            let held = match a.mgr.unit_limits(&a.unit).await {
                Ok(l) => limits::all_from_dbus(&l),
                Err(e) => return Outcome::Held(Err(e.to_string())),
            };
            let paths = match a.mgr.unit_status(&a.unit).await {
                Ok(s) => s.drop_in_paths,
                Err(e) => return Outcome::Held(Err(e.to_string())),
            };
            match tokio::task::spawn_blocking(move || operator::scan(&paths)).await {
                Ok(scan) => Outcome::Held(Ok((held, scan.overrides))),
                Err(e) => Outcome::Held(Err(e.to_string())),
            }
        }));
    }

    fn spawn_apply(&mut self, t: &LimitsTick, before: Limits, after: Limits, why: String) {
        let decided = Instant::now();
        let id = t.now_ms.max(self.last_id + 1);
        self.last_id = id;
        self.task_after = after.clone();
        self.task_host = t.host.clone();
        self.task_started_ms = t.now_ms;
        let a = Arc::clone(&self.applier);
        self.changing = true;
        self.task = Some(tokio::spawn(async move {
            Outcome::Report(Box::new(a.apply(id, before, after, why, decided).await))
        }));
    }
}
