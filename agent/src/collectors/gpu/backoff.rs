//! When to try loading NVML again: `retry_min` after the first failure, doubling up to
//! `retry_max`, so a host without a driver costs one dlopen every ten minutes, and a driver
//! installed while the agent runs is picked up.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    delay: Duration,
    next: Option<Instant>,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Backoff {
            min,
            max,
            delay: min,
            next: None,
        }
    }

    /// True when an attempt may be made at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// Records a failed attempt at `now`; returns the wait before the next one.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let wait = self.delay;
        self.next = Some(now + wait);
        self.delay = (self.delay * 2).min(self.max);
        wait
    }

    pub fn succeeded(&mut self) {
        self.delay = self.min;
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_min_to_max_and_reset_on_success() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(30), Duration::from_secs(100));
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0), Duration::from_secs(30));
        assert!(!b.ready(t0 + Duration::from_secs(29)));
        assert!(b.ready(t0 + Duration::from_secs(30)));
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.failed(t1), Duration::from_secs(60));
        assert_eq!(b.failed(t1), Duration::from_secs(100));
        assert_eq!(b.failed(t1), Duration::from_secs(100));
        b.succeeded();
        assert!(b.ready(t1));
        assert_eq!(b.failed(t1), Duration::from_secs(30));
    }

    #[test]
    fn a_max_below_min_is_treated_as_min() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(b.failed(t0), Duration::from_secs(10));
        assert_eq!(b.failed(t0), Duration::from_secs(10));
    }
}
