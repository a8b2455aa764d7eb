//! The one long-lived `zpool iostat -Hpl <interval>` child per agent, read as a stream instead
//! of forking every tick.
//!
//! It runs without `-y`, so its first report (printed at once) covers the time since each pool
//! was imported: that gives `once` and the first tick latencies right away. Counters are only
//! accumulated from the interval reports that follow (rate × interval), because the first
//! report's time span is unknown. With `-H` zpool prints no separator between intervals, but it
//! flushes each interval's rows together, so a report ends when a pool name repeats or when no
//! line follows within `QUIET`. A pool missing from the last report is dropped.
//!
//! If the child exits or stalls (no line for 3 intervals), its process group is killed and it is
//! restarted with exponential backoff; `status()` says so, and the collector shows it as its
//! reason.

mod drive;
mod lines;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::sleep;
use tracing::warn;

use super::command::{command, display as command_line, spawn_error};
use super::parse::IostatRow;
use crate::logging::repeat::{self, RepeatCounter};
use drive::{ChildStopped, drive};

/// Rows of one report ending this long after the last line are taken as complete.
const QUIET: Duration = Duration::from_millis(50);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Groups stream rows into reports: a repeated pool name starts the next report.
#[derive(Debug, Default)]
pub struct Batcher {
    current: Vec<IostatRow>,
}

impl Batcher {
    /// Adds a row; returns the previous report when this row begins a new one.
    pub fn push(&mut self, row: IostatRow) -> Option<Vec<IostatRow>> {
        if self.current.iter().any(|r| r.name == row.name) {
            return Some(std::mem::replace(&mut self.current, vec![row]));
        }
        self.current.push(row);
        None
    }

    /// The report in progress, if any (called when the stream went quiet or ended).
    pub fn take(&mut self) -> Option<Vec<IostatRow>> {
        (!self.current.is_empty()).then(|| std::mem::take(&mut self.current))
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }
}

/// Cumulative operations and bytes of one pool since the agent saw its first interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub read_ops: f64,
    pub write_ops: f64,
    pub read_bytes: f64,
    pub write_bytes: f64,
}

/// The last complete report and the counters built from the reports so far.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reading {
    /// Rows of the last complete report (one per pool).
    pub rows: Vec<IostatRow>,
    /// True while that report is the since-import summary (latencies only, no counters yet).
    pub since_import: bool,
    /// Per pool, present once an interval report covered it.
    pub totals: HashMap<String, Totals>,
}

impl Reading {
    /// Applies one report: rates × interval are added to the totals; pools absent from the
    /// report are dropped (exported or destroyed).
    #[allow(clippy::cast_precision_loss)]
    pub fn apply(&mut self, rows: Vec<IostatRow>, since_import: bool, interval: Duration) {
        let secs = interval.as_secs_f64();
        self.totals
            .retain(|name, _| rows.iter().any(|r| &r.name == name));
        if !since_import {
            for r in &rows {
                let t = self.totals.entry(r.name.clone()).or_default();
                t.read_ops += r.read_ops as f64 * secs;
                t.write_ops += r.write_ops as f64 * secs;
                t.read_bytes += r.read_bytes as f64 * secs;
                t.write_bytes += r.write_bytes as f64 * secs;
            }
        }
        self.rows = rows;
        self.since_import = since_import;
    }
}

/// What the child is doing, as the collector status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildState {
    /// Started; no complete report yet.
    Waiting,
    Running,
    /// Died or stalled; the next attempt starts after `retry_in`.
    Restarting {
        reason: String,
        attempt: u32,
        retry_in: Duration,
    },
}

#[derive(Debug)]
struct Shared {
    state: ChildState,
    reading: Reading,
    /// The last row that did not parse, with why (kept until a report arrives without one).
    malformed: Option<String>,
    reports: u64,
}

/// Owns the reader task; dropping it aborts the task, which kills the child's process group.
pub struct Iostat {
    shared: Arc<Mutex<Shared>>,
    /// Bumped on every report and every state change.
    changes: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Drop for Iostat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A copy of the stream's state for one tick.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: ChildState,
    pub reading: Reading,
    pub malformed: Option<String>,
    /// Reports read since the agent started, over all children.
    pub reports: u64,
}

