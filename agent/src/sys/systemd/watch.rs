//! When what systemd holds for a unit can have changed, as signals tell it, so that readers
//! ask systemd again only then instead of every tick.
//!
//! What systemd reports for a unit changes at a few moments only:
//! - a daemon-reload: unit files and drop-ins are read again. systemd.unit(5), "Unit garbage
//!   collection": "Use systemctl daemon-reload or an equivalent command to reload unit
//!   configuration while the unit is already loaded"; accordingly `DropInPaths` and
//!   `Environment` are `const` properties (busctl introspect), announced by no
//!   `PropertiesChanged`. (One exception: `systemctl set-property` adds its `50-*.conf` to
//!   `DropInPaths` at once, systemd commit "unit: update unit dropin paths and time when dropin
//!   file is written"; see below.) The manager's `Reloading(false)` signal
//!   ends every reload, so a read made after it sees everything a reload brought in.
//! - a change of the unit's state: a start, stop or restart moves `ActiveState`, `MainPID`,
//!   `NRestarts` (`emits-change` properties), announced by the unit's `PropertiesChanged`.
//! - a `SetUnitProperties` (ours, or an operator's `systemctl set-property`): NOT signalled.
//!   The resource-control properties (`MemoryMax`, `TasksMax`, ...) carry no change flag, and
//!   busctl monitor shows no signal for a set-property (systemd 252). Readers of limits cover it
//!   with a short fallback cadence; our own changes they know of.
//!
//! systemd sends unit signals only to subscribed clients (`Subscribe`), so the watch subscribes
//! first. A missed signal is covered by the readers' slow fallback cadence.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::UnitManager;

/// The count of moments at which what systemd holds for one unit may have changed, moved by
/// the watch task `UnitManager::watch_changes` starts. Dropping the last handle stops the task.
#[derive(Debug, Default)]
pub struct UnitChanges {
    count: AtomicU64,
    live: AtomicBool,
    starting: AtomicBool,
    moved: Notify,
    task: Mutex<Option<AbortHandle>>,
}

impl UnitChanges {
    pub fn new() -> Arc<UnitChanges> {
        Arc::new(UnitChanges::default())
    }

    /// Moves at each signal; compare with the value a read started at.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// True while signals arrive. False before the watch started and after its connection
    /// ended: readers then depend on their fallback cadence alone, and start the watch again.
    pub fn live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Waits until the count passes `seen` (tests synchronise on a reload with this).
    pub async fn changed_since(&self, seen: u64) {
        loop {
            let moved = self.moved.notified();
            if self.count() > seen {
                return;
            }
            moved.await;
        }
    }

    pub(super) fn bump(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.moved.notify_waiters();
    }

    /// Claims the start of a watch; false when one runs or is starting.
    pub(super) fn claim(&self) -> bool {
        !self.live() && !self.starting.swap(true, Ordering::AcqRel)
    }

    /// Ends a start claimed with `claim`; with `task` the watch runs.
    pub(super) fn started(&self, task: Option<AbortHandle>) {
        if let Some(t) = task {
            self.live.store(true, Ordering::Release);
            let old = self
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .replace(t);
            if let Some(old) = old {
                old.abort();
            }
        }
        self.starting.store(false, Ordering::Release);
    }

    fn ended(&self) {
        self.live.store(false, Ordering::Release);
        // What happened while no signal could arrive is unknown: read again.
        self.bump();
    }
}

impl Drop for UnitChanges {
    fn drop(&mut self) {
        if let Some(t) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
    }
}

/// Starts the change watch of `unit` unless it runs; without one (no bus, a manager that sends
/// no signals) `reader` falls back to its timed reads, which is worth a debug line only.
pub async fn ensure_watch(
    mgr: &dyn UnitManager,
    unit: &str,
    changes: &Arc<UnitChanges>,
    reader: &str,
) {
    if let Err(e) = mgr.watch_changes(unit, changes).await {
        tracing::debug!(unit = %unit, error = %e, reader, "No change watch; the reader falls back to its timed reads.");
    }
}

