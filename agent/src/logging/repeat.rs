//! Rate limit for warnings that an outside input can repeat without bound (a `zpool` printing
//! garbage produced 3.46 million identical WARN lines, 856 MB of log, in a minute). The first
//! occurrence is logged at once; the rest are counted and summed up in one line per window:
//! "skipped 3,456,614 zpool iostat lines in the last 60s; last: ...".

use std::time::Duration;

use tokio::time::Instant;

/// One log line per window per repeating problem: 1,440 lines a day at most, yet an operator
/// watching the log sees a new problem at once and its volume within a minute.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Counts occurrences of one repeating problem between the lines that report it.
#[derive(Debug)]
pub struct RepeatCounter {
    window: Duration,
    /// When the last line was logged; `None` before the first occurrence.
    logged_at: Option<Instant>,
    /// Occurrences since that line, and the detail of the last of them.
    pending: u64,
    last: String,
}

/// What to log now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The first occurrence (or the first after a quiet window): log it as it is.
    First,
    /// A summary of `count` occurrences over `over`, the last one described by `last`.
    Summary {
        count: u64,
        over: Duration,
        last: String,
    },
}

impl RepeatCounter {
    pub fn new(window: Duration) -> Self {
        RepeatCounter {
            window,
            logged_at: None,
            pending: 0,
            last: String::new(),
        }
    }

    /// Records one occurrence at `now`, described by `detail`; says what to log, if anything.
    pub fn hit(&mut self, now: Instant, detail: impl FnOnce() -> String) -> Option<Report> {
        match self.logged_at {
            Some(at) if now.saturating_duration_since(at) < self.window => {
                self.pending += 1;
                self.last = detail();
                None
            }
            Some(at) if self.pending > 0 => {
                self.pending += 1;
                self.last = detail();
                let over = now.saturating_duration_since(at);
                self.logged_at = Some(now);
                Some(self.take(over))
            }
            _ => {
                self.logged_at = Some(now);
                Some(Report::First)
            }
        }
    }

    /// When the counted occurrences are due to be reported even if no other one comes: a
    /// flood that stops is still summed up at the end of its window.
    pub fn due_at(&self) -> Option<Instant> {
        let at = self.logged_at?;
        (self.pending > 0).then(|| at + self.window)
    }

    /// The occurrences not yet reported, if any.
    pub fn flush(&mut self, now: Instant) -> Option<Report> {
        let at = self.logged_at?;
        if self.pending == 0 {
            return None;
        }
        self.logged_at = Some(now);
        Some(self.take(now.saturating_duration_since(at)))
    }

    fn take(&mut self, over: Duration) -> Report {
        Report::Summary {
            count: std::mem::take(&mut self.pending),
            over,
            last: std::mem::take(&mut self.last),
        }
    }
}

/// Formats a count with thousands separators: 3456614 → "3,456,614".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "3,456,614 ... in the last 60s" with the window rounded to whole seconds.
pub fn over_text(over: Duration) -> String {
    humantime::format_duration(Duration::from_secs(over.as_secs().max(1))).to_string()
}

#[cfg(test)]
mod tests;