impl Status {
    /// Why iostat data is missing or partial, in an operator's words; `None` when all is well.
    pub fn problem(&self) -> Option<String> {
        let state = match &self.state {
            ChildState::Running => None,
            ChildState::Waiting => Some("waiting for the first zpool iostat interval".to_owned()),
            ChildState::Restarting {
                reason,
                attempt,
                retry_in,
            } => Some(format!(
                "zpool iostat {reason}; restarting in {} (attempt {attempt})",
                humantime::format_duration(*retry_in)
            )),
        };
        match (state, &self.malformed) {
            (None, None) => None,
            (Some(s), None) => Some(s),
            (None, Some(m)) => Some(format!("skipped a malformed line: {m}")),
            (Some(s), Some(m)) => Some(format!("{s}; skipped a malformed line: {m}")),
        }
    }
}

impl Iostat {
    /// Starts the child and its reader task (needs a tokio runtime).
    pub fn start(program: PathBuf, interval: Duration) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            state: ChildState::Waiting,
            reading: Reading::default(),
            malformed: None,
            reports: 0,
        }));
        let (tx, changes) = watch::channel(0u64);
        let task = tokio::spawn(supervise(program, interval, Arc::clone(&shared), tx));
        Iostat {
            shared,
            changes,
            task,
        }
    }

    pub fn status(&self) -> Status {
        let s = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        Status {
            state: s.state.clone(),
            reading: s.reading.clone(),
            malformed: s.malformed.clone(),
            reports: s.reports,
        }
    }

    /// Waits, at most `limit`, until the status satisfies `done`; returns the status then.
    pub async fn wait_until(&mut self, limit: Duration, done: impl Fn(&Status) -> bool) -> Status {
        let wait = async {
            loop {
                let status = self.status();
                if done(&status) {
                    return;
                }
                if self.changes.changed().await.is_err() {
                    return;
                }
            }
        };
        // A timeout means "report what we have".
        if tokio::time::timeout(limit, wait).await.is_err() {
            tracing::debug!("zpool iostat: waited in vain.");
        }
        self.status()
    }

    /// Waits, at most `limit`, for the first report (or the first failure).
    pub async fn wait_first(&mut self, limit: Duration) {
        self.wait_until(limit, |s| {
            s.reports > 0 || matches!(s.state, ChildState::Restarting { .. })
        })
        .await;
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Restarts the child forever, with backoff that resets after a child delivered a report.
async fn supervise(
    program: PathBuf,
    interval: Duration,
    shared: Arc<Mutex<Shared>>,
    tx: watch::Sender<u64>,
) {
    let secs = format_interval(interval);
    let args = ["iostat", "-Hpl", secs.as_str()];
    let mut attempt: u32 = 0;
    let mut last_reason = String::new();
    // Across children: a child restarted every second must not restart the count either.
    let mut skipped = RepeatCounter::new(repeat::WINDOW);
    loop {
        lock(&shared).state = ChildState::Waiting;
        tx.send_modify(|n| *n += 1);
        let ChildStopped { reason, delivered } = match command(&program, &args).spawn() {
            Err(e) => ChildStopped {
                reason: spawn_error(&program, &args, &e).to_string(),
                delivered: false,
            },
            Ok(child) => drive(child, interval, &shared, &tx, &mut skipped).await,
        };
        attempt = if delivered {
            1
        } else {
            attempt.saturating_add(1)
        };
        let retry_in = BACKOFF_FIRST
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(6))
            .min(BACKOFF_MAX);
        // Log once per distinct reason, not once per attempt.
        if reason != last_reason {
            warn!(command = %command_line(&program, &args), reason = %reason, "zpool iostat stopped; restarting with backoff.");
            last_reason.clone_from(&reason);
        }
        lock(&shared).state = ChildState::Restarting {
            reason,
            attempt,
            retry_in,
        };
        tx.send_modify(|n| *n += 1);
        sleep(retry_in).await;
    }
}

/// zpool takes the interval in seconds (fractions allowed).
fn format_interval(interval: Duration) -> String {
    if interval.subsec_nanos() == 0 {
        interval.as_secs().to_string()
    } else {
        format!("{:.3}", interval.as_secs_f64())
    }
}

#[cfg(test)]
mod tests;
