//! The state machine of one rule on one series: inactive → pending → firing → resolved
//! (→ inactive). Pure: it is told the time (ms on the engine's timeline) and what the value
//! means against the thresholds, and answers with the transition, if any.

use serde::{Deserialize, Serialize};

use super::event::Severity;

/// What this tick's value says, already compared with the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// The most severe threshold the value is beyond, if any.
    pub trigger: Option<Severity>,
    /// The severity a firing alert keeps: `trigger`, or the mildest configured severity while
    /// the value has not yet crossed back over `clear` (the hysteresis band); None = cleared.
    pub held: Option<Severity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Inactive,
    Pending,
    Firing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Pending(Severity),
    Firing(Severity),
    SeverityChanged {
        from: Severity,
        to: Severity,
    },
    /// Resolved; `absent` when the series had left the snapshot.
    Resolved {
        absent: bool,
    },
}

/// `for` and `keep_firing_for`, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub for_ms: u64,
    pub keep_firing_ms: u64,
}

/// Saved across restarts (Prometheus's ALERTS_FOR_STATE): times are Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    pub phase: Phase,
    pub severity: Severity,
    /// When the condition began to hold (pending since; kept while firing).
    pub since_ms: u64,
    /// When it started firing.
    pub fired_ms: u64,
    /// While firing: when the value first cleared (keep_firing_for counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_ms: Option<u64>,
}

impl Default for SeriesState {
    fn default() -> Self {
        SeriesState {
            phase: Phase::Inactive,
            severity: Severity::Warning,
            since_ms: 0,
            fired_ms: 0,
            cleared_ms: None,
        }
    }
}

impl SeriesState {
    /// One tick. `reading` is None when the series is absent or cannot be judged (no baseline
    /// yet, a rate from one sample).
    pub fn observe(
        &mut self,
        t: u64,
        reading: Option<Reading>,
        timing: Timing,
    ) -> Option<Transition> {
        let trigger = reading.and_then(|r| r.trigger);
        match self.phase {
            Phase::Inactive => {
                let sev = trigger?;
                self.severity = sev;
                self.since_ms = t;
                self.cleared_ms = None;
                if timing.for_ms == 0 {
                    self.fire(t);
                    Some(Transition::Firing(sev))
                } else {
                    self.phase = Phase::Pending;
                    Some(Transition::Pending(sev))
                }
            }
            Phase::Pending => match trigger {
                // A pending series that stops matching resets, without an event.
                None => {
                    *self = SeriesState::default();
                    None
                }
                Some(sev) => {
                    self.severity = sev;
                    if t.saturating_sub(self.since_ms) >= timing.for_ms {
                        self.fire(t);
                        Some(Transition::Firing(sev))
                    } else {
                        None
                    }
                }
            },
            Phase::Firing => match reading.and_then(|r| r.held) {
                Some(sev) => {
                    self.cleared_ms = None;
                    let from = self.severity;
                    self.severity = sev;
                    (from != sev).then_some(Transition::SeverityChanged { from, to: sev })
                }
                None => {
                    let cleared = *self.cleared_ms.get_or_insert(t);
                    if t.saturating_sub(cleared) >= timing.keep_firing_ms {
                        self.phase = Phase::Inactive;
                        self.cleared_ms = None;
                        Some(Transition::Resolved {
                            absent: reading.is_none(),
                        })
                    } else {
                        None
                    }
                }
            },
        }
    }