/// When one reader of a unit's state in systemd last read it, and the change count it read at:
/// the next read is due when the count moved since (a signal), `fallback` passed (a missed or
/// unsignalled change), or `force` asked for one (a change of our own). The one schedule of the
/// Ollama collector's status, the tuner's drop-in scan and the limits read.
#[derive(Debug)]
pub struct ReadClock {
    fallback: Duration,
    last: Option<(Instant, u64)>,
    forced: bool,
}

impl ReadClock {
    pub const fn new(fallback: Duration) -> Self {
        ReadClock {
            fallback,
            last: None,
            forced: false,
        }
    }

    /// Whether a read is due now.
    pub fn due(&self, changes: &UnitChanges) -> bool {
        self.forced
            || self
                .last
                .is_none_or(|(at, seen)| seen != changes.count() || at.elapsed() >= self.fallback)
    }

    /// A read starts now: a change from here on makes the next one due.
    pub fn started(&mut self, changes: &UnitChanges) {
        self.last = Some((Instant::now(), changes.count()));
        self.forced = false;
    }

    /// The next `due` is true (our own change; a failed read).
    pub fn force(&mut self) {
        self.forced = true;
    }
}

/// Counts finished reloads and the unit's property changes into `changes` until either stream
/// ends (the connection closed) or the last handle of `changes` is gone.
pub(super) async fn run<R, P>(mut reloading: R, mut changed: P, changes: Weak<UnitChanges>)
where
    R: futures_util::Stream<Item = bool> + Unpin,
    P: futures_util::Stream + Unpin,
{
    loop {
        let (more, counts) = tokio::select! {
            r = reloading.next() => (r.is_some(), r == Some(false)),
            p = changed.next() => (p.is_some(), true),
        };
        let Some(c) = changes.upgrade() else { return };
        if !more {
            c.ended();
            return;
        }
        if counts {
            c.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    #[tokio::test]
    async fn finished_reloads_and_property_changes_count_and_an_end_is_a_change() {
        let c = UnitChanges::new();
        assert!(c.claim());
        assert!(!c.claim(), "a second start while one is starting");
        // Reloading(true), Reloading(false), then the stream ends.
        let reloads = stream::iter([true, false]);
        let props = stream::pending::<()>();
        let task = tokio::spawn(run(reloads, props, Arc::downgrade(&c)));
        c.started(Some(task.abort_handle()));
        task.await.expect("watch task");
        // One finished reload, one end of the stream.
        assert_eq!(c.count(), 2);
        assert!(!c.live());
        c.changed_since(1).await;
        assert!(c.claim(), "a watch that ended can be started again");
    }

    #[tokio::test]
    async fn a_property_change_moves_the_count_and_wakes_a_waiter() {
        let c = UnitChanges::new();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let rx = Box::pin(stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|v| (v, rx))
        }));
        let task = tokio::spawn(run(stream::pending(), rx, Arc::downgrade(&c)));
        c.started(Some(task.abort_handle()));
        let waiter = {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.changed_since(0).await })
        };
        tx.send(()).expect("send");
        waiter.await.expect("woken");
        assert_eq!(c.count(), 1);
        assert!(c.live());
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_is_due_at_first_on_a_change_after_the_fallback_and_when_forced() {
        let c = UnitChanges::new();
        let mut clock = ReadClock::new(Duration::from_secs(10));
        assert!(clock.due(&c), "never read");
        clock.started(&c);
        assert!(!clock.due(&c));
        c.bump();
        assert!(clock.due(&c), "a signal since the read");
        clock.started(&c);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!clock.due(&c));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(clock.due(&c), "the fallback passed");
        clock.started(&c);
        clock.force();
        assert!(clock.due(&c), "forced");
        clock.started(&c);
        assert!(!clock.due(&c), "a read ends the force");
    }

    #[tokio::test]
    async fn dropping_the_last_handle_stops_the_task() {
        let c = UnitChanges::new();
        let task = tokio::spawn(run(
            stream::pending::<bool>(),
            stream::pending::<()>(),
            Arc::downgrade(&c),
        ));
        c.started(Some(task.abort_handle()));
        drop(c);
        assert!(task.await.expect_err("aborted").is_cancelled());
    }
}
