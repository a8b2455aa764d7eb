//! Live resource limits: `SetUnitProperties(unit, runtime = true, …)` (no restart), read back
//! over D-Bus and from the unit's cgroup files, persisted in `60-hostwarden-resources.conf` so a
//! reload or reboot keeps them, then watched for `verify_timeout`: an OOM kill in the unit's
//! cgroup, a failed unit, an automatic restart or a new main process puts the previous values
//! back (live and on disk) and raises a critical alert.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::limits::{self, Limits, RESOURCES_DROPIN};
use crate::rules::event::AlertEvent;
use crate::sys::cgroup::UnitCgroup;
use crate::sys::fs::{PUBLIC, write_atomic_with};
use crate::sys::proc::ProcReader;
use crate::sys::systemd::{UnitManager, UnitStatus};
use crate::sys::time::millis_f64 as ms;
use crate::tuner::apply::journal::{self, ActionResult, Event, Journal};
use crate::tuner::apply::rollback_alert;

/// Pause between two looks at the unit while the new limits are watched.
const WATCH_POLL: Duration = Duration::from_millis(100);

/// Where a limits change spent its time, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitsTimings {
    /// `SetUnitProperties`, call to reply: systemd's own time (it writes the cgroup files
    /// before it replies).
    pub set_ms: f64,
    /// From the decision to the limits read back over D-Bus and from the cgroup files.
    pub verified_ms: f64,
    /// The agent's own part of `verified_ms` (everything but `set_ms`).
    pub agent_ms: f64,
    /// Writing the drop-in.
    pub persist_ms: f64,
    /// Until the end of the watch (or the failure).
    pub total_ms: f64,
}

/// How a limits change ended.
#[derive(Debug, Clone)]
pub struct LimitsReport {
    pub result: ActionResult,
    pub detail: String,
    /// What systemd holds now for the keys that were set.
    pub in_force: Limits,
    pub timings: LimitsTimings,
    pub alert: Option<AlertEvent>,
}

/// Everything a limits change needs.
pub struct LimitsApplier {
    pub mgr: Arc<dyn UnitManager>,
    pub unit: String,
    /// `<dropin_dir>/<unit>.d`.
    pub dropin_dir: PathBuf,
    /// `[host] proc_root`: the main process's `cgroup` file is read there.
    pub proc_root: PathBuf,
    /// The cgroup mount (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    pub verify_timeout: Duration,
    pub journal: Arc<Mutex<Journal>>,
}

/// What the watch looks at: the unit's main process, restarts and OOM kills.
struct Baseline {
    main_pid: u32,
    n_restarts: u32,
    oom_kills: Option<u64>,
}

impl LimitsApplier {
    pub(super) fn journal(&self, event: Event) {
        journal::record(&self.journal, &self.unit, event);
    }

    pub(super) fn dropin_file(&self) -> PathBuf {
        self.dropin_dir.join(RESOURCES_DROPIN)
    }

    /// Makes our drop-in hold exactly `l` (removed when `l` is empty), so a reload keeps what
    /// is in force and puts back no key an operator's later file now owns. Small file: written
    /// in place of a blocking-pool hop.
    pub(super) fn persist(&self, l: &Limits) {
        let path = self.dropin_file();
        let have = std::fs::read_to_string(&path).ok();
        let r = if l.is_empty() {
            if have.is_none() {
                return;
            }
            std::fs::remove_file(&path).map_err(|e| e.to_string())
        } else {
            let want = limits::render(l);
            if have.as_deref() == Some(want.as_str()) {
                return;
            }
            write_atomic_with(&path, want.as_bytes(), PUBLIC).map_err(|e| e.to_string())
        };
        match r {
            Ok(()) => {
                info!(unit = %self.unit, file = %path.display(), limits = %limits::show(l), "Tuner rewrote its resources drop-in with the limits it manages.");
            }
            Err(e) => {
                warn!(unit = %self.unit, file = %path.display(), error = %e, "Cannot rewrite the tuner's resources drop-in.");
            }
        }
    }

    /// The limits systemd holds now for the keys of `keys`.
    pub async fn current(&self, keys: &Limits) -> Result<Limits, String> {
        let l = self
            .mgr
            .unit_limits(&self.unit)
            .await
            .map_err(|e| e.to_string())?;
        Ok(keys
            .keys()
            .map(|k| (k.clone(), limits::from_dbus(&l, k)))
            .collect())
    }

    pub(super) async fn status(&self) -> Result<UnitStatus, String> {
        self.mgr
            .unit_status(&self.unit)
            .await
            .map_err(|e| e.to_string())
    }

    fn cgroup(&self, pid: u32) -> Result<UnitCgroup, String> {
        UnitCgroup::of_pid(&ProcReader::new(&self.proc_root), pid, &self.cgroup_root)
    }

