//! Observe mode: each tick, the policy's recommendation from the snapshot and the Ollama view;
//! logged at INFO only when it changes, shown in the terminal view, and added to `once`'s JSON.

use std::collections::BTreeMap;

use serde::Serialize;
use tracing::info;

use crate::collectors::ollama::{OllamaView, OllamaViewCell};
use crate::model::Snapshot;
use crate::tuner::config::{KeyBound, TunerConfig, TunerMode};
use crate::tuner::policy::decide;
use crate::tuner::policy::decision::Decision;
use crate::tuner::policy::inputs::PolicyInputs;

/// The recommendation and the context it was made in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    pub mode: TunerMode,
    /// True when nobody watches the unit (no systemd): the tuner can only recommend.
    pub advice_only: bool,
    /// The OLLAMA_* values in force now, when the unit's environment is known.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub current: std::collections::BTreeMap<String, String>,
    pub decision: Decision,
}

/// The recommendation for this tick; `None` while Ollama is not answering (a down Ollama says
/// nothing about what it needs, and deciding from nothing would flip the advice).
pub fn advise(
    snapshot: &Snapshot,
    view: Option<&OllamaView>,
    tuner: &TunerConfig,
) -> Option<Advice> {
    let view = view.filter(|v| v.up)?;
    let inputs = PolicyInputs::from_snapshot(snapshot, Some(view));
    Some(advice_from(&inputs, view, tuner))
}

/// The advice these inputs give: what `advise` returns, and what `observe` decides afresh.
fn advice_from(inputs: &PolicyInputs, view: &OllamaView, tuner: &TunerConfig) -> Advice {
    Advice {
        mode: tuner.mode,
        advice_only: view.advice_only(),
        decision: decide(inputs, &tuner.ollama),
        current: inputs.current.clone(),
    }
}

/// What the last advice was decided from. The policy is pure, so the same inputs and bounds
/// give the same decision: a tick where nothing changed keeps the last advice instead of
/// formatting every value and reason again (issue 20: most of the tuner's allocations).
#[derive(Debug)]
struct DecidedFrom {
    inputs: PolicyInputs,
    bounds: BTreeMap<String, KeyBound>,
}

/// Keeps the last recommendation so that only changes are logged.
#[derive(Debug, Default)]
pub struct TunerObserver {
    view: OllamaViewCell,
    last: Option<Advice>,
    decided_from: Option<DecidedFrom>,
}

impl TunerObserver {
    /// Reads the views the Ollama collector publishes into `view`.
    pub fn new(view: OllamaViewCell) -> Self {
        TunerObserver {
            view,
            last: None,
            decided_from: None,
        }
    }

    /// Decides for this tick; logs at INFO when the recommendation changed. Returns the
    /// current advice (the last one while Ollama is down).
    pub fn observe(&mut self, snapshot: &Snapshot, tuner: &TunerConfig) -> Option<&Advice> {
        let latest = self.view.latest();
        // As `advise`: nothing is decided while Ollama is down.
        let Some(view) = latest.as_deref().filter(|v| v.up) else {
            return self.last.as_ref();
        };
        let inputs = PolicyInputs::from_snapshot(snapshot, Some(view));
        if self.is_current(&inputs, view, tuner) {
            return self.last.as_ref();
        }
        let advice = advice_from(&inputs, view, tuner);
        if values_changed(self.last.as_ref().map(|a| &a.decision), &advice.decision) {
            log_change(self.last.as_ref().map(|a| &a.decision), &advice);
        }
        self.last = Some(advice);
        self.decided_from = Some(DecidedFrom {
            inputs,
            bounds: tuner.ollama.clone(),
        });
        self.last.as_ref()
    }

    /// True when the last advice was made from these very inputs, bounds, mode and unit watch:
    /// `advise` would return it again.
    fn is_current(&self, inputs: &PolicyInputs, view: &OllamaView, tuner: &TunerConfig) -> bool {
        let (Some(last), Some(from)) = (&self.last, &self.decided_from) else {
            return false;
        };
        last.mode == tuner.mode
            && last.advice_only == view.advice_only()
            && from.bounds == tuner.ollama
            && from.inputs == *inputs
    }

    pub fn last(&self) -> Option<&Advice> {
        self.last.as_ref()
    }

    /// One line for the terminal view.
    pub fn render(&self) -> String {
        match &self.last {
            None => "tuner   waiting for Ollama to answer\n".to_owned(),
            Some(a) => format!("tuner   {}\n", render_advice(a)),
        }
    }
}

/// `observe, advice-only: OLLAMA_NUM_PARALLEL=4 ...` with the values that differ from the ones
/// in force marked `(now X)`.
pub fn render_advice(a: &Advice) -> String {
    let keys: Vec<String> = a
        .decision
        .keys
        .iter()
        .map(|(k, d)| match a.current.get(k) {
            Some(now) if *now != d.value => format!("{k}={} (now {now})", d.value),
            _ => format!("{k}={}", d.value),
        })
        .collect();
    let mode = match a.mode {
        TunerMode::Observe => "observe",
        TunerMode::Apply => "apply",
    };
    format!(
        "{mode}{}: {}",
        if a.advice_only { ", advice-only" } else { "" },
        keys.join(" ")
    )
}

