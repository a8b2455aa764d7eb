//! Learned baselines: the rolling median of per-bucket means.
//!
//! The `window` is cut into 60 buckets (each at least 1 s wide, aligned to the epoch). Every
//! sample adds to its bucket's sum and count. The baseline is the median of the means of the
//! closed buckets still inside the window (the bucket being filled is left out, so a value is
//! never judged against itself). A median ignores anything that fills fewer than half the
//! buckets: a spike, or a burst shorter than half the window, does not move it; a change that
//! lasts longer than half the window becomes the new normal. The rule may not fire until
//! `warmup` has passed since the series' first sample and at least one bucket has closed.
//! Baselines are saved in the state directory with the rule state.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::config::BaselineSpec;

const BUCKETS_PER_WINDOW: u64 = 60;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Bucket {
    start_ms: u64,
    sum: f64,
    count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// When learning began; warm-up counts from here.
    first_ms: u64,
    buckets: VecDeque<Bucket>,
}

fn window_ms(spec: &BaselineSpec) -> u64 {
    u64::try_from(spec.window.as_millis()).unwrap_or(u64::MAX)
}

fn bucket_ms(spec: &BaselineSpec) -> u64 {
    (window_ms(spec) / BUCKETS_PER_WINDOW).max(1000)
}

impl Baseline {
    pub fn new(t_ms: u64) -> Self {
        Baseline {
            first_ms: t_ms,
            buckets: VecDeque::new(),
        }
    }

    /// True once `warmup` has passed since learning began.
    pub fn warmed_up(&self, t_ms: u64, spec: &BaselineSpec) -> bool {
        let warmup = u64::try_from(spec.warmup.as_millis()).unwrap_or(u64::MAX);
        t_ms.saturating_sub(self.first_ms) >= warmup
    }

    /// Adds a sample.
    pub fn learn(&mut self, t_ms: u64, value: f64, spec: &BaselineSpec) {
        if !value.is_finite() {
            return;
        }
        let width = bucket_ms(spec);
        let start = t_ms - t_ms % width;
        match self.buckets.back_mut() {
            Some(b) if b.start_ms == start => {
                b.sum += value;
                b.count += 1;
            }
            // A clock that went back: the history no longer lines up, start again.
            Some(b) if b.start_ms > start => {
                *self = Baseline::new(t_ms);
                self.push(start, value);
            }
            _ => self.push(start, value),
        }
        let oldest = t_ms.saturating_sub(window_ms(spec));
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start_ms + width <= oldest)
        {
            self.buckets.pop_front();
        }
    }

    fn push(&mut self, start_ms: u64, value: f64) {
        self.buckets.push_back(Bucket {
            start_ms,
            sum: value,
            count: 1,
        });
    }

    /// The median of the closed buckets' means inside the window, if any.
    pub fn value(&self, t_ms: u64, spec: &BaselineSpec) -> Option<f64> {
        let width = bucket_ms(spec);
        let oldest = t_ms.saturating_sub(window_ms(spec));
        #[allow(clippy::cast_precision_loss)]
        let mut means: Vec<f64> = self
            .buckets
            .iter()
            .filter(|b| b.start_ms + width <= t_ms && b.start_ms + width > oldest && b.count > 0)
            .map(|b| b.sum / b.count as f64)
            .collect();
        if means.is_empty() {
            return None;
        }
        means.sort_by(f64::total_cmp);
        let n = means.len();
        Some(if n % 2 == 1 {
            means[n / 2]
        } else {
            (means[n / 2 - 1] + means[n / 2]) / 2.0
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec(window_s: u64, warmup_s: u64) -> BaselineSpec {
        BaselineSpec {
            window: Duration::from_secs(window_s),
            warmup: Duration::from_secs(warmup_s),
        }
    }

    #[test]
    fn median_ignores_a_short_spike() {
        // Window 60 s → 1 s buckets; 30 s at 10, a 5 s spike at 1000, then 10 again.
        let s = spec(60, 0);
        let mut b = Baseline::new(0);
        for sec in 0..40u64 {
            let v = if (20..25).contains(&sec) {
                1000.0
            } else {
                10.0
            };
            b.learn(sec * 1000, v, &s);
        }
        assert_eq!(b.value(40_000, &s), Some(10.0));
    }

    #[test]
    fn open_bucket_is_left_out() {
        let s = spec(60, 0);
        let mut b = Baseline::new(0);
        b.learn(0, 5.0, &s);
        assert_eq!(b.value(500, &s), None, "the first bucket is still open");
        assert_eq!(b.value(1000, &s), Some(5.0));
    }

    #[test]
    fn old_buckets_expire() {
        let s = spec(60, 0);
        let mut b = Baseline::new(0);
        for sec in 0..60u64 {
            b.learn(sec * 1000, 1.0, &s);
        }
        for sec in 60..200u64 {
            b.learn(sec * 1000, 50.0, &s);
        }
        assert_eq!(b.value(200_000, &s), Some(50.0));
        assert!(b.buckets.len() <= 62);
    }

    #[test]
    fn warm_up_counts_from_the_first_sample() {
        let s = spec(60, 30);
        let b = Baseline::new(1000);
        assert!(!b.warmed_up(30_999, &s));
        assert!(b.warmed_up(31_000, &s));
    }

    #[test]
    fn survives_a_json_round_trip() {
        let s = spec(60, 0);
        let mut b = Baseline::new(0);
        for sec in 0..10u64 {
            b.learn(sec * 1000, sec as f64, &s);
        }
        let back: Baseline = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
    }
}
