//! The apply path: journal, write the drop-in atomically, reload, restart and wait for the job,
//! verify; on any failure restore the previous drop-in, reload, restart, verify again and raise
//! a critical alert. Also the reconcile run at start for an apply the agent died in.

pub mod dropin;
mod error;
pub mod journal;
pub mod operator;
mod reconcile;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::rules::event::{AlertEvent, AlertState, Severity};
use crate::sys::ollama::Api;
use crate::sys::proc::ProcReader;
use crate::sys::systemd::UnitManager;
use crate::sys::time::{millis_f64 as ms, wall_ms};
use dropin::{DropinPath, Env};
pub use error::ApplyError;
use journal::{ActionResult, Event, Journal, Timings};

/// Pause between two verification rounds while the service starts.
const VERIFY_POLL: Duration = Duration::from_millis(50);

/// Everything an apply needs, shared with the spawned task.
pub struct Applier {
    pub mgr: Arc<dyn UnitManager>,
    pub unit: String,
    pub dropin: DropinPath,
    /// Ollama's API, for the verify probe (`HEAD /`).
    pub ollama: Api,
    pub verify_timeout: Duration,
    /// `[host] proc_root`: in a container the unit's MainPID is a host PID, visible only there.
    pub proc: ProcReader,
    pub journal: Arc<Mutex<Journal>>,
}

/// How an apply (or a reconcile) ended.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    pub id: u64,
    pub result: ActionResult,
    pub detail: String,
    /// The env our drop-in holds now.
    pub in_force: Env,
    /// Restarts caused, with their wall times (they count against cooldown and the cap).
    pub restarts_ms: Vec<u64>,
    pub timings: Timings,
    /// The critical alert raised on a rollback.
    pub alert: Option<AlertEvent>,
}

pub(super) struct Verified {
    took: Duration,
    last_check: Duration,
}

impl Applier {
    pub fn journal(&self, event: Event) {
        journal::record(&self.journal, &self.unit, event);
    }

    /// Checks until `verify_timeout`: the unit is active, its Environment holds `want`, and
    /// Ollama answers `HEAD /`. Fails at once when the unit lands in `failed`.
    pub(super) async fn verify(&self, want: &Env) -> Result<Verified, ApplyError> {
        let started = Instant::now();
        let deadline = started + self.verify_timeout;
        loop {
            let round = Instant::now();
            let last;
            match self.mgr.unit_status(&self.unit).await {
                Err(e) => last = e.to_string(),
                Ok(s) if s.active_state == "failed" => {
                    return Err(ApplyError::UnitFailed {
                        unit: self.unit.clone(),
                        sub_state: s.sub_state,
                        exit_status: s.exec_main_status,
                    });
                }
                Ok(s) if !s.is_active() => {
                    last = format!("{} is {} ({})", self.unit, s.active_state, s.sub_state);
                }
                Ok(s) => {
                    let env = s.env_map();
                    let mut missing: Vec<String> = want
                        .iter()
                        .filter(|(k, v)| env.get(*k) != Some(*v))
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    if !missing.is_empty() {
                        // A key a later drop-in sets is the operator's, not ours to verify.
                        let theirs = operator::scan(&s.drop_in_paths).overrides;
                        missing.retain(|kv| {
                            kv.split_once('=')
                                .is_none_or(|(k, _)| !theirs.contains_key(k))
                        });
                    }
                    if !missing.is_empty() {
                        last = format!("Environment of {} lacks {}", self.unit, missing.join(" "));
                    } else {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match self.ollama.head_status(left).await {
                            Ok(status) if status < 500 => {
                                return Ok(Verified {
                                    took: started.elapsed(),
                                    last_check: round.elapsed(),
                                });
                            }
                            Ok(status) => last = format!("Ollama answered HEAD / with {status}"),
                            Err(e) => last = format!("Ollama did not answer: {e}"),
                        }
                    }
                }
            }
            if Instant::now() + VERIFY_POLL >= deadline {
                return Err(ApplyError::NotVerified {
                    within: self.verify_timeout,
                    last,
                });
            }
            tokio::time::sleep(VERIFY_POLL).await;
        }
    }

    /// Whether the running main process already has exactly `want` for every allowlisted key
    /// no later drop-in overrides (read from PROC_ROOT/MAINPID/environ; unreadable means no).
    async fn running_has(&self, want: &Env) -> bool {
        let Ok(s) = self.mgr.unit_status(&self.unit).await else {
            return false;
        };
        if !s.is_active() || s.main_pid == 0 {
            return false;
        }
        let Ok(raw) = self.proc.environ(s.main_pid).await else {
            return false;
        };
        let env: Env = raw
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let theirs = operator::scan(&s.drop_in_paths).overrides;
        dropin::ALLOWED_KEYS
            .iter()
            .filter(|k| !theirs.contains_key(**k))
            .all(|k| env.get(*k) == want.get(*k))
    }

    /// Reload, restart and wait for the job; the job's result must be `done`.
    async fn reload_restart(&self, t: &mut Timings) -> Result<(), ApplyError> {
        let r = Instant::now();
        self.mgr.daemon_reload().await?;
        t.reload_ms += ms(r.elapsed());
        let job = self.mgr.restart(&self.unit, self.verify_timeout).await?;
        t.job_ms += ms(job.took);
        if job.result != "done" {
            return Err(ApplyError::JobFailed {
                unit: self.unit.clone(),
                result: job.result,
            });
        }
        Ok(())
    }

