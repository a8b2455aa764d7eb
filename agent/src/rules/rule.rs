//! One rule at run time: finds its series in a snapshot, turns each value into a `Reading`
//! (over windows, baselines, per-device critical thresholds, hysteresis) and builds the events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::baseline::Baseline;
use super::config::{OverFn, RuleConfig};
use super::event::{AlertEvent, AlertState, Severity};
use super::matcher::{Matcher, all_match};
use super::state::{Phase, Reading, SeriesState, Timing, Transition};
use super::window::Window;
use crate::model::{Attrs, InstrumentKind, MetricName, MetricPoint, Snapshot};
use crate::sys::time::millis;

/// A series is named by its attributes, as exported text (stable across restarts).
pub type SeriesKey = BTreeMap<String, String>;

pub fn series_key(attrs: &Attrs) -> SeriesKey {
    attrs
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_text()))
        .collect()
}

/// What a rule knows about one series.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub state: SeriesState,
    pub window: Window,
    pub baseline: Option<Baseline>,
    /// Last judged value, thresholds and baseline, for events and the terminal view.
    pub value: f64,
    pub threshold: Option<f64>,
    pub clear: Option<f64>,
    pub baseline_value: Option<f64>,
    /// The evaluation that last found this series in a snapshot (`RuleRuntime::evaluations`).
    seen_in: u64,
}

/// A pending or firing series, for the terminal view and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    pub rule: String,
    pub state: AlertState,
    pub severity: Severity,
    pub attributes: SeriesKey,
    pub value: f64,
    pub threshold: Option<f64>,
    pub since_ms: u64,
    /// The rule's metric (the Alertmanager sink describes an alert it did not see fire).
    #[serde(default)]
    pub metric: String,
    /// When the series started firing (meaningful while firing): Alertmanager's startsAt.
    #[serde(default)]
    pub fired_ms: u64,
}

#[derive(Debug, Clone)]
pub struct RuleRuntime {
    pub config: RuleConfig,
    metric: Option<MetricName>,
    matchers: Option<Vec<Matcher>>,
    critical_from: Option<(MetricName, Vec<Matcher>)>,
    /// The rule's name as an attribute value, shared by each tick's alert-count points.
    label: Arc<str>,
    pub series: BTreeMap<SeriesKey, Series>,
    /// The key of each attribute set the rule judges, kept while its series lives: building
    /// the key (a map of strings) for every point every tick was most of the rules'
    /// allocations (issue 20).
    keys: HashMap<Attrs, SeriesKey>,
    /// Evaluations so far; a series not `seen_in` the current one is absent from it.
    evaluations: u64,
    /// True when the last snapshot held no point of the rule's metric at all.
    pub quiet: bool,
    /// Set when state was restored: on the next evaluation a series absent from the snapshot
    /// keeps its state. A rate-derived value (CPU utilisation, any `rate`/`increase`) cannot be
    /// computed on the first tick after a start, and a firing alert must not resolve (and fire
    /// again) because of that.
    pub hold_absent_once: bool,
    /// When this rule last evaluated a snapshot (None before its first since the start):
    /// a counter series first seen after that was born in between, from zero.
    last_eval_ms: Option<u64>,
}

impl RuleRuntime {
    pub fn new(config: RuleConfig) -> Self {
        let metric = MetricName::from_name(&config.metric);
        let matchers = Matcher::compile(&config.matchers);
        let critical_from = config.critical_from.as_ref().and_then(|f| {
            Some((
                MetricName::from_name(&f.metric)?,
                Matcher::compile(&f.matchers)?,
            ))
        });
        RuleRuntime {
            label: Arc::from(config.name.as_str()),
            config,
            metric,
            matchers,
            critical_from,
            series: BTreeMap::new(),
            keys: HashMap::new(),
            evaluations: 0,
            quiet: false,
            hold_absent_once: false,
            last_eval_ms: None,
        }
    }

    pub fn name(&self) -> &str {
        self.config.name.as_str()
    }

