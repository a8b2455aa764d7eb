//! The rule engine: every rule, judged against each snapshot. Pure: it is handed the time and
//! the snapshot and returns the transitions; the caller logs, shows, queues and saves them.
//!
//! Time: the engine keeps its own timeline in Unix ms. At the first evaluation it is anchored
//! to the wall clock; afterwards it advances with the monotonic clock, so a wall-clock step
//! (NTP) never shortens or stretches a `for`. Saved states carry these Unix ms, so after a
//! restart a pending `for` resumes from when the condition began.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::baseline::Baseline;
use super::config::RuleConfig;
use super::event::{AlertEvent, Severity};
use super::rule::{ActiveAlert, RuleRuntime, SeriesKey};
use super::state::{Phase, SeriesState};
use crate::model::Snapshot;

/// What survives a restart (`rules.json` in the state directory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    pub version: u32,
    /// Next event id (event ids never repeat across restarts).
    pub next_id: u64,
    pub rules: BTreeMap<String, SavedRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedRule {
    /// The rule's whole config: its alert states are restored only into the same rule.
    pub fingerprint: String,
    /// What the baselines were learned from: they survive a change of thresholds.
    pub baseline_fingerprint: String,
    pub series: Vec<SavedSeries>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSeries {
    pub attributes: SeriesKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SeriesState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

const STATE_VERSION: u32 = 1;

/// Takes the next event id. Ids saturate at `u64::MAX` instead of wrapping to 0: a sink that
/// drops ids it has seen would take every event after a wrap for an old one. Counting there
/// takes 584,000 years at a million events a second, so only a planted or corrupt state file
/// gets near it; from there on ids stop increasing, and never go back.
pub(super) fn take_id(next: &mut u64) -> u64 {
    let id = *next;
    *next = next.saturating_add(1);
    id
}

fn fingerprint(r: &RuleConfig) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

fn baseline_fingerprint(r: &RuleConfig) -> String {
    serde_json::to_string(&(&r.metric, &r.matchers, &r.baseline, &r.over)).unwrap_or_default()
}

#[derive(Debug)]
pub struct Engine {
    rules: Vec<RuleRuntime>,
    anchor: Option<(Instant, u64)>,
    next_id: u64,
}

impl Engine {
    pub fn new(rules: &[RuleConfig]) -> Self {
        Engine {
            rules: rules.iter().cloned().map(RuleRuntime::new).collect(),
            anchor: None,
            next_id: 1,
        }
    }

    /// Milliseconds on the engine's timeline (see the module comment).
    pub fn timeline_ms(&mut self, now: Instant, wall_ms: u64) -> u64 {
        let (at, wall) = *self.anchor.get_or_insert((now, wall_ms));
        let elapsed = u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(0);
        wall.saturating_add(elapsed)
    }

    /// Judges every rule against `snapshot` at `now`; `wall_ms` anchors the timeline.
    pub fn evaluate(&mut self, now: Instant, wall_ms: u64, snapshot: &Snapshot) -> Vec<AlertEvent> {
        let t = self.timeline_ms(now, wall_ms);
        self.evaluate_at(t, snapshot)
    }

    /// Judges every rule at timeline ms `t`.
    pub fn evaluate_at(&mut self, t: u64, snapshot: &Snapshot) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for rule in &mut self.rules {
            events.extend(rule.evaluate(t, snapshot, &mut self.next_id));
        }
        events
    }

    /// Swaps in a reloaded rule list. A rule whose config did not change keeps its states,
    /// windows and baselines; a changed rule starts afresh but keeps baselines learned from
    /// the same metric, matchers and spec. Removed or changed rules drop their alerts without
    /// events.
    pub fn replace_rules(&mut self, rules: &[RuleConfig]) {
        let mut old: BTreeMap<String, RuleRuntime> = std::mem::take(&mut self.rules)
            .into_iter()
            .map(|r| (r.name().to_owned(), r))
            .collect();
        self.rules = rules
            .iter()
            .map(|cfg| match old.remove(cfg.name.as_str()) {
                Some(prev) if prev.config == *cfg => prev,
                Some(prev) if baseline_fingerprint(&prev.config) == baseline_fingerprint(cfg) => {
                    let mut fresh = RuleRuntime::new(cfg.clone());
                    for (key, s) in prev.series {
                        if let Some(b) = s.baseline {
                            fresh.series.entry(key).or_default().baseline = Some(b);
                        }
                    }
                    fresh
                }
                _ => RuleRuntime::new(cfg.clone()),
            })
            .collect();
    }

    /// Enabled rules whose metric was absent from the last snapshot (no GPU, no ZFS, ...).
    pub fn quiet_rules(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .filter(|r| r.config.enabled && r.quiet)
            .map(RuleRuntime::name)
    }

    /// Pending and firing series of every rule.
    pub fn active(&self) -> Vec<ActiveAlert> {
        self.rules.iter().flat_map(RuleRuntime::active).collect()
    }

    /// Firing series per (rule, severity), zeros included for every severity a rule can raise,
    /// for the hostwarden.alert.count metric. The rule is named by its label, so a point
    /// shares the text instead of copying it.
    pub fn firing_counts(&self) -> impl Iterator<Item = (&Arc<str>, Severity, u64)> {
        // A quiet rule has no points, unless an alert of its is still firing (keep_firing_for).
        let firing = |r: &RuleRuntime| r.series.values().any(|s| s.state.phase == Phase::Firing);
        self.rules
            .iter()
            .filter(move |r| r.config.enabled && (!r.quiet || firing(r)))
            .flat_map(|r| {
                r.severities().map(move |sev| {
                    let n = r
                        .series
                        .values()
                        .filter(|s| s.state.phase == Phase::Firing && s.state.severity == sev)
                        .count();
                    (r.label(), sev, n as u64)
                })
            })
    }

    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Hands out the next event id, for an event raised outside the rules (a tuner rollback), so
    /// ids stay increasing in the outbox.
    pub fn allocate_id(&mut self) -> u64 {
        take_id(&mut self.next_id)
    }

    /// Event ids continue after `id` (the outbox may hold events the saved state predates).
    pub fn ensure_next_id_after(&mut self, id: u64) {
        self.next_id = self.next_id.max(id.saturating_add(1));
    }

    /// The state to save: pending and firing series, and learned baselines.
    pub fn save(&self) -> EngineState {
        let rules = self
            .rules
            .iter()
            .map(|r| {
                let series = r
                    .series
                    .iter()
                    .filter(|(_, s)| s.state.phase != Phase::Inactive || s.baseline.is_some())
                    .map(|(k, s)| SavedSeries {
                        attributes: k.clone(),
                        state: (s.state.phase != Phase::Inactive).then_some(s.state),
                        baseline: s.baseline.clone(),
                    })
                    .collect();
                let saved = SavedRule {
                    fingerprint: fingerprint(&r.config),
                    baseline_fingerprint: baseline_fingerprint(&r.config),
                    series,
                };
                (r.name().to_owned(), saved)
            })
            .collect();
        EngineState {
            version: STATE_VERSION,
            next_id: self.next_id,
            rules,
        }
    }

    /// Restores saved state into rules with the same config (baselines: same metric, matchers
    /// and spec). Returns how many alert states were restored.
    pub fn restore(&mut self, saved: EngineState) -> usize {
        self.ensure_next_id_after(saved.next_id.saturating_sub(1));
        let mut restored = 0;
        for rule in &mut self.rules {
            let Some(s) = saved.rules.get(rule.name()) else {
                continue;
            };
            let same_rule = s.fingerprint == fingerprint(&rule.config);
            let same_baseline = s.baseline_fingerprint == baseline_fingerprint(&rule.config);
            for ss in &s.series {
                let entry = rule.series.entry(ss.attributes.clone()).or_default();
                if same_rule && let Some(st) = ss.state {
                    entry.state = st;
                    restored += 1;
                    rule.hold_absent_once = true;
                }
                if same_baseline {
                    entry.baseline.clone_from(&ss.baseline);
                }
            }
        }
        restored
    }
}

#[cfg(test)]
mod tests;
