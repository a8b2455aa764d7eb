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

use crate::sys::systemd::{
    ActuateError, ReadClock, UnitChanges, UnitManager, UnitStatus, ensure_watch,
};

/// The longest a status stands without a read, in case a signal was missed.
const FALLBACK: Duration = Duration::from_secs(10);

pub(crate) struct UnitStatusCache {
    changes: Arc<UnitChanges>,
    clock: ReadClock,
    /// The last status read.
    last: Option<UnitStatus>,
}

impl Default for UnitStatusCache {
    fn default() -> Self {
        UnitStatusCache {
            changes: UnitChanges::new(),
            clock: ReadClock::new(FALLBACK),
            last: None,
        }
    }
}

impl UnitStatusCache {
    pub(crate) async fn status(
        &mut self,
        src: &dyn UnitManager,
        unit: &str,
    ) -> Result<UnitStatus, ActuateError> {
        if self.changes.live()
            && !self.clock.due(&self.changes)
            && let Some(s) = &self.last
        {
            return Ok(s.clone());
        }
        ensure_watch(
            src,
            unit,
            &self.changes,
            "the Ollama unit's status (every tick)",
        )
        .await;
        // Before the read: a change during it makes the next collect read again.
        self.clock.started(&self.changes);
        match src.unit_status(unit).await {
            Ok(s) => {
                self.last = Some(s.clone());
                Ok(s)
            }
            Err(e) => {
                self.last = None;
                self.clock.force();
                Err(e)
            }
        }
    }
}