    /// The name as an attribute value (`alert.rule`), without a copy per point.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    fn timing(&self) -> Timing {
        Timing {
            for_ms: millis(self.config.for_),
            keep_firing_ms: millis(self.config.keep_firing_for),
        }
    }

    /// Judges every matching series at `t` (Unix ms on the engine's timeline).
    pub fn evaluate(&mut self, t: u64, snap: &Snapshot, next_id: &mut u64) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let (Some(metric), Some(matchers)) = (self.metric, self.matchers.as_ref()) else {
            self.quiet = true;
            return events;
        };
        if !self.config.enabled {
            self.series.clear();
            self.keys.clear();
            return events;
        }
        self.quiet = snap.points_named(metric).next().is_none();
        let born_after = self.last_eval_ms.replace(t);
        let timing = self.timing();
        self.evaluations += 1;
        let pass = self.evaluations;
        for p in snap.points_named(metric) {
            if !all_match(matchers, &p.attributes) {
                continue;
            }
            if !self.keys.contains_key(&p.attributes) {
                let key = series_key(&p.attributes);
                self.keys.insert(p.attributes.clone(), key);
            }
            let key = &self.keys[&p.attributes];
            let critical = self.critical_for(p, snap);
            if !self.series.contains_key(key) {
                let born = self.born(metric, born_after);
                self.series.insert(key.clone(), born);
            }
            let Some(series) = self.series.get_mut(key) else {
                continue;
            };
            series.seen_in = pass;
            let reading = read(&self.config, t, p.value.as_f64(), critical, series);
            if let Some(tr) = series.state.observe(t, reading, timing) {
                events.push(event(&self.config, t, key, series, tr, next_id));
            }
        }
        let hold = std::mem::take(&mut self.hold_absent_once);
        let absent: Vec<SeriesKey> = if hold {
            Vec::new()
        } else {
            self.series
                .iter()
                .filter(|(_, s)| s.seen_in != pass)
                .map(|(k, _)| k.clone())
                .collect()
        };
        for key in absent {
            let Some(mut series) = self.series.remove(&key) else {
                continue;
            };
            if let Some(tr) = series.state.observe(t, None, timing) {
                events.push(event(&self.config, t, &key, &series, tr, next_id));
            }
            // Keep what must be remembered: an alert still firing, a learned baseline, and a
            // window still in reach (so a series back after a missed tick is not "born").
            let window_ms = self.config.over.as_ref().map_or(0, |o| millis(o.window));
            let recent = series.window.newest().is_some_and(|at| at + window_ms >= t);
            if series.state.phase != Phase::Inactive || series.baseline.is_some() || recent {
                self.series.insert(key, series);
            }
        }
        // A dropped series takes its key along.
        let series = &self.series;
        self.keys.retain(|_, key| series.contains_key(key));
        events
    }

    /// A new series. A counter judged by `increase` or `rate` that first appears after this
    /// rule's previous evaluation started from zero since then (a GPU's first XID of a kind
    /// arrives as a new series at 1), so its window starts with a 0 at that evaluation: the
    /// first rise counts, as Prometheus counts it from a series' created timestamp. Never on
    /// the first evaluation after a start, when every series is new.
    fn born(&self, metric: MetricName, born_after: Option<u64>) -> Series {
        let mut series = Series::default();
        if let (Some(prev), Some(over)) = (born_after, &self.config.over)
            && metric.kind() == InstrumentKind::Counter
            && matches!(over.func, OverFn::Increase | OverFn::Rate)
        {
            series.window.push(prev, 0.0, millis(over.window));
        }
        series
    }

    /// The critical threshold of this series: fixed, or read from the matching point of
    /// `critical_from` that agrees on every attribute the two points share.
    fn critical_for(&self, p: &MetricPoint, snap: &Snapshot) -> Option<f64> {
        let Some((metric, matchers)) = &self.critical_from else {
            return self.config.critical;
        };
        let own_keys: Vec<_> = matchers.iter().map(Matcher::key).collect();
        let from = snap.points_named(*metric).find(|q| {
            all_match(matchers, &q.attributes)
                && q.attributes.iter().all(|(k, v)| {
                    own_keys.contains(k) || p.attributes.get(*k).is_none_or(|pv| pv == v)
                })
        });
        match (from, self.config.critical) {
            (Some(q), Some(c)) => Some(if self.config.op.beyond(c, q.value.as_f64()) {
                q.value.as_f64()
            } else {
                c
            }),
            (Some(q), None) => Some(q.value.as_f64()),
            (None, c) => c,
        }
    }

    /// Pending and firing series.
    pub fn active(&self) -> impl Iterator<Item = ActiveAlert> + '_ {
        self.series.iter().filter_map(|(k, s)| {
            let state = match s.state.phase {
                Phase::Inactive => return None,
                Phase::Pending => AlertState::Pending,
                Phase::Firing => AlertState::Firing,
            };
            Some(ActiveAlert {
                rule: self.name().to_owned(),
                state,
                severity: s.state.severity,
                attributes: k.clone(),
                value: s.value,
                threshold: s.threshold,
                since_ms: s.state.since_ms,
                metric: self.config.metric.clone(),
                fired_ms: s.state.fired_ms,
            })
        })
    }

    /// Severities this rule can raise (for the hostwarden.alert.count metric's zero points).
    pub fn severities(&self) -> impl Iterator<Item = Severity> + '_ {
        let cfg = &self.config;
        [Severity::Warning, Severity::Critical]
            .into_iter()
            .filter(move |sev| match sev {
                Severity::Warning => cfg.warning.is_some(),
                Severity::Critical => cfg.critical.is_some() || cfg.critical_from.is_some(),
            })
    }
}

