//! When to try the D-Bus connection again after it failed. Pure: `now` is passed in.
//!
//! Why back off at all: on a host without a bus (no systemd as PID 1, a container, WSL2) every
//! caller would otherwise pay a socket, a failed connect and a close on every tick, and log
//! the same failure each time. Why a cap of 60 s: a bus that appears later (systemd or
//! dbus-daemon started after the agent) is still found within a minute, and the tuner's slow
//! fallback scans run at that cadence anyway.

use std::time::Duration;

use tokio::time::Instant;

/// The first wait after a failure; it doubles with each failure in a row.
pub const FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
pub const CAP: Duration = Duration::from_secs(60);

/// The state of one outage: failures in a row and when the next attempt may run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u64,
    retry_at: Option<Instant>,
    delay: Duration,
}

impl Backoff {
    /// Whether an attempt may run at `now` (always, outside an outage).
    pub fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| now >= at)
    }

    /// The time left until the next attempt.
    pub fn wait(&self, now: Instant) -> Duration {
        self.retry_at
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }

    /// Records a failed attempt; true when it is the first of an outage (the one to warn of).
    pub fn failed(&mut self, now: Instant) -> bool {
        self.failures += 1;
        self.delay = if self.failures == 1 {
            FIRST
        } else {
            (self.delay * 2).min(CAP)
        };
        self.retry_at = Some(now + self.delay);
        self.failures == 1
    }

    /// Ends the outage; returns how many attempts failed in it.
    pub fn succeeded(&mut self) -> u64 {
        std::mem::take(self).failures
    }

    /// Failed attempts in the current outage.
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_to_the_cap_and_warns_once() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert!(b.ready(t0));
        let mut now = t0;
        let mut waits = Vec::new();
        let mut firsts = 0;
        for _ in 0..10 {
            assert!(b.ready(now));
            firsts += usize::from(b.failed(now));
            let w = b.wait(now);
            assert!(!b.ready(now + w - Duration::from_millis(1)));
            waits.push(w.as_secs());
            now += w;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(firsts, 1);
        assert_eq!(b.failures(), 10);
    }

    #[test]
    fn a_success_ends_the_outage_and_the_next_one_warns_again() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        b.failed(t0);
        b.failed(t0 + FIRST);
        assert_eq!(b.succeeded(), 2);
        assert!(b.ready(t0));
        assert!(b.failed(t0 + CAP));
        assert_eq!(b.wait(t0 + CAP), FIRST);
    }

    #[test]
    fn a_bus_that_appears_later_is_tried_within_the_cap() {
        // However long the outage, no wait exceeds the cap.
        let mut now = Instant::now();
        let mut b = Backoff::default();
        for _ in 0..1000 {
            b.failed(now);
            assert!(b.wait(now) <= CAP);
            now += b.wait(now);
        }
    }
}
