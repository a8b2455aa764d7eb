//! The daemon-side wrapper against a real state directory (a temp dir), with injected time.

use std::time::Duration;

use super::*;
use crate::config::Config;
use crate::model::{AttrValue, Value};

const T0: u64 = 1_700_000_000_000;

fn config(dir: &std::path::Path, capacity: usize) -> Config {
    let rules = toml::from_str::<toml::Table>(
        r#"[[rules]]
name = "mem"
metric = "system.memory.utilization"
op = ">"
warning = 0.8
critical = 0.95
for = "10s"
"#,
    )
    .unwrap();
    let mut c = Config {
        rules: rules["rules"].clone().try_into().unwrap(),
        ..Config::default()
    };
    c.agent.state_dir = dir.to_owned();
    c.agent.outbox_capacity = capacity;
    c
}

fn mem_snapshot(at_ms: u64, v: f64) -> Snapshot {
    Snapshot {
        timestamp_ms: at_ms,
        points: vec![MetricPoint::new(
            MetricName::SystemMemoryUtilization,
            Attrs::new(),
            v,
        )],
        ..Snapshot::default()
    }
}

fn point_value(s: &Snapshot, name: MetricName, sev: Option<&'static str>) -> Option<f64> {
    s.points
        .iter()
        .find(|p| {
            p.name == name
                && sev.is_none_or(|sev| {
                    p.attributes.get(AttrKey::AlertSeverity) == Some(&AttrValue::from(sev))
                })
        })
        .map(|p| match p.value {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
        })
}

#[test]
fn events_reach_the_outbox_and_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Alerting::new(config(dir.path(), 100).alerting());
    let t = Instant::now();
    let mut s = mem_snapshot(T0, 0.9);
    let ev = a.on_tick(t, &mut s);
    assert_eq!(ev[0].state, AlertState::Pending);
    assert_eq!(
        point_value(&s, MetricName::HostwardenAlertCount, Some("warning")),
        Some(0.0)
    );
    assert_eq!(
        point_value(&s, MetricName::HostwardenOutboxDepth, None),
        Some(1.0)
    );

    let mut s = mem_snapshot(T0 + 10_000, 0.9);
    let ev = a.on_tick(t + Duration::from_secs(10), &mut s);
    assert_eq!(ev[0].state, AlertState::Firing);
    assert_eq!(
        point_value(&s, MetricName::HostwardenAlertCount, Some("warning")),
        Some(1.0)
    );
    assert_eq!(
        point_value(&s, MetricName::HostwardenAlertCount, Some("critical")),
        Some(0.0)
    );
    assert_eq!(
        point_value(&s, MetricName::HostwardenOutboxDepth, None),
        Some(2.0)
    );
    assert_eq!(
        point_value(&s, MetricName::HostwardenOutboxDropped, None),
        Some(0.0)
    );
    assert_eq!(a.active().len(), 1);

    let outbox = a.outbox();
    let ids: Vec<u64> = outbox
        .lock()
        .unwrap()
        .peek(10)
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec![1, 2]);
}

#[test]
fn a_restart_keeps_the_timer_the_outbox_and_the_ids() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 100);
    let t = Instant::now();
    {
        let mut a = Alerting::new(cfg.alerting());
        a.on_tick(t, &mut mem_snapshot(T0, 0.9));
        a.save_all();
    }
    assert!(dir.path().join(STATE_FILE).exists());
    assert!(dir.path().join(OUTBOX_FILE).exists());

    // Restarted 6 s later (a new process: a new monotonic origin).
    let mut b = Alerting::new(cfg.alerting());
    assert_eq!(
        b.outbox().lock().unwrap().depth(),
        1,
        "queued event survived"
    );
    let t2 = t + Duration::from_secs(100);
    assert!(
        b.on_tick(t2, &mut mem_snapshot(T0 + 6000, 0.9)).is_empty(),
        "no second pending"
    );
    let ev = b.on_tick(
        t2 + Duration::from_secs(4),
        &mut mem_snapshot(T0 + 10_000, 0.9),
    );
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].state, ev[0].since_ms, ev[0].at_ms),
        (AlertState::Firing, T0, T0 + 10_000)
    );
    assert_eq!(ev[0].id, 2, "ids continue");
}

#[test]
fn corrupt_files_start_fresh() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(STATE_FILE), b"\x00garbage").unwrap();
    std::fs::write(dir.path().join(OUTBOX_FILE), b"[1,2").unwrap();
    let mut a = Alerting::new(config(dir.path(), 100).alerting());
    assert_eq!(a.outbox().lock().unwrap().depth(), 0);
    let ev = a.on_tick(Instant::now(), &mut mem_snapshot(T0, 0.9));
    assert_eq!(ev[0].state, AlertState::Pending);
    // The next save replaced the corrupt files with good ones.
    let mut b = Alerting::new(config(dir.path(), 100).alerting());
    assert_eq!(b.outbox().lock().unwrap().depth(), 1);
    assert!(
        b.on_tick(Instant::now(), &mut mem_snapshot(T0 + 1000, 0.9))
            .is_empty()
    );
}

#[test]
fn a_full_outbox_drops_the_oldest_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Alerting::new(config(dir.path(), 2).alerting());
    let t = Instant::now();
    // pending, firing (warning), escalated (critical), resolved: 4 events into room for 2.
    for (i, v) in [0.9, 0.9, 0.99, 0.1].into_iter().enumerate() {
        let mut s = mem_snapshot(T0 + i as u64 * 10_000, v);
        a.on_tick(t + Duration::from_secs(i as u64 * 10), &mut s);
        if i == 3 {
            assert_eq!(
                point_value(&s, MetricName::HostwardenOutboxDepth, None),
                Some(2.0)
            );
            assert_eq!(
                point_value(&s, MetricName::HostwardenOutboxDropped, None),
                Some(2.0)
            );
        }
    }
    let states: Vec<AlertState> = a
        .outbox()
        .lock()
        .unwrap()
        .peek(10)
        .iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(states, vec![AlertState::Firing, AlertState::Resolved]);
}

#[test]
fn an_unwritable_state_dir_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let mut a = Alerting::new(config(&file, 100).alerting());
    let ev = a.on_tick(Instant::now(), &mut mem_snapshot(T0, 0.9));
    assert_eq!(ev.len(), 1);
}
