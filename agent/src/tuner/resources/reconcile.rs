//! Reconcile at start, for limits: a change the journal shows as started but not finished (the
//! agent died while it set or watched the limits) is recorded as complete when systemd holds the
//! new limits and Ollama runs, as nothing changed when systemd still holds the old ones, and is
//! otherwise rolled back. Run in observe mode too: the half-done change is the agent's own.

use tracing::{info, warn};

use super::apply::{LimitsApplier, LimitsReport, LimitsTimings};
use super::limits::{self, Limits};
use crate::sys::fs::{PUBLIC, write_atomic_with};
use crate::tuner::apply::journal::{ActionResult, Entry, Event};

impl LimitsApplier {
    pub async fn reconcile(&self, started: &Entry) -> Option<LimitsReport> {
        let Event::LimitsStarted {
            id,
            before,
            after,
            previous_dropin,
            ..
        } = &started.event
        else {
            return None;
        };
        let held = self.current(after).await;
        let active = self.status().await.is_ok_and(|s| s.is_active());
        let report = match held {
            Ok(h) if h == *after && active => self.completed(after),
            Ok(h) if h == *before => {
                info!(unit = %self.unit, id, "Interrupted limits change never reached systemd; nothing to undo.");
                // The drop-in is written only after systemd took the limits: put back what
                // was there in case the agent died between the two.
                let restored = match previous_dropin {
                    Some(text) => write_atomic_with(&self.dropin_file(), text.as_bytes(), PUBLIC)
                        .map_err(|e| e.to_string()),
                    None => match std::fs::remove_file(self.dropin_file()) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                        _ => Ok(()),
                    },
                };
                if let Err(e) = restored {
                    warn!(unit = %self.unit, error = %e, "Cannot restore the resources drop-in.");
                }
                report(
                    ActionResult::Skipped,
                    "the agent stopped before systemd took the limits; nothing changed".to_owned(),
                    before.clone(),
                )
            }
            held => {
                warn!(unit = %self.unit, id, "Interrupted limits change does not hold; rolling back.");
                let why = match held {
                    Ok(h) => format!(
                        "interrupted by an agent restart; systemd holds {}",
                        limits::show(&h)
                    ),
                    Err(e) => format!("interrupted by an agent restart; systemd: {e}"),
                };
                self.roll_back(
                    before,
                    previous_dropin.as_deref(),
                    after,
                    why,
                    LimitsTimings::default(),
                )
                .await
            }
        };
        self.journal(Event::LimitsFinished {
            id: *id,
            result: report.result,
            detail: report.detail.clone(),
            timings: report.timings.clone(),
        });
        Some(report)
    }

    /// systemd holds the new limits and Ollama runs: persist them as the change would have.
    fn completed(&self, after: &Limits) -> LimitsReport {
        let body = limits::render(after);
        let on_disk = std::fs::read_to_string(self.dropin_file()).ok();
        if on_disk.as_deref() != Some(body.as_str())
            && let Err(e) = write_atomic_with(&self.dropin_file(), body.as_bytes(), PUBLIC)
        {
            warn!(unit = %self.unit, error = %e, "Cannot persist the reconciled limits.");
        }
        info!(unit = %self.unit, "Interrupted limits change found complete; recorded.");
        report(
            ActionResult::Applied,
            format!(
                "completed after an agent restart: {} runs with {}",
                self.unit,
                limits::show(after)
            ),
            after.clone(),
        )
    }
}

fn report(result: ActionResult, detail: String, in_force: Limits) -> LimitsReport {
    LimitsReport {
        result,
        detail,
        in_force,
        timings: LimitsTimings::default(),
        alert: None,
    }
}