    fn fire(&mut self, t: u64) {
        self.phase = Phase::Firing;
        self.fired_ms = t;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rstest::rstest;

    use super::*;

    const W: Option<Severity> = Some(Severity::Warning);
    const C: Option<Severity> = Some(Severity::Critical);

    fn r(trigger: Option<Severity>, held: Option<Severity>) -> Option<Reading> {
        Some(Reading { trigger, held })
    }
    const HOT: Option<Reading> = Some(Reading {
        trigger: W,
        held: W,
    });
    const BAND: Option<Reading> = Some(Reading {
        trigger: None,
        held: W,
    });
    const COOL: Option<Reading> = Some(Reading {
        trigger: None,
        held: None,
    });

    fn timing(for_s: u64, keep_s: u64) -> Timing {
        Timing {
            for_ms: for_s * 1000,
            keep_firing_ms: keep_s * 1000,
        }
    }

    /// Runs (second, reading) steps and returns the transitions with their second.
    fn run(t: Timing, steps: &[(u64, Option<Reading>)]) -> Vec<(u64, Transition)> {
        let mut s = SeriesState::default();
        steps
            .iter()
            .filter_map(|(sec, rd)| s.observe(sec * 1000, *rd, t).map(|tr| (*sec, tr)))
            .collect()
    }

    #[rstest]
    #[case::fires_at_once_without_for(timing(0, 0), vec![(0, HOT)], vec![(0, Transition::Firing(Severity::Warning))])]
    #[case::pending_then_firing_after_for(timing(10, 0), vec![(0, HOT), (5, HOT), (10, HOT)],
        vec![(0, Transition::Pending(Severity::Warning)), (10, Transition::Firing(Severity::Warning))])]
    #[case::pending_resets_when_condition_stops(timing(10, 0), vec![(0, HOT), (5, COOL), (10, HOT), (15, HOT)],
        vec![(0, Transition::Pending(Severity::Warning)), (10, Transition::Pending(Severity::Warning))])]
    #[case::band_does_not_keep_pending(timing(10, 0), vec![(0, HOT), (5, BAND), (10, HOT)],
        vec![(0, Transition::Pending(Severity::Warning)), (10, Transition::Pending(Severity::Warning))])]
    #[case::band_keeps_firing(timing(0, 0), vec![(0, HOT), (5, BAND), (10, BAND), (15, COOL)],
        vec![(0, Transition::Firing(Severity::Warning)), (15, Transition::Resolved { absent: false })])]
    #[case::keep_firing_for(timing(0, 10), vec![(0, HOT), (5, COOL), (14, COOL), (15, COOL)],
        vec![(0, Transition::Firing(Severity::Warning)), (15, Transition::Resolved { absent: false })])]
    #[case::keep_firing_for_restarts_when_hot_again(timing(0, 10), vec![(0, HOT), (5, COOL), (8, HOT), (15, COOL), (24, COOL), (25, COOL)],
        vec![(0, Transition::Firing(Severity::Warning)), (25, Transition::Resolved { absent: false })])]
    #[case::escalates_and_deescalates(timing(0, 0), vec![(0, HOT), (5, r(C, C)), (10, HOT), (15, COOL)],
        vec![(0, Transition::Firing(Severity::Warning)),
             (5, Transition::SeverityChanged { from: Severity::Warning, to: Severity::Critical }),
             (10, Transition::SeverityChanged { from: Severity::Critical, to: Severity::Warning }),
             (15, Transition::Resolved { absent: false })])]
    #[case::fires_with_the_severity_reached_while_pending(timing(10, 0), vec![(0, HOT), (10, r(C, C))],
        vec![(0, Transition::Pending(Severity::Warning)), (10, Transition::Firing(Severity::Critical))])]
    #[case::absent_series_resolves(timing(0, 0), vec![(0, HOT), (5, None)],
        vec![(0, Transition::Firing(Severity::Warning)), (5, Transition::Resolved { absent: true })])]
    #[case::absent_series_resolves_after_keep_firing_for(timing(0, 10), vec![(0, HOT), (5, None), (14, None), (15, None)],
        vec![(0, Transition::Firing(Severity::Warning)), (15, Transition::Resolved { absent: true })])]
    #[case::absent_pending_resets(timing(10, 0), vec![(0, HOT), (5, None), (10, HOT)],
        vec![(0, Transition::Pending(Severity::Warning)), (10, Transition::Pending(Severity::Warning))])]
    fn transitions(
        #[case] t: Timing,
        #[case] steps: Vec<(u64, Option<Reading>)>,
        #[case] want: Vec<(u64, Transition)>,
    ) {
        assert_eq!(run(t, &steps), want);
    }

    fn reading() -> impl Strategy<Value = Option<Reading>> {
        prop_oneof![Just(HOT), Just(BAND), Just(COOL), Just(None), Just(r(C, C))]
    }

    proptest! {
        /// Whatever the readings, a series never fires before it has held for `for`.
        #[test]
        fn never_fires_before_for(
            for_s in 1u64..120,
            steps in proptest::collection::vec((1u64..20, reading()), 1..60),
        ) {
            let t = timing(for_s, 0);
            let mut s = SeriesState::default();
            let mut now = 0u64;
            for (dt, rd) in steps {
                now += dt * 1000;
                if let Some(Transition::Firing(_)) = s.observe(now, rd, t) {
                    prop_assert!(now - s.since_ms >= t.for_ms);
                }
            }
        }

        /// Once firing, readings inside the band (or beyond the trigger) never resolve it, so
        /// there is no firing → resolved → firing flapping.
        #[test]
        fn never_flaps_inside_the_band(
            steps in proptest::collection::vec((1u64..20, prop_oneof![Just(HOT), Just(BAND), Just(r(C, C))]), 1..80),
        ) {
            let t = timing(0, 0);
            let mut s = SeriesState::default();
            let mut now = 0u64;
            prop_assert_eq!(s.observe(now, HOT, t), Some(Transition::Firing(Severity::Warning)));
            for (dt, rd) in steps {
                now += dt * 1000;
                let tr = s.observe(now, rd, t);
                prop_assert!(!matches!(tr, Some(Transition::Resolved { .. } | Transition::Firing(_))), "{tr:?}");
            }
        }
    }
}
