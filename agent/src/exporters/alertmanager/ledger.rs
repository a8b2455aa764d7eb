//! What the sink knows, shared by the daemon (which feeds it each tick) and the delivery tasks
//! (one per URL): the alerts firing now, and per URL an `Outbox` of alert changes not yet
//! accepted by that member. Each URL has its own queue so one dead member neither holds back
//! nor loses what the others get. Saved as `alertmanager.json` in the state directory, so a
//! restart of the agent loses nothing either.
//!
//! Queued events are normalised for Alertmanager: `since_ms` is `startsAt` (the moment the
//! alert started firing, not when pending began) and a `Resolved` event's `at_ms` is `endsAt`.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::rules::ActiveAlert;
use crate::rules::event::{AlertEvent, AlertState};
use crate::rules::outbox::{Outbox, SavedOutbox};
use crate::rules::summary::series_name;

/// An event raised outside the rules (a tuner rollback) has no resolve to wait for; it is sent
/// with an `endsAt` this far ahead, so Alertmanager notifies once and then lets it expire.
pub const ONE_SHOT_MS: u64 = 15 * 60 * 1000;

/// An alert's identity before labels: the rule and the series.
type Key = (String, BTreeMap<String, String>);

fn key(rule: &str, attributes: &BTreeMap<String, String>) -> Key {
    (rule.to_owned(), attributes.clone())
}

/// One URL's delivery state (what `hostwarden status` shows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivery {
    pub last_success_ms: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<u64>,
    pub delivered: u64,
    pub failures: u64,
}

#[derive(Debug)]
pub struct Queue {
    pub url: String,
    pub outbox: Outbox,
    pub delivery: Delivery,
}

/// The ledger as saved on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedLedger {
    #[serde(default)]
    pub firing: Vec<AlertEvent>,
    #[serde(default)]
    pub queues: BTreeMap<String, SavedOutbox>,
}

#[derive(Debug)]
pub struct Ledger {
    firing: BTreeMap<Key, AlertEvent>,
    queues: Vec<Queue>,
    next_id: u64,
    generation: u64,
}

impl Ledger {
    /// A ledger for `urls`, with what was saved for them (queues of URLs no longer configured
    /// are let go).
    pub fn new(urls: &[String], capacity: usize, saved: SavedLedger) -> Self {
        let mut saved_queues = saved.queues;
        let queues: Vec<Queue> = urls
            .iter()
            .map(|url| Queue {
                url: url.clone(),
                outbox: saved_queues.remove(url).map_or_else(
                    || Outbox::new(capacity),
                    |s| Outbox::from_saved(capacity, s),
                ),
                delivery: Delivery::default(),
            })
            .collect();
        let next_id = queues
            .iter()
            .filter_map(|q| q.outbox.last_id())
            .max()
            .map_or(1, |id| id + 1);
        let firing = saved
            .firing
            .into_iter()
            .map(|e| (key(&e.rule, &e.attributes), e))
            .collect();
        Ledger {
            firing,
            queues,
            next_id,
            generation: 0,
        }
    }

    pub fn to_saved(&self) -> SavedLedger {
        SavedLedger {
            firing: self.firing.values().cloned().collect(),
            queues: self
                .queues
                .iter()
                .map(|q| (q.url.clone(), q.outbox.to_saved()))
                .collect(),
        }
    }

    /// Changes whenever anything saved changes.
    pub fn generation(&self) -> u64 {
        self.queues.iter().fold(self.generation, |g, q| {
            g.wrapping_add(q.outbox.generation())
        })
    }

    /// Takes one tick: its events, then what the engine says is firing now (which also
    /// catches alerts firing before the sink existed, and ones whose rule a reload removed).
    /// Returns true when something was queued.
    pub fn observe(&mut self, now_ms: u64, events: &[AlertEvent], active: &[ActiveAlert]) -> bool {
        let live: BTreeSet<Key> = active
            .iter()
            .filter(|a| a.state == AlertState::Firing)
            .map(|a| key(&a.rule, &a.attributes))
            .collect();
        let before = self.generation();
        for e in events {
            self.on_event(e, &live);
        }
        let stale: Vec<Key> = self
            .firing
            .keys()
            .filter(|k| !live.contains(*k))
            .cloned()
            .collect();
        for k in stale {
            if let Some(mut old) = self.firing.remove(&k) {
                old.state = AlertState::Resolved;
                old.at_ms = now_ms;
                self.queue(old);
            }
        }
        for a in active.iter().filter(|a| a.state == AlertState::Firing) {
            if let Entry::Vacant(slot) = self.firing.entry(key(&a.rule, &a.attributes)) {
                let e = unseen(a);
                slot.insert(e.clone());
                self.queue(e);
            }
        }
        self.generation() != before
    }