/// Whether a recommendation changed: a key or a value, not only the figures in the reasons,
/// which move with the host's load (comparing whole decisions logged "recommendation changed"
/// with the same values 66 times in three minutes on the benchmark's world under load).
fn values_changed(before: Option<&Decision>, after: &Decision) -> bool {
    before.is_none_or(|b| {
        !b.keys
            .iter()
            .map(|(k, d)| (k, &d.value))
            .eq(after.keys.iter().map(|(k, d)| (k, &d.value)))
    })
}

fn log_change(before: Option<&Decision>, a: &Advice) {
    info!(
        advice_only = a.advice_only,
        env = %a.decision.keys.iter().map(|(k, d)| format!("{k}={}", d.value)).collect::<Vec<_>>().join(" "),
        "Tuner recommendation changed."
    );
    for (key, d) in &a.decision.keys {
        let old = before
            .and_then(|b| b.keys.get(key))
            .map(|o| o.value.as_str());
        if old == Some(d.value.as_str()) {
            continue;
        }
        info!(
            key = %key,
            value = %d.value,
            previous = old.unwrap_or("-"),
            in_force = a.current.get(key).map_or("-", String::as_str),
            operator = d.constrained_by_operator,
            reasons = %d.reasons.join("; "),
            "Tuner recommends."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::ollama::UnitWatch;
    use tokio::time::Instant;

    fn view(up: bool) -> OllamaView {
        OllamaView {
            url: "http://127.0.0.1:11434".into(),
            up,
            probe_seconds: None,
            problems: Vec::new(),
            version: Some("0.30.11".into()),
            models: Some(Vec::new()),
            unit: UnitWatch::NotWatched {
                reason: "no systemd".into(),
            },
            process: None,
            at: Instant::now(),
        }
    }

    #[tokio::test]
    async fn keeps_the_last_advice_while_ollama_is_down() {
        let cell = OllamaViewCell::default();
        let mut obs = TunerObserver::new(cell.clone());
        let snap = Snapshot::default();
        let cfg = TunerConfig::default();
        assert!(obs.observe(&snap, &cfg).is_none());
        assert_eq!(obs.render(), "tuner   waiting for Ollama to answer\n");
        cell.publish(view(true));
        let first = obs.observe(&snap, &cfg).cloned().unwrap();
        assert!(first.advice_only);
        cell.publish(view(false));
        assert_eq!(obs.observe(&snap, &cfg), Some(&first));
        assert!(
            obs.render()
                .starts_with("tuner   observe, advice-only: OLLAMA_CONTEXT_LENGTH=4096")
        );
    }

    #[tokio::test]
    async fn decides_again_only_when_an_input_or_a_bound_changed() {
        let cell = OllamaViewCell::default();
        let mut obs = TunerObserver::new(cell.clone());
        let mut cfg = TunerConfig::default();
        cell.publish(view(true));
        let first = obs.observe(&Snapshot::default(), &cfg).cloned().unwrap();
        assert_eq!(
            obs.observe(&Snapshot::default(), &cfg),
            advise(&Snapshot::default(), Some(&view(true)), &cfg).as_ref()
        );
        cfg.ollama.insert(
            "OLLAMA_NUM_PARALLEL".into(),
            crate::tuner::config::KeyBound {
                min: None,
                max: None,
                pin: Some(toml::Value::Integer(3)),
            },
        );
        let pinned = obs.observe(&Snapshot::default(), &cfg).cloned().unwrap();
        assert_eq!(first.decision.keys["OLLAMA_NUM_PARALLEL"].value, "1");
        assert_eq!(pinned.decision.keys["OLLAMA_NUM_PARALLEL"].value, "3");
        assert_eq!(
            Some(&pinned),
            advise(&Snapshot::default(), Some(&view(true)), &cfg).as_ref()
        );
    }

    #[test]
    fn only_a_key_or_a_value_is_a_changed_recommendation() {
        let a = advise(
            &Snapshot::default(),
            Some(&view(true)),
            &TunerConfig::default(),
        )
        .unwrap()
        .decision;
        assert!(values_changed(None, &a));
        let mut reworded = a.clone();
        for d in reworded.keys.values_mut() {
            d.reasons = vec!["other numbers, same values".into()];
        }
        assert!(!values_changed(Some(&a), &reworded));
        let mut revalued = a.clone();
        if let Some(d) = revalued.keys.get_mut("OLLAMA_NUM_PARALLEL") {
            d.value = "7".into();
        }
        assert!(values_changed(Some(&a), &revalued));
        let mut fewer = a.clone();
        fewer.keys.remove("OLLAMA_NUM_PARALLEL");
        assert!(values_changed(Some(&a), &fewer));
    }

    #[test]
    fn render_marks_values_that_differ_from_the_ones_in_force() {
        let mut a = advise(
            &Snapshot::default(),
            Some(&view(true)),
            &TunerConfig::default(),
        )
        .unwrap();
        a.current.insert("OLLAMA_NUM_PARALLEL".into(), "4".into());
        a.advice_only = false;
        let line = render_advice(&a);
        assert!(line.starts_with("observe: "), "{line}");
        assert!(line.contains("OLLAMA_NUM_PARALLEL=1 (now 4)"), "{line}");
    }
}