    /// Applies `after`, rolling back on any failure. `before` is the env our drop-in held.
    pub async fn apply(&self, id: u64, before: Env, after: Env, why_now: String) -> ApplyReport {
        let total = Instant::now();
        let mut t = Timings::default();
        let mut restarts_ms = Vec::new();
        let previous = match self.dropin.read() {
            Ok(p) => p,
            Err(e) => return self.refused(id, before, e.to_string()),
        };
        self.journal(Event::ApplyStarted {
            id,
            before: before.clone(),
            after: after.clone(),
            previous_dropin: previous.clone(),
            why_now,
        });
        let attempt = async {
            let w = Instant::now();
            let body = dropin::render(&after)?;
            let running = self.running_has(&after).await;
            self.dropin.write(&body)?;
            t.write_ms = ms(w.elapsed());
            if running {
                // The process already runs with exactly these values: record them in the
                // drop-in, but a restart would only unload models.
                let r = Instant::now();
                self.mgr.daemon_reload().await?;
                t.reload_ms = ms(r.elapsed());
            } else {
                restarts_ms.push(wall_ms());
                self.reload_restart(&mut t).await?;
            }
            self.verify(&after).await
        };
        match attempt.await {
            Ok(v) => {
                t.verify_ms = ms(v.took);
                t.verify_check_ms = ms(v.last_check);
                t.total_ms = ms(total.elapsed());
                t.agent_ms =
                    t.total_ms - t.reload_ms - t.job_ms - (t.verify_ms - t.verify_check_ms);
                let detail = if restarts_ms.is_empty() {
                    format!(
                        "{} already ran with {}; drop-in written, no restart",
                        self.unit,
                        show(&after)
                    )
                } else {
                    format!("{} verified with {}", self.unit, show(&after))
                };
                info!(unit = %self.unit, env = %show(&after), total_ms = t.total_ms, agent_ms = t.agent_ms, "Tuner applied a change.");
                self.finish(
                    id,
                    ActionResult::Applied,
                    detail,
                    after,
                    restarts_ms,
                    t,
                    None,
                )
            }
            Err(failure) => {
                warn!(unit = %self.unit, error = %failure, "Tuner change failed; rolling back.");
                restarts_ms.push(wall_ms());
                let (result, detail, in_force) = self
                    .roll_back(previous.as_deref(), &before, &failure, &mut t)
                    .await;
                t.total_ms = ms(total.elapsed());
                let alert = self.alert(&after, &detail);
                self.finish(id, result, detail, in_force, restarts_ms, t, Some(alert))
            }
        }
    }

    /// Puts `previous` back and verifies the unit with `before`.
    pub(super) async fn roll_back(
        &self,
        previous: Option<&str>,
        before: &Env,
        failure: &ApplyError,
        t: &mut Timings,
    ) -> (ActionResult, String, Env) {
        let outcome = async {
            self.dropin.restore(previous)?;
            self.reload_restart(t).await?;
            self.verify(before).await
        };
        match outcome.await {
            Ok(_) => (
                ActionResult::RolledBack,
                format!(
                    "{failure}; previous drop-in restored and {} active again",
                    self.unit
                ),
                before.clone(),
            ),
            Err(e) => {
                error!(unit = %self.unit, error = %e, "Tuner rollback failed; Ollama needs an operator.");
                (
                    ActionResult::RollbackFailed,
                    format!("{failure}; rollback failed too: {e}"),
                    before.clone(),
                )
            }
        }
    }

    fn refused(&self, id: u64, before: Env, why: String) -> ApplyReport {
        error!(unit = %self.unit, error = %why, "Tuner cannot read its drop-in; nothing changed.");
        ApplyReport {
            id,
            result: ActionResult::Skipped,
            detail: why,
            in_force: before,
            restarts_ms: Vec::new(),
            timings: Timings::default(),
            alert: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish(
        &self,
        id: u64,
        result: ActionResult,
        detail: String,
        in_force: Env,
        restarts_ms: Vec<u64>,
        timings: Timings,
        alert: Option<AlertEvent>,
    ) -> ApplyReport {
        self.journal(Event::ApplyFinished {
            id,
            result,
            detail: detail.clone(),
            restarts: u32::try_from(restarts_ms.len()).unwrap_or(u32::MAX),
            timings: timings.clone(),
        });
        ApplyReport {
            id,
            result,
            detail,
            in_force,
            restarts_ms,
            timings,
            alert,
        }
    }

    pub(super) fn alert(&self, tried: &Env, detail: &str) -> AlertEvent {
        rollback_alert(
            &self.unit,
            ActionResult::RolledBack,
            format!(
                "Ollama tuner rolled back {} on {}: {detail}",
                show(tried),
                self.unit
            ),
        )
    }
}

/// The critical alert a rollback raises (of the environment or of the resource limits).
pub fn rollback_alert(unit: &str, result: ActionResult, summary: String) -> AlertEvent {
    let now = wall_ms();
    AlertEvent {
        // The outbox gives sinks their own order; a wall-clock id never repeats.
        id: now,
        rule: "tuner_rollback".to_owned(),
        metric: crate::model::MetricName::HostwardenTunerActions
            .as_str()
            .to_owned(),
        severity: Severity::Critical,
        state: AlertState::Firing,
        attributes: BTreeMap::from([
            ("systemd.unit".to_owned(), unit.to_owned()),
            ("result".to_owned(), result.as_str().to_owned()),
        ]),
        value: 1.0,
        threshold: None,
        baseline: None,
        since_ms: now,
        at_ms: now,
        summary,
    }
}

/// `K=V K=V` for logs and summaries.
pub fn show(env: &Env) -> String {
    env.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}