    /// Sets `after` live, verifies, persists and watches; on failure puts `before` back.
    /// `decided` is when the decision was taken (the clock of `verified_ms`).
    pub async fn apply(
        &self,
        id: u64,
        before: Limits,
        after: Limits,
        why_now: String,
        decided: Instant,
    ) -> LimitsReport {
        let mut t = LimitsTimings::default();
        let previous_dropin = std::fs::read_to_string(self.dropin_file()).ok();
        self.journal(Event::LimitsStarted {
            id,
            before: before.clone(),
            after: after.clone(),
            why_now,
            previous_dropin: previous_dropin.clone(),
        });
        let outcome = self.attempt(&after, decided, &mut t).await;
        t.total_ms = ms(decided.elapsed());
        let report = match outcome {
            Ok(()) => {
                info!(unit = %self.unit, limits = %limits::show(&after), verified_ms = t.verified_ms, set_ms = t.set_ms, "Tuner set resource limits live.");
                LimitsReport {
                    result: ActionResult::Applied,
                    detail: format!(
                        "{} runs with {} (no restart)",
                        self.unit,
                        limits::show(&after)
                    ),
                    in_force: after.clone(),
                    timings: t,
                    alert: None,
                }
            }
            Err(failure) => {
                warn!(unit = %self.unit, error = %failure, "Tuner resource limits failed; rolling back.");
                self.roll_back(&before, previous_dropin.as_deref(), &after, failure, t)
                    .await
            }
        };
        self.journal(Event::LimitsFinished {
            id,
            result: report.result,
            detail: report.detail.clone(),
            timings: report.timings.clone(),
        });
        report
    }

    async fn attempt(
        &self,
        after: &Limits,
        decided: Instant,
        t: &mut LimitsTimings,
    ) -> Result<(), String> {
        let s = self.status().await?;
        if !s.is_active() || s.main_pid == 0 {
            return Err(format!(
                "{} is {} ({})",
                self.unit, s.active_state, s.sub_state
            ));
        }
        let set = Instant::now();
        self.mgr
            .set_properties(&self.unit, true, &limits::properties(after))
            .await
            .map_err(|e| e.to_string())?;
        t.set_ms = ms(set.elapsed());
        // Resolved after the change: on v1 a unit gets a cgroup of its own in a hierarchy (cpu)
        // only once it has a setting there, so the directory before may be its parent's.
        let cg = self.cgroup(s.main_pid)?;
        let base = Baseline {
            main_pid: s.main_pid,
            n_restarts: s.n_restarts,
            oom_kills: cg.read().oom_kills,
        };
        let l = self
            .mgr
            .unit_limits(&self.unit)
            .await
            .map_err(|e| e.to_string())?;
        let wrong = limits::dbus_mismatches(&l, after);
        if !wrong.is_empty() {
            return Err(format!(
                "systemd did not take the limits: {}",
                wrong.join("; ")
            ));
        }
        let wrong = limits::cgroup_mismatches(&cg.read(), after);
        if !wrong.is_empty() {
            return Err(format!(
                "the cgroup files of {} disagree: {}",
                self.unit,
                wrong.join("; ")
            ));
        }
        t.verified_ms = ms(decided.elapsed());
        t.agent_ms = t.verified_ms - t.set_ms;
        let p = Instant::now();
        write_atomic_with(
            &self.dropin_file(),
            limits::render(after).as_bytes(),
            PUBLIC,
        )
        .map_err(|e| e.to_string())?;
        t.persist_ms = ms(p.elapsed());
        self.watch(&base, &cg).await
    }

    /// Until `verify_timeout`: the unit keeps running the same process, with no new OOM kill.
    async fn watch(&self, base: &Baseline, cg: &UnitCgroup) -> Result<(), String> {
        let deadline = Instant::now() + self.verify_timeout;
        loop {
            let s = self.status().await?;
            if s.active_state == "failed" {
                return Err(format!("{} failed ({})", self.unit, s.sub_state));
            }
            if s.n_restarts > base.n_restarts || s.main_pid != base.main_pid {
                return Err(format!(
                    "{} restarted under the new limits (main PID {} -> {})",
                    self.unit, base.main_pid, s.main_pid
                ));
            }
            let kills = cg.read().oom_kills;
            if let (Some(now), Some(then)) = (kills, base.oom_kills)
                && now > then
            {
                return Err(format!(
                    "the kernel OOM-killed {} process(es) in {} under the new limits",
                    now - then,
                    self.unit
                ));
            }
            if Instant::now() + WATCH_POLL >= deadline {
                return Ok(());
            }
            tokio::time::sleep(WATCH_POLL).await;
        }
    }

    pub(super) async fn roll_back(
        &self,
        before: &Limits,
        previous_dropin: Option<&str>,
        tried: &Limits,
        failure: String,
        t: LimitsTimings,
    ) -> LimitsReport {
        let undo = async {
            match previous_dropin {
                Some(text) => write_atomic_with(&self.dropin_file(), text.as_bytes(), PUBLIC)
                    .map_err(|e| e.to_string())?,
                None => match std::fs::remove_file(self.dropin_file()) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e.to_string());
                    }
                    _ => {}
                },
            }
            self.mgr
                .set_properties(&self.unit, true, &limits::properties(before))
                .await
                .map_err(|e| e.to_string())?;
            let l = self
                .mgr
                .unit_limits(&self.unit)
                .await
                .map_err(|e| e.to_string())?;
            let wrong = limits::dbus_mismatches(&l, before);
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(wrong.join("; "))
            }
        };
        let (result, detail) = match undo.await {
            Ok(()) => (
                ActionResult::RolledBack,
                format!(
                    "{failure}; previous limits {} back in force",
                    limits::show(before)
                ),
            ),
            Err(e) => {
                error!(unit = %self.unit, error = %e, "Tuner limits rollback failed; Ollama needs an operator.");
                (
                    ActionResult::RollbackFailed,
                    format!("{failure}; rollback failed too: {e}"),
                )
            }
        };
        let alert = rollback_alert(
            &self.unit,
            result,
            format!(
                "Ollama tuner rolled back {} on {}: {detail}",
                limits::show(tried),
                self.unit
            ),
        );
        LimitsReport {
            result,
            detail,
            in_force: before.clone(),
            timings: t,
            alert: Some(alert),
        }
    }
}
