//! The unit's status (`ollama.service.active`, `.restarts`, the main PID, the Environment in
//! force), read from systemd again only when it can have changed instead of on every tick (a
//! `LoadUnit` and nine property reads). What the collector reports changes with the unit's
//! state (`ActiveState`, `SubState`, `MainPID`, `NRestarts` and `ExecMainStatus` are
//! `emits-change` properties, announced by the unit's `PropertiesChanged`) or at a
//! daemon-reload (`LoadState` and `Environment` are `const`, changed by a reload only): the
//! change watch of `sys::systemd` counts both. Without a live watch (a manager that sends no
//! signals, a lost connection) every collect reads, as before.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use crate::sys::systemd::{ActuateError, UnitChanges, UnitManager, UnitStatus};

/// The longest a status stands without a read, in case a signal was missed.
const FALLBACK: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct UnitStatusCache {
    changes: Arc<UnitChanges>,
    /// The last status, when it was read and the change count before the read.
    last: Option<(Instant, u64, UnitStatus)>,
}

impl UnitStatusCache {
    pub(crate) async fn status(
        &mut self,
        src: &dyn UnitManager,
        unit: &str,
    ) -> Result<UnitStatus, ActuateError> {
        if self.changes.live()
            && let Some((at, seen, s)) = &self.last
            && *seen == self.changes.count()
            && at.elapsed() < FALLBACK
        {
            return Ok(s.clone());
        }
        if let Err(e) = src.watch_changes(unit, &self.changes).await {
            debug!(unit = %unit, error = %e, "No change watch; the unit's status is read every tick.");
        }
        // Taken before the read: a change during it makes the next collect read again.
        let (at, seen) = (Instant::now(), self.changes.count());
        match src.unit_status(unit).await {
            Ok(s) => {
                self.last = Some((at, seen, s.clone()));
                Ok(s)
            }
            Err(e) => {
                self.last = None;
                Err(e)
            }
        }
    }
}
