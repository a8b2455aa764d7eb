//! Reading one `zpool iostat` child: its report lines are batched into readings and published
//! until it exits or stalls.

use std::sync::Mutex;
use std::time::Duration;

use tokio::process::{Child, ChildStderr};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use super::lines::{BoundedLines, MAX_LINE, Next};
use super::{Batcher, ChildState, QUIET, Shared, lock};
use crate::collectors::zfs::command::{Group, REAP_GRACE, kill_and_reap};
use crate::collectors::zfs::parse::{IostatRow, parse_iostat_line};
use crate::logging::repeat::{RepeatCounter, Report, over_text, thousands};

/// Why a child stopped, and whether it delivered a report first (which resets the backoff).
pub(super) struct ChildStopped {
    pub reason: String,
    pub delivered: bool,
}

/// What one child has told so far.
struct ChildReader<'a> {
    interval: Duration,
    shared: &'a Mutex<Shared>,
    tx: &'a watch::Sender<u64>,
    batcher: Batcher,
    reports: u64,
    line_no: usize,
    /// The last malformed line seen since the previous report; shown with the next report.
    bad: Option<String>,
    /// The last thing it said on stderr.
    last_err: String,
    /// Malformed lines between two warnings (kept across children by the supervisor).
    skipped: &'a mut RepeatCounter,
}

/// Logs what the counter of malformed lines says is due.
fn warn_skipped(report: Option<Report>, error: &str) {
    match report {
        None => {}
        Some(Report::First) => warn!(%error, "Skipped a zpool iostat line."),
        Some(Report::Summary { count, over, last }) => warn!(
            "Skipped {} zpool iostat lines in the last {}; last: {last}",
            thousands(count),
            over_text(over)
        ),
    }
}

impl ChildReader<'_> {
    fn publish(&mut self, rows: Vec<IostatRow>) {
        let mut s = lock(self.shared);
        s.reading.apply(rows, self.reports == 0, self.interval);
        s.state = ChildState::Running;
        s.malformed = self.bad.take();
        s.reports += 1;
        self.reports += 1;
        drop(s);
        self.tx.send_modify(|n| *n += 1);
        if self.reports == 1 {
            info!("zpool iostat is streaming.");
        }
    }

    /// Publishes what is batched, if anything.
    fn flush(&mut self) {
        if let Some(rows) = self.batcher.take() {
            self.publish(rows);
        }
    }

    fn on_stdout(&mut self, line: &str) {
        self.line_no += 1;
        if line.trim().is_empty() {
            return;
        }
        match parse_iostat_line(line, self.line_no) {
            Ok(row) => {
                if let Some(rows) = self.batcher.push(row) {
                    self.publish(rows);
                }
            }
            Err(e) => {
                let error = e.to_string();
                let report = self.skipped.hit(Instant::now(), || error.clone());
                warn_skipped(report, &error);
                self.bad = Some(error);
            }
        }
    }

    fn on_stderr(&mut self, line: &str) {
        if line.contains("no pools available") {
            // Every pool is gone: an empty report drops them all.
            self.publish(Vec::new());
        }
        if !line.trim().is_empty() {
            line.trim().clone_into(&mut self.last_err);
        }
    }

    /// The child closed stdout: publish the rest, read its last words, reap it.
    async fn finish(
        mut self,
        mut child: Child,
        group: &Group,
        mut err: BoundedLines<ChildStderr>,
        mut err_open: bool,
    ) -> ChildStopped {
        self.flush();
        // Its last words on stderr may still be in the pipe.
        while err_open {
            match tokio::time::timeout(QUIET * 10, err.next()).await {
                Ok(Ok(Next::Line(line))) if !line.trim().is_empty() => {
                    line.trim().clone_into(&mut self.last_err);
                }
                Ok(Ok(Next::Line(_))) => {}
                _ => err_open = false,
            }
        }
        // A child that closed stdout but lives on is killed with its group.
        let status = match tokio::time::timeout(QUIET * 20, child.wait()).await {
            Ok(Ok(s)) => s.to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) if kill_and_reap(&mut child, group, REAP_GRACE).await => {
                "closed its output; killed its process group".to_owned()
            }
            Err(_) => "closed its output; killed its process group, not yet exited".to_owned(),
        };
        let detail = if self.last_err.is_empty() {
            String::new()
        } else {
            format!(": {}", self.last_err)
        };
        ChildStopped {
            reason: format!("exited ({status}){detail}"),
            delivered: self.reports > 0,
        }
    }
}

/// Reads one child until it ends or stalls.
pub(super) async fn drive(
    mut child: Child,
    interval: Duration,
    shared: &Mutex<Shared>,
    tx: &watch::Sender<u64>,
    skipped: &mut RepeatCounter,
) -> ChildStopped {
    // Killed on every way out: a stall, an exit that left stragglers, or the task's abort.
    let group = Group::of(&child);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return ChildStopped {
            reason: "started without pipes".to_owned(),
            delivered: false,
        };
    };
    let mut out = BoundedLines::new(stdout, MAX_LINE);
    let mut err = BoundedLines::new(stderr, MAX_LINE);
    let mut err_open = true;
    let mut reader = ChildReader {
        interval,
        shared,
        tx,
        batcher: Batcher::default(),
        reports: 0,
        line_no: 0,
        bad: None,
        last_err: String::new(),
        skipped,
    };
    let stall = interval.saturating_mul(3);
    let mut last_line = Instant::now();
    loop {
        let quiet_at = last_line + QUIET;
        tokio::select! {
            line = out.next() => match line {
                Ok(Next::Line(line)) => {
                    last_line = Instant::now();
                    reader.on_stdout(&line);
                }
                Ok(Next::TooLong) => {
                    // Garbage, not a report: restart rather than buffer without end.
                    reader.flush();
                    let reaped = kill_and_reap(&mut child, &group, REAP_GRACE).await;
                    let killed = if reaped { "killed its process group" } else { "killed its process group, not yet exited" };
                    return ChildStopped {
                        reason: format!("printed a line longer than {} KiB; {killed}", MAX_LINE / 1024),
                        delivered: reader.reports > 0,
                    };
                }
                Ok(Next::End) | Err(_) => return reader.finish(child, &group, err, err_open).await,
            },
            line = err.next(), if err_open => match line {
                Ok(Next::Line(line)) => {
                    last_line = Instant::now();
                    reader.on_stderr(&line);
                }
                // An endless stderr line is dropped piece by piece; stdout decides the rest.
                Ok(Next::TooLong) => last_line = Instant::now(),
                Ok(Next::End) | Err(_) => err_open = false,
            },
            () = sleep_until(quiet_at), if !reader.batcher.is_empty() => reader.flush(),
            () = sleep_until(reader.skipped.due_at().unwrap_or(last_line)), if reader.skipped.due_at().is_some() => {
                warn_skipped(reader.skipped.flush(Instant::now()), "");
            }
            () = sleep_until(last_line + stall) => {
                let reaped = kill_and_reap(&mut child, &group, REAP_GRACE).await;
                let killed = if reaped { "killed its process group" } else { "killed its process group, not yet exited" };
                return ChildStopped {
                    reason: format!("stalled (no line for {}); {killed}", humantime::format_duration(stall)),
                    delivered: reader.reports > 0,
                };
            }
        }
    }
}
