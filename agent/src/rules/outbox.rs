//! The outbox: alert events a sink has not yet confirmed. Bounded (oldest dropped first, and
//! counted); a sink reads a batch with `peek`, exports it, and `ack`s what was delivered.
//! The queue is saved in the state directory (`outbox.json`) so queued alerts survive a
//! restart; `generation` tells the saver whether anything changed since it last wrote.

mod restore;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::event::AlertEvent;
pub use restore::Restore;

#[derive(Debug)]
pub struct Outbox {
    capacity: usize,
    queue: VecDeque<AlertEvent>,
    dropped: u64,
    generation: u64,
}

/// The outbox as saved on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedOutbox {
    pub dropped: u64,
    pub events: Vec<AlertEvent>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            capacity: capacity.max(1),
            queue: VecDeque::new(),
            dropped: 0,
            generation: 0,
        }
    }

    /// An outbox holding what was saved; beyond `capacity`, the oldest are dropped and counted.
    pub fn from_saved(capacity: usize, saved: SavedOutbox) -> Self {
        let mut o = Outbox::new(capacity);
        o.dropped = saved.dropped;
        for e in saved.events {
            o.push(e);
        }
        o
    }

    pub fn to_saved(&self) -> SavedOutbox {
        SavedOutbox {
            dropped: self.dropped,
            events: self.queue.iter().cloned().collect(),
        }
    }

    /// Changes whenever the queue changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Id of the newest queued event.
    pub fn last_id(&self) -> Option<u64> {
        self.queue.back().map(|e| e.id)
    }

    /// Queues an event; when full, the oldest event is dropped and counted.
    pub fn push(&mut self, event: AlertEvent) {
        while self.queue.len() >= self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(event);
        self.generation += 1;
    }

    /// Up to `n` of the oldest events, left in place until acknowledged.
    pub fn peek(&self, n: usize) -> Vec<AlertEvent> {
        self.queue.iter().take(n).cloned().collect()
    }

    /// Removes every event whose id is at most `last_id` (a sink delivered them).
    pub fn ack(&mut self, last_id: u64) {
        while self.queue.front().is_some_and(|e| e.id <= last_id) {
            self.queue.pop_front();
            self.generation += 1;
        }
    }

    /// Drops (and counts) the events whose transition happened before `cutoff_ms`: a sink
    /// that bounds age as well as size (a resolve from yesterday pages no one).
    pub fn drop_older_than(&mut self, cutoff_ms: u64) -> usize {
        let before = self.queue.len();
        self.queue.retain(|e| e.at_ms >= cutoff_ms);
        let gone = before - self.queue.len();
        if gone > 0 {
            self.dropped += gone as u64;
            self.generation += 1;
        }
        gone
    }

    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Changes the bound (config reload); excess oldest events are dropped and counted.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.queue.len() > self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
            self.generation += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rules::event::{AlertState, Severity};

    fn ev(id: u64) -> AlertEvent {
        AlertEvent {
            id,
            rule: "r".to_owned(),
            metric: "ollama.up".to_owned(),
            severity: Severity::Warning,
            state: AlertState::Firing,
            attributes: BTreeMap::new(),
            value: 1.0,
            threshold: Some(0.5),
            baseline: None,
            since_ms: 1,
            at_ms: 2,
            summary: "s".to_owned(),
        }
    }

    #[test]
    fn drops_oldest_and_counts() {
        let mut o = Outbox::new(2);
        for id in 1..=5 {
            o.push(ev(id));
        }
        assert_eq!(o.depth(), 2);
        assert_eq!(o.dropped(), 3);
        assert_eq!(
            o.peek(10).iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![4, 5]
        );
        o.ack(4);
        assert_eq!(o.peek(10).iter().map(|e| e.id).collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn saved_outbox_round_trips_and_respects_capacity() {
        let mut o = Outbox::new(10);
        for id in 1..=4 {
            o.push(ev(id));
        }
        let saved: SavedOutbox =
            serde_json::from_str(&serde_json::to_string(&o.to_saved()).unwrap()).unwrap();
        let back = Outbox::from_saved(3, saved);
        assert_eq!(back.depth(), 3);
        assert_eq!(back.dropped(), 1);
        assert_eq!(back.last_id(), Some(4));
    }

    #[test]
    fn a_200000_event_file_restores_only_the_newest_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.json");
        let mut text = String::from("{\"dropped\":5,\"events\":[");
        for id in 1..=200_000 {
            if id > 1 {
                text.push(',');
            }
            text.push_str(&serde_json::to_string(&ev(id)).unwrap());
        }
        text.push_str("]}");
        std::fs::write(&path, text).unwrap();
        let o = crate::rules::persist::load_seed(&path, Restore { capacity: 10 })
            .unwrap()
            .unwrap();
        assert_eq!(o.depth(), 10);
        assert_eq!(o.dropped(), 5 + 199_990);
        assert_eq!(o.peek(1)[0].id, 199_991);
        assert_eq!(o.last_id(), Some(200_000));
    }

    #[test]
    fn old_events_are_dropped_and_counted() {
        let mut o = Outbox::new(10);
        for id in 1..=3 {
            let mut e = ev(id);
            e.at_ms = id * 1000;
            o.push(e);
        }
        assert_eq!(o.drop_older_than(2000), 1);
        assert_eq!(o.dropped(), 1);
        assert_eq!(
            o.peek(10).iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![2, 3]
        );
        let g = o.generation();
        assert_eq!(o.drop_older_than(2000), 0);
        assert_eq!(o.generation(), g);
    }

    #[test]
    fn generation_moves_on_change_only() {
        let mut o = Outbox::new(10);
        let g0 = o.generation();
        o.ack(100);
        assert_eq!(o.generation(), g0);
        o.push(ev(1));
        assert_ne!(o.generation(), g0);
    }
}