/// Turns the raw value into a reading; None when it cannot be judged this tick.
fn read(
    cfg: &RuleConfig,
    t: u64,
    raw: f64,
    critical: Option<f64>,
    s: &mut Series,
) -> Option<Reading> {
    let value = match &cfg.over {
        Some(over) => {
            s.window.push(t, raw, millis(over.window));
            s.window.aggregate(over.func)?
        }
        None => raw,
    };
    s.value = value;
    let judged = match &cfg.baseline {
        Some(spec) => {
            let b = s.baseline.get_or_insert_with(|| Baseline::new(t));
            let base = b.value(t, spec);
            let warmed = b.warmed_up(t, spec);
            b.learn(t, value, spec);
            s.baseline_value = base;
            let base = base.filter(|b| warmed && b.abs() > f64::EPSILON)?;
            value / base
        }
        None => value,
    };
    let op = cfg.op;
    let warning = cfg.warning;
    let trigger = if critical.is_some_and(|c| op.holds(judged, c)) {
        Some(Severity::Critical)
    } else if warning.is_some_and(|w| op.holds(judged, w)) {
        Some(Severity::Warning)
    } else {
        None
    };
    let clear = cfg.clear.or(warning).or(critical);
    s.threshold = match trigger {
        Some(Severity::Critical) => critical,
        _ => warning.or(critical),
    };
    s.clear = clear;
    let in_band = clear.is_some_and(|c| op.holds(judged, c));
    let held = trigger.or(in_band.then(|| mildest(cfg)));
    Some(Reading { trigger, held })
}

fn event(
    cfg: &RuleConfig,
    t: u64,
    key: &SeriesKey,
    s: &Series,
    tr: Transition,
    next_id: &mut u64,
) -> AlertEvent {
    let (state, severity) = match tr {
        Transition::Pending(sev) => (AlertState::Pending, sev),
        Transition::Firing(sev) => (AlertState::Firing, sev),
        Transition::SeverityChanged { to, .. } => (AlertState::Firing, to),
        Transition::Resolved { .. } => (AlertState::Resolved, s.state.severity),
    };
    let threshold = match tr {
        Transition::Resolved { .. } => s.clear,
        _ => s.threshold,
    };
    let id = super::engine::take_id(next_id);
    AlertEvent {
        id,
        rule: cfg.name.as_str().to_owned(),
        metric: cfg.metric.clone(),
        severity,
        state,
        attributes: key.clone(),
        value: s.value,
        threshold,
        baseline: s.baseline_value.filter(|_| cfg.baseline.is_some()),
        since_ms: s.state.since_ms,
        at_ms: t,
        summary: super::summary::sentence(cfg, key, s, tr, t),
    }
}

/// The mildest severity a rule can raise (what a firing alert holds inside the band).
fn mildest(cfg: &RuleConfig) -> Severity {
    if cfg.warning.is_some() {
        Severity::Warning
    } else {
        Severity::Critical
    }
}
