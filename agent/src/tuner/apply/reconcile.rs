//! Reconcile at start: an apply the journal shows as started but never finished (the agent
//! was killed mid-apply) is completed or rolled back, never left half done.

use tracing::{info, warn};

use crate::sys::time::wall_ms;
use crate::tuner::apply::dropin;
use crate::tuner::apply::journal::{ActionResult, Entry, Event, Timings};
use crate::tuner::apply::{Applier, ApplyError, ApplyReport, show};

impl Applier {
    /// Finishes an apply the journal shows as started but not finished: if the drop-in on disk
    /// is the one it wrote and the unit verifies with it, record completion; otherwise put the
    /// previous drop-in back (reload, restart, verify) and record the rollback.
    pub async fn reconcile(&self, started: &Entry) -> Option<ApplyReport> {
        let Event::ApplyStarted {
            id,
            before,
            after,
            previous_dropin,
            ..
        } = &started.event
        else {
            return None;
        };
        let on_disk = self.dropin.read().ok().flatten();
        let ours = dropin::render(after).ok();
        if on_disk.is_some() && on_disk == ours {
            match self.verify(after).await {
                Ok(_) => {
                    info!(unit = %self.unit, id, "Interrupted tuner apply found complete; recorded.");
                    return Some(self.finish(
                        *id,
                        ActionResult::Applied,
                        format!(
                            "completed after an agent restart: {} verified with {}",
                            self.unit,
                            show(after)
                        ),
                        after.clone(),
                        Vec::new(),
                        Timings::default(),
                        None,
                    ));
                }
                Err(e) => {
                    warn!(unit = %self.unit, id, error = %e, "Interrupted tuner apply does not verify; rolling back.")
                }
            }
        }
        if on_disk == *previous_dropin && self.verify(before).await.is_ok() {
            // Stopped before the drop-in was written: nothing changed, nothing to undo.
            info!(unit = %self.unit, id, "Interrupted tuner apply never wrote its drop-in; nothing to undo.");
            return Some(self.finish(
                *id,
                ActionResult::Skipped,
                "the agent stopped before writing the drop-in; nothing changed".to_owned(),
                before.clone(),
                Vec::new(),
                Timings::default(),
                None,
            ));
        }
        let mut t = Timings::default();
        let (result, detail, in_force) = self
            .roll_back(
                previous_dropin.as_deref(),
                before,
                &ApplyError::Interrupted,
                &mut t,
            )
            .await;
        let alert = self.alert(after, &detail);
        Some(self.finish(
            *id,
            result,
            detail,
            in_force,
            vec![wall_ms()],
            t,
            Some(alert),
        ))
    }
}
