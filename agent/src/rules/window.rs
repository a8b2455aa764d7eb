//! `over = { window, fn }`: the value judged is an aggregate of the samples of the last
//! `window` (inclusive of a sample exactly `window` old), not the last sample.
//!
//! `increase` sums the rises between consecutive samples; when a counter falls (a reset: the
//! unit restarted, the driver reloaded), the new value itself is the rise since the reset, as
//! Prometheus counts it. `rate` is that increase divided by the seconds between the first and
//! the last sample. Windows live in memory only: after a restart they fill again.

use std::collections::VecDeque;

use super::config::OverFn;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    samples: VecDeque<(u64, f64)>,
}

impl Window {
    /// Adds a sample taken at `t_ms` and forgets those older than `window_ms`.
    pub fn push(&mut self, t_ms: u64, value: f64, window_ms: u64) {
        // A clock that went back would leave samples out of order: start over.
        if self.samples.back().is_some_and(|(t, _)| *t > t_ms) {
            self.samples.clear();
        }
        self.samples.push_back((t_ms, value));
        let oldest = t_ms.saturating_sub(window_ms);
        while self.samples.front().is_some_and(|(t, _)| *t < oldest) {
            self.samples.pop_front();
        }
    }

    /// When the newest sample was taken.
    pub fn newest(&self) -> Option<u64> {
        self.samples.back().map(|(t, _)| *t)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// The aggregate, or None when there is nothing to judge (no sample; `rate` needs two).
    pub fn aggregate(&self, func: OverFn) -> Option<f64> {
        let values = || self.samples.iter().map(|(_, v)| *v);
        match func {
            OverFn::Avg => {
                let n = self.samples.len();
                #[allow(clippy::cast_precision_loss)]
                (n > 0).then(|| values().sum::<f64>() / n as f64)
            }
            OverFn::Max => values().reduce(f64::max),
            OverFn::Min => values().reduce(f64::min),
            OverFn::Increase => (!self.samples.is_empty()).then(|| self.increase()),
            OverFn::Rate => {
                let (first, last) = (self.samples.front()?.0, self.samples.back()?.0);
                #[allow(clippy::cast_precision_loss)]
                let secs = (last.saturating_sub(first)) as f64 / 1000.0;
                (secs > 0.0).then(|| self.increase() / secs)
            }
        }
    }

    fn increase(&self) -> f64 {
        let mut total = 0.0;
        let mut prev: Option<f64> = None;
        for (_, v) in &self.samples {
            if let Some(p) = prev {
                total += if *v >= p { v - p } else { *v };
            }
            prev = Some(*v);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn window_of(samples: &[(u64, f64)], window_ms: u64) -> Window {
        let mut w = Window::default();
        for (t, v) in samples {
            w.push(*t, *v, window_ms);
        }
        w
    }

    #[rstest]
    #[case::avg(OverFn::Avg, &[(0, 1.0), (1000, 2.0), (2000, 6.0)], Some(3.0))]
    #[case::max(OverFn::Max, &[(0, 1.0), (1000, 7.0), (2000, 6.0)], Some(7.0))]
    #[case::min(OverFn::Min, &[(0, 1.0), (1000, 7.0), (2000, 0.5)], Some(0.5))]
    #[case::increase(OverFn::Increase, &[(0, 10.0), (1000, 12.0), (2000, 15.0)], Some(5.0))]
    #[case::increase_over_reset(OverFn::Increase, &[(0, 10.0), (1000, 12.0), (2000, 3.0), (3000, 4.0)], Some(6.0))]
    #[case::increase_one_sample(OverFn::Increase, &[(0, 10.0)], Some(0.0))]
    #[case::rate(OverFn::Rate, &[(0, 10.0), (1000, 12.0), (2000, 14.0)], Some(2.0))]
    #[case::rate_over_reset(OverFn::Rate, &[(0, 10.0), (2000, 4.0)], Some(2.0))]
    #[case::rate_needs_two(OverFn::Rate, &[(0, 10.0)], None)]
    #[case::empty_max(OverFn::Max, &[], None)]
    fn aggregates(#[case] func: OverFn, #[case] samples: &[(u64, f64)], #[case] want: Option<f64>) {
        let got = window_of(samples, 10_000).aggregate(func);
        match (got, want) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{func:?}: got {g}, want {w}"),
            (g, w) => assert_eq!(g, w, "{func:?}"),
        }
    }

    #[test]
    fn old_samples_leave_the_window() {
        // Window 2 s: at t = 5 s the samples at 3, 4 and 5 s remain (3 s is exactly 2 s old).
        let w = window_of(
            &[
                (0, 100.0),
                (1000, 1.0),
                (3000, 2.0),
                (4000, 3.0),
                (5000, 4.0),
            ],
            2000,
        );
        assert_eq!(w.len(), 3);
        assert_eq!(w.aggregate(OverFn::Max), Some(4.0));
        assert_eq!(w.aggregate(OverFn::Increase), Some(2.0));
    }

    #[test]
    fn clock_going_back_starts_over() {
        let w = window_of(&[(5000, 1.0), (6000, 2.0), (1000, 9.0)], 10_000);
        assert_eq!(w.len(), 1);
    }
}
