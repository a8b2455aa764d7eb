use std::collections::BTreeMap;

use super::*;
use crate::rules::event::Severity;

fn event(state: AlertState, severity: Severity, since_ms: u64, at_ms: u64) -> AlertEvent {
    AlertEvent {
        id: 99,
        rule: "hot".to_owned(),
        metric: "hw.temperature".to_owned(),
        severity,
        state,
        attributes: BTreeMap::from([("hw.id".to_owned(), "0".to_owned())]),
        value: 95.0,
        threshold: Some(90.0),
        baseline: None,
        since_ms,
        at_ms,
        summary: "hot".to_owned(),
    }
}

fn active(severity: Severity, fired_ms: u64) -> ActiveAlert {
    ActiveAlert {
        rule: "hot".to_owned(),
        state: AlertState::Firing,
        severity,
        attributes: BTreeMap::from([("hw.id".to_owned(), "0".to_owned())]),
        value: 95.0,
        threshold: Some(90.0),
        since_ms: 1,
        metric: "hw.temperature".to_owned(),
        fired_ms,
    }
}

fn two_urls() -> Ledger {
    Ledger::new(
        &["http://a".to_owned(), "http://b".to_owned()],
        100,
        SavedLedger::default(),
    )
}

/// (state, startsAt, endsAt-or-at, severity) of URL `i`'s queue.
fn queued(l: &mut Ledger, i: usize) -> Vec<(AlertState, u64, u64, Severity)> {
    l.batch(i, 0, 100)
        .iter()
        .map(|e| (e.state, e.since_ms, e.at_ms, e.severity))
        .collect()
}

#[test]
fn firing_after_pending_starts_at_the_firing_moment_and_every_url_gets_it() {
    let mut l = two_urls();
    let pending = event(AlertState::Pending, Severity::Warning, 1_000, 1_000);
    assert!(!l.observe(1_000, &[pending], &[]));
    let firing = event(AlertState::Firing, Severity::Warning, 1_000, 31_000);
    assert!(l.observe(31_000, &[firing], &[active(Severity::Warning, 31_000)]));
    for i in 0..2 {
        assert_eq!(
            queued(&mut l, i),
            vec![(AlertState::Firing, 31_000, 31_000, Severity::Warning)]
        );
    }
    assert_eq!(l.firing().len(), 1);
}

#[test]
fn a_resolve_keeps_the_start_and_ends_at_the_event() {
    let mut l = two_urls();
    let firing = event(AlertState::Firing, Severity::Warning, 1_000, 31_000);
    l.observe(31_000, &[firing], &[active(Severity::Warning, 31_000)]);
    let resolved = event(AlertState::Resolved, Severity::Warning, 1_000, 90_000);
    l.observe(90_000, &[resolved], &[]);
    assert_eq!(
        queued(&mut l, 0)[1],
        (AlertState::Resolved, 31_000, 90_000, Severity::Warning)
    );
    assert!(l.firing().is_empty());
}

#[test]
fn a_severity_change_ends_the_old_alert_and_starts_the_new() {
    let mut l = two_urls();
    l.observe(
        10,
        &[event(AlertState::Firing, Severity::Warning, 10, 10)],
        &[active(Severity::Warning, 10)],
    );
    l.observe(
        20,
        &[event(AlertState::Firing, Severity::Critical, 10, 20)],
        &[active(Severity::Critical, 10)],
    );
    assert_eq!(
        queued(&mut l, 0),
        vec![
            (AlertState::Firing, 10, 10, Severity::Warning),
            (AlertState::Resolved, 10, 20, Severity::Warning),
            (AlertState::Firing, 20, 20, Severity::Critical),
        ]
    );
}

#[test]
fn an_alert_firing_before_the_sink_existed_is_sent_and_one_gone_is_resolved() {
    let mut l = two_urls();
    assert!(l.observe(50, &[], &[active(Severity::Critical, 7)]));
    assert_eq!(
        queued(&mut l, 0),
        vec![(AlertState::Firing, 7, 7, Severity::Critical)]
    );
    // Nothing new while it goes on firing.
    assert!(!l.observe(60, &[], &[active(Severity::Critical, 7)]));
    // Its rule was removed by a reload: no event, but it no longer fires.
    assert!(l.observe(70, &[], &[]));
    assert_eq!(
        queued(&mut l, 1)[1],
        (AlertState::Resolved, 7, 70, Severity::Critical)
    );
}

#[test]
fn an_event_from_outside_the_rules_is_sent_once_with_an_end() {
    let mut l = two_urls();
    let mut e = event(AlertState::Firing, Severity::Critical, 5, 5);
    e.rule = "tuner_rollback".to_owned();
    l.observe(5, &[e], &[]);
    assert_eq!(
        queued(&mut l, 0),
        vec![(AlertState::Resolved, 5, 5 + ONE_SHOT_MS, Severity::Critical)]
    );
    assert!(l.firing().is_empty());
}

#[test]
fn each_url_acks_on_its_own_and_the_ledger_round_trips() {
    let mut l = two_urls();
    l.observe(
        10,
        &[event(AlertState::Firing, Severity::Warning, 10, 10)],
        &[active(Severity::Warning, 10)],
    );
    let first = l.batch(0, 0, 10);
    l.ack(0, first[0].id, 1, 11);
    assert!(l.batch(0, 0, 10).is_empty());
    assert_eq!(l.batch(1, 0, 10).len(), 1);
    let saved: SavedLedger =
        serde_json::from_str(&serde_json::to_string(&l.to_saved()).unwrap()).unwrap();
    // URL a is gone from the config, c is new: b keeps its queue, c starts empty.
    let mut back = Ledger::new(&["http://b".to_owned(), "http://c".to_owned()], 100, saved);
    assert_eq!(back.batch(0, 0, 10).len(), 1);
    assert!(back.batch(1, 0, 10).is_empty());
    assert_eq!(back.firing().len(), 1);
    // New changes get ids after the restored ones, so acks stay in order.
    back.observe(20, &[], &[]);
    let ids: Vec<u64> = back.batch(0, 0, 10).iter().map(|e| e.id).collect();
    assert!(ids[0] < ids[1], "{ids:?}");
}

#[test]
fn old_changes_are_dropped_and_the_queue_is_bounded() {
    let mut l = Ledger::new(&["http://a".to_owned()], 2, SavedLedger::default());
    for t in 1..=3u64 {
        let mut e = event(AlertState::Firing, Severity::Warning, t, t * 1000);
        e.rule = format!("once{t}");
        l.observe(t * 1000, &[e], &[]);
    }
    assert_eq!(l.queues()[0].outbox.dropped(), 1);
    // The one-shots end ONE_SHOT_MS after they happen; a cutoff past the first drops it.
    assert_eq!(l.batch(0, 2000 + ONE_SHOT_MS + 1, 10).len(), 1);
    assert_eq!(l.queues()[0].outbox.dropped(), 2);
}