    fn on_event(&mut self, e: &AlertEvent, live: &BTreeSet<Key>) {
        let k = key(&e.rule, &e.attributes);
        match e.state {
            AlertState::Pending => {}
            AlertState::Firing if !live.contains(&k) => {
                let mut once = e.clone();
                once.state = AlertState::Resolved;
                once.since_ms = e.at_ms;
                once.at_ms = e.at_ms.saturating_add(ONE_SHOT_MS);
                self.queue(once);
            }
            AlertState::Firing => {
                let mut new = e.clone();
                new.since_ms = e.at_ms;
                if let Some(old) = self.firing.get(&k).cloned() {
                    if old.severity == e.severity {
                        new.since_ms = old.since_ms;
                    } else {
                        // Severity is a label: the old alert ends as the new one starts.
                        let mut ended = old;
                        ended.state = AlertState::Resolved;
                        ended.at_ms = e.at_ms;
                        self.queue(ended);
                    }
                }
                self.firing.insert(k, new.clone());
                self.queue(new);
            }
            AlertState::Resolved => {
                let mut ended = e.clone();
                if let Some(old) = self.firing.remove(&k) {
                    ended.since_ms = old.since_ms;
                    ended.severity = old.severity;
                }
                self.queue(ended);
            }
        }
    }

    /// Queues a change for every URL, with the ledger's own id (the order the queues ack in).
    fn queue(&mut self, mut e: AlertEvent) {
        e.id = self.next_id;
        self.next_id += 1;
        self.generation = self.generation.wrapping_add(1);
        for q in &mut self.queues {
            q.outbox.push(e.clone());
        }
    }

    /// Up to `n` of URL `i`'s oldest changes, after dropping those older than `cutoff_ms`.
    pub fn batch(&mut self, i: usize, cutoff_ms: u64, n: usize) -> Vec<AlertEvent> {
        let o = &mut self.queues[i].outbox;
        o.drop_older_than(cutoff_ms);
        o.peek(n)
    }

    /// URL `i` accepted its changes up to `last_id`.
    pub fn ack(&mut self, i: usize, last_id: u64, count: usize, now_ms: u64) {
        let q = &mut self.queues[i];
        q.outbox.ack(last_id);
        q.delivery.delivered += count as u64;
        q.delivery.last_success_ms = Some(now_ms);
    }

    pub fn succeeded(&mut self, i: usize, now_ms: u64) {
        self.queues[i].delivery.last_success_ms = Some(now_ms);
    }

    pub fn failed(&mut self, i: usize, error: String, now_ms: u64) {
        let d = &mut self.queues[i].delivery;
        d.failures += 1;
        d.last_error = Some(error);
        d.last_error_ms = Some(now_ms);
    }

    /// The alerts firing now (what a resend re-asserts).
    pub fn firing(&self) -> Vec<AlertEvent> {
        self.firing.values().cloned().collect()
    }

    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }
}

/// A firing alert the sink never saw an event for (it fired before the sink was configured,
/// or the sink's state was lost): described from the engine's state.
fn unseen(a: &ActiveAlert) -> AlertEvent {
    let series = series_name(&a.metric, &a.attributes);
    let summary = match a.threshold {
        Some(t) => format!("{series} is {} (threshold {t})", a.value),
        None => format!("{series} is {}", a.value),
    };
    AlertEvent {
        id: 0,
        rule: a.rule.clone(),
        metric: a.metric.clone(),
        severity: a.severity,
        state: AlertState::Firing,
        attributes: a.attributes.clone(),
        value: a.value,
        threshold: a.threshold,
        baseline: None,
        since_ms: a.fired_ms,
        at_ms: a.fired_ms,
        summary,
    }
}

#[cfg(test)]
mod tests;
