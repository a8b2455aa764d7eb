//! Engine table tests: one rule kind per case, driven through real snapshots with injected
//! time (seconds on the engine's timeline).

use proptest::prelude::*;
use rstest::rstest;

use super::*;
use crate::model::{AttrKey, Attrs, MetricName, MetricPoint};
use crate::rules::event::AlertState;

fn rule(toml_text: &str) -> RuleConfig {
    toml::from_str(toml_text).unwrap()
}

fn p(name: MetricName, attrs: &[(AttrKey, &'static str)], v: f64) -> MetricPoint {
    let mut a = Attrs::new();
    for (k, val) in attrs {
        a.set(*k, *val);
    }
    MetricPoint::new(name, a, v)
}

fn snap(points: Vec<MetricPoint>) -> Snapshot {
    Snapshot {
        points,
        ..Snapshot::default()
    }
}

const T0: u64 = 1_700_000_000_000;

/// (second, state, severity, value) of every event when `rule` sees `steps`.
fn run(
    r: &RuleConfig,
    steps: Vec<(u64, Vec<MetricPoint>)>,
) -> Vec<(u64, AlertState, Severity, f64)> {
    let mut e = Engine::new(std::slice::from_ref(r));
    let mut out = Vec::new();
    for (sec, points) in steps {
        for ev in e.evaluate_at(T0 + sec * 1000, &snap(points)) {
            out.push((sec, ev.state, ev.severity, ev.value));
        }
    }
    out
}

/// A series of single values of `metric` without attributes, one per second given.
fn values(metric: MetricName, vs: &[(u64, f64)]) -> Vec<(u64, Vec<MetricPoint>)> {
    vs.iter()
        .map(|(s, v)| (*s, vec![p(metric, &[], *v)]))
        .collect()
}

use AlertState::{Firing, Pending, Resolved};
use Severity::{Critical, Warning};

const MEM: MetricName = MetricName::SystemMemoryUtilization;
const MEM_RULE: &str = r#"name = "m"
metric = "system.memory.utilization"
op = ">"
"#;

#[rstest]
#[case::warning_then_critical_then_back(
    "warning = 0.8\ncritical = 0.9",
    &[(0, 0.85), (5, 0.95), (10, 0.85), (15, 0.5)],
    vec![(0, Firing, Warning, 0.85), (5, Firing, Critical, 0.95), (10, Firing, Warning, 0.85), (15, Resolved, Warning, 0.5)],
)]
#[case::critical_only(
    "critical = 0.9",
    &[(0, 0.85), (5, 0.95), (10, 0.85)],
    vec![(5, Firing, Critical, 0.95), (10, Resolved, Critical, 0.85)],
)]
#[case::for_delays_firing(
    "warning = 0.8\nfor = \"10s\"",
    &[(0, 0.9), (5, 0.9), (10, 0.9), (15, 0.1)],
    vec![(0, Pending, Warning, 0.9), (10, Firing, Warning, 0.9), (15, Resolved, Warning, 0.1)],
)]
#[case::pending_resets(
    "warning = 0.8\nfor = \"10s\"",
    &[(0, 0.9), (5, 0.7), (10, 0.9), (15, 0.9), (20, 0.9)],
    vec![(0, Pending, Warning, 0.9), (10, Pending, Warning, 0.9), (20, Firing, Warning, 0.9)],
)]
#[case::clear_hysteresis(
    "warning = 0.8\nclear = 0.6",
    &[(0, 0.9), (5, 0.7), (10, 0.79), (15, 0.59)],
    vec![(0, Firing, Warning, 0.9), (15, Resolved, Warning, 0.59)],
)]
#[case::critical_band_holds_critical_without_warning(
    "critical = 0.9\nclear = 0.5",
    &[(0, 0.95), (5, 0.6), (10, 0.4)],
    vec![(0, Firing, Critical, 0.95), (10, Resolved, Critical, 0.4)],
)]
#[case::keep_firing_for(
    "warning = 0.8\nkeep_firing_for = \"10s\"",
    &[(0, 0.9), (5, 0.1), (10, 0.1), (15, 0.1)],
    vec![(0, Firing, Warning, 0.9), (15, Resolved, Warning, 0.1)],
)]
fn thresholds(
    #[case] extra: &str,
    #[case] vs: &[(u64, f64)],
    #[case] want: Vec<(u64, AlertState, Severity, f64)>,
) {
    let r = rule(&format!("{MEM_RULE}{extra}"));
    assert_eq!(run(&r, values(MEM, vs)), want);
}

#[test]
fn less_than_rules_fire_below() {
    let r = rule(
        "name = \"low\"\nmetric = \"system.memory.utilization\"\nop = \"<\"\nwarning = 0.2\ncritical = 0.1",
    );
    let got = run(
        &r,
        values(MEM, &[(0, 0.5), (5, 0.15), (10, 0.05), (15, 0.3)]),
    );
    assert_eq!(
        got,
        vec![
            (5, Firing, Warning, 0.15),
            (10, Firing, Critical, 0.05),
            (15, Resolved, Critical, 0.3)
        ]
    );
}

#[rstest]
#[case::avg("avg", &[(0, 0.0), (5, 3.0), (10, 3.0)], vec![(10, Firing, Warning, 2.0)])]
#[case::max("max", &[(0, 5.0), (5, 0.0), (10, 0.0), (15, 0.0)], vec![(0, Firing, Warning, 5.0), (15, Resolved, Warning, 0.0)])]
#[case::min("min", &[(0, 5.0), (5, 0.0), (10, 5.0), (15, 5.0), (20, 5.0)], vec![(0, Firing, Warning, 5.0), (5, Resolved, Warning, 0.0), (20, Firing, Warning, 5.0)])]
#[case::increase("increase", &[(0, 100.0), (5, 101.0), (10, 103.0), (25, 103.0)], vec![(10, Firing, Warning, 3.0), (25, Resolved, Warning, 0.0)])]
#[case::increase_over_counter_reset("increase", &[(0, 100.0), (5, 1.0), (10, 2.0)], vec![(10, Firing, Warning, 2.0)])]
#[case::rate("rate", &[(0, 0.0), (5, 5.0), (10, 30.0)], vec![(10, Firing, Warning, 3.0)])]
fn over_windows(
    #[case] func: &str,
    #[case] vs: &[(u64, f64)],
    #[case] want: Vec<(u64, AlertState, Severity, f64)>,
) {
    // Window 10 s; a sample exactly 10 s old still counts.
    let r = rule(&format!(
        "name = \"o\"\nmetric = \"system.memory.linux.oom_kills\"\nop = \">\"\nwarning = 1.5\nover = {{ window = \"10s\", fn = \"{func}\" }}"
    ));
    assert_eq!(
        run(&r, values(MetricName::SystemMemoryLinuxOomKills, vs)),
        want
    );
}

#[test]
fn absent_matcher_judges_only_the_series_without_the_attribute() {
    let r = rule(
        "name = \"cpu\"\nmetric = \"system.cpu.utilization\"\nmatch = { \"cpu.logical_number\" = \"\" }\nop = \">\"\nwarning = 0.9",
    );
    let cpu = MetricName::SystemCpuUtilization;
    let got = run(
        &r,
        vec![
            (
                0,
                vec![
                    p(cpu, &[], 0.5),
                    p(cpu, &[(AttrKey::CpuLogicalNumber, "0")], 1.0),
                ],
            ),
            (
                5,
                vec![
                    p(cpu, &[], 0.95),
                    p(cpu, &[(AttrKey::CpuLogicalNumber, "0")], 1.0),
                ],
            ),
        ],
    );
    assert_eq!(got, vec![(5, Firing, Warning, 0.95)]);
}

#[test]
fn negated_matcher_fires_for_an_unhealthy_pool_only() {
    let r = rule(
        "name = \"z\"\nmetric = \"zfs.pool.health\"\nmatch = { \"zfs.pool.health\" = \"!ONLINE\" }\nop = \">=\"\ncritical = 1",
    );
    let h = MetricName::ZfsPoolHealth;
    let pool = |name, state, v| {
        p(
            h,
            &[
                (AttrKey::ZfsPoolName, name),
                (AttrKey::ZfsPoolHealthState, state),
            ],
            v,
        )
    };
    let mut e = Engine::new(&[r]);
    let ev = e.evaluate_at(
        T0,
        &snap(vec![
            pool("tank", "ONLINE", 1.0),
            pool("rpool", "ONLINE", 1.0),
        ]),
    );
    assert!(ev.is_empty());
    let ev = e.evaluate_at(
        T0 + 5000,
        &snap(vec![
            pool("tank", "DEGRADED", 1.0),
            pool("tank", "ONLINE", 0.0),
            pool("rpool", "ONLINE", 1.0),
        ]),
    );
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].state, ev[0].severity), (Firing, Critical));
    assert_eq!(
        ev[0].attributes.get("zfs.pool.name").map(String::as_str),
        Some("tank")
    );
    assert!(
        ev[0]
            .summary
            .contains("zfs.pool.health{zfs.pool.health=DEGRADED,zfs.pool.name=tank}"),
        "{}",
        ev[0].summary
    );
    // Back ONLINE: the DEGRADED series leaves the snapshot and resolves.
    let ev = e.evaluate_at(T0 + 10_000, &snap(vec![pool("tank", "ONLINE", 1.0)]));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].state, Resolved);
    assert!(
        ev[0].summary.contains("no longer reported"),
        "{}",
        ev[0].summary
    );
}

#[test]
fn critical_from_reads_each_devices_own_limit() {
    let r = rule(
        r#"name = "gpu_hot"
metric = "hw.temperature"
match = { "hw.sensor_location" = "gpu" }
op = ">"
warning = 85
critical_from = { metric = "hw.temperature.limit", match = { "hw.limit_type" = "high.degraded" } }
clear = 80"#,
    );
    let t = MetricName::HwTemperature;
    let l = MetricName::HwTemperatureLimit;
    let temp = |id, v| {
        p(
            t,
            &[(AttrKey::HwId, id), (AttrKey::HwSensorLocation, "gpu")],
            v,
        )
    };
    let limit = |id, kind, v| p(l, &[(AttrKey::HwId, id), (AttrKey::HwLimitType, kind)], v);
    let limits = || {
        vec![
            limit("GPU-a", "high.degraded", 88.0),
            limit("GPU-a", "high.critical", 95.0),
            limit("GPU-b", "high.degraded", 92.0),
        ]
    };
    let mut e = Engine::new(&[r]);
    let mut points = limits();
    points.extend([temp("GPU-a", 90.0), temp("GPU-b", 90.0)]);
    let mut ev = e.evaluate_at(T0, &snap(points));
    ev.sort_by(|a, b| a.attributes.cmp(&b.attributes));
    let got: Vec<_> = ev
        .iter()
        .map(|e| (e.attributes["hw.id"].as_str(), e.severity, e.threshold))
        .collect();
    assert_eq!(
        got,
        vec![
            ("GPU-a", Critical, Some(88.0)),
            ("GPU-b", Warning, Some(85.0))
        ]
    );
    // 82 °C: inside the band (above clear 80) for both: still firing, GPU-a de-escalates.
    let mut points = limits();
    points.extend([temp("GPU-a", 82.0), temp("GPU-b", 82.0)]);
    let ev = e.evaluate_at(T0 + 5000, &snap(points));
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (
            ev[0].attributes["hw.id"].as_str(),
            ev[0].state,
            ev[0].severity
        ),
        ("GPU-a", Firing, Warning)
    );
    assert_eq!(e.active().len(), 2);
}

const BASE_RULE: &str = r#"name = "lat"
metric = "zfs.pool.operation.latency"
baseline = { window = "60s", warmup = "30s" }
"#;

fn latency(vs: impl IntoIterator<Item = (u64, f64)>) -> Vec<(u64, Vec<MetricPoint>)> {
    vs.into_iter()
        .map(|(s, v)| {
            (
                s,
                vec![p(
                    MetricName::ZfsPoolOperationLatency,
                    &[(AttrKey::ZfsPoolName, "tank")],
                    v,
                )],
            )
        })
        .collect()
}

#[rstest]
#[case::ratio_up(">", 2.0, 10.0, 25.0, Some(Warning))]
#[case::ratio_up_not_enough(">", 2.0, 10.0, 19.0, None)]
#[case::ratio_down("<", 0.5, 10.0, 4.0, Some(Warning))]
#[case::ratio_down_not_enough("<", 0.5, 10.0, 6.0, None)]
fn baseline_ratios(
    #[case] op: &str,
    #[case] warning: f64,
    #[case] normal: f64,
    #[case] now: f64,
    #[case] want: Option<Severity>,
) {
    let r = rule(&format!("{BASE_RULE}op = \"{op}\"\nwarning = {warning}"));
    // 40 s of normal (past the 30 s warm-up), then one sample at `now`.
    let mut steps: Vec<(u64, f64)> = (0..40).map(|s| (s, normal)).collect();
    steps.push((40, now));
    let mut e = Engine::new(&[r]);
    let mut events = Vec::new();
    for (sec, points) in latency(steps) {
        events.extend(e.evaluate_at(T0 + sec * 1000, &snap(points)));
    }
    assert_eq!(events.first().map(|e| e.severity), want, "{events:?}");
    if let Some(ev) = events.first() {
        assert_eq!(ev.baseline, Some(normal));
        assert_eq!(ev.threshold, Some(warning));
        assert_eq!(ev.value, now);
        assert!(ev.summary.contains("its baseline"), "{}", ev.summary);
    }
}

#[test]
fn baseline_does_not_fire_during_warm_up() {
    let r = rule(&format!("{BASE_RULE}op = \">\"\nwarning = 2"));
    // 25 s of normal, then 100× the baseline: still warming up until 30 s, when it fires
    // (5 s of 100 are too few buckets to move the median).
    let steps = (0..25)
        .map(|s| (s, 1.0))
        .chain((25..=30).map(|s| (s, 100.0)));
    let got = run(&r, latency(steps));
    assert_eq!(got, vec![(30, Firing, Warning, 100.0)]);
}

#[test]
fn disappearing_series_resolves_after_keep_firing_for() {
    let r = rule(&format!(
        "{MEM_RULE}warning = 0.8\nkeep_firing_for = \"10s\""
    ));
    let steps = vec![
        (0, vec![p(MEM, &[], 0.9)]),
        (5, vec![]),
        (10, vec![]),
        (15, vec![]),
    ];
    assert_eq!(
        run(&r, steps),
        vec![(0, Firing, Warning, 0.9), (15, Resolved, Warning, 0.9)]
    );
}

#[test]
fn rules_without_their_metric_are_quiet() {
    let gpu =
        rule("name = \"vram\"\nmetric = \"hw.gpu.memory.utilization\"\nop = \">\"\nwarning = 0.9");
    let mem = rule(&format!("{MEM_RULE}warning = 0.8"));
    let mut off = rule(&format!("{MEM_RULE}warning = 0.8"));
    off.name = "off".to_owned().try_into().unwrap();
    off.enabled = false;
    let mut e = Engine::new(&[gpu, mem, off]);
    assert!(e.evaluate_at(T0, &snap(vec![p(MEM, &[], 0.5)])).is_empty());
    assert_eq!(e.quiet_rules().collect::<Vec<_>>(), vec!["vram"]);
    let counts: Vec<_> = e
        .firing_counts()
        .map(|(rule, sev, n)| (rule.to_string(), sev, n))
        .collect();
    assert_eq!(counts, vec![("m".to_owned(), Warning, 0)]);
}

#[test]
fn reload_keeps_unchanged_rules_and_resets_changed_ones() {
    let a = rule(&format!("{MEM_RULE}warning = 0.8\nfor = \"10s\""));
    let mut b = a.clone();
    b.name = "b".to_owned().try_into().unwrap();
    let mut e = Engine::new(&[a.clone(), b.clone()]);
    let ev = e.evaluate_at(T0, &snap(vec![p(MEM, &[], 0.9)]));
    assert_eq!(ev.len(), 2);
    let mut b2 = b.clone();
    b2.warning = Some(0.85);
    e.replace_rules(&[a, b2]);
    let ev = e.evaluate_at(T0 + 10_000, &snap(vec![p(MEM, &[], 0.9)]));
    let got: Vec<_> = ev.iter().map(|e| (e.rule.as_str(), e.state)).collect();
    // "m" kept its pending timer and fires; "b" changed, so it starts pending again.
    assert_eq!(got, vec![("m", Firing), ("b", Pending)]);
}

#[test]
fn saved_state_keeps_the_for_timer_and_ids() {
    let r = rule(&format!("{MEM_RULE}warning = 0.8\nfor = \"60s\""));
    let mut e = Engine::new(std::slice::from_ref(&r));
    let ev = e.evaluate_at(T0, &snap(vec![p(MEM, &[], 0.9)]));
    assert_eq!(ev[0].state, Pending);
    let saved: EngineState =
        serde_json::from_str(&serde_json::to_string(&e.save()).unwrap()).unwrap();

    // "Restart" 40 s later: no new pending event, and firing at T0 + 60 s, not T0 + 100 s.
    let mut e2 = Engine::new(std::slice::from_ref(&r));
    assert_eq!(e2.restore(saved.clone()), 1);
    assert!(
        e2.evaluate_at(T0 + 40_000, &snap(vec![p(MEM, &[], 0.9)]))
            .is_empty()
    );
    let ev = e2.evaluate_at(T0 + 60_000, &snap(vec![p(MEM, &[], 0.9)]));
    assert_eq!((ev[0].state, ev[0].since_ms), (Firing, T0));
    assert!(ev[0].id > 1, "ids continue after a restart");

    // A changed rule does not inherit the state.
    let mut changed = r.clone();
    changed.warning = Some(0.7);
    let mut e3 = Engine::new(&[changed]);
    assert_eq!(e3.restore(saved), 0);
}

#[test]
fn timeline_follows_the_monotonic_clock_from_a_wall_clock_anchor() {
    let mut e = Engine::new(&[]);
    let start = Instant::now();
    assert_eq!(e.timeline_ms(start, T0), T0);
    // The wall clock jumped back an hour; the timeline ignores it.
    let later = start + std::time::Duration::from_secs(5);
    assert_eq!(e.timeline_ms(later, T0 - 3_600_000), T0 + 5000);
}

#[test]
fn events_carry_every_field() {
    let r = rule(&format!(
        "{MEM_RULE}warning = 0.8\nfor = \"10s\"\nsummary = \"memory is tight\""
    ));
    let mut e = Engine::new(&[r]);
    e.evaluate_at(T0, &snap(vec![p(MEM, &[], 0.9)]));
    let ev = e
        .evaluate_at(T0 + 12_000, &snap(vec![p(MEM, &[], 0.95)]))
        .remove(0);
    assert_eq!(ev.rule, "m");
    assert_eq!(ev.metric, "system.memory.utilization");
    assert_eq!((ev.state, ev.severity), (Firing, Warning));
    assert_eq!(
        (ev.value, ev.threshold, ev.baseline),
        (0.95, Some(0.8), None)
    );
    assert_eq!((ev.since_ms, ev.at_ms), (T0, T0 + 12_000));
    assert_eq!(
        ev.summary,
        "m firing (warning): system.memory.utilization is 0.95, > 0.8, since 12s ago. memory is tight"
    );
}

proptest! {
    /// Whatever the values, a baseline rule never fires before its warm-up has passed.
    #[test]
    fn baselines_never_fire_during_warm_up(
        values in proptest::collection::vec(0.0f64..1000.0, 1..80),
        warmup_s in 10u64..120,
    ) {
        let r = rule(&format!(
            "name = \"b\"\nmetric = \"zfs.pool.operation.latency\"\nop = \">\"\nwarning = 1.1\nbaseline = {{ window = \"60s\", warmup = \"{warmup_s}s\" }}"
        ));
        let mut e = Engine::new(&[r]);
        for (i, v) in values.iter().enumerate() {
            let sec = i as u64 * 2;
            let ev = e.evaluate_at(T0 + sec * 1000, &snap(vec![p(MetricName::ZfsPoolOperationLatency, &[], *v)]));
            if sec < warmup_s {
                prop_assert!(ev.is_empty(), "fired at {sec}s, warm-up {warmup_s}s: {ev:?}");
            }
        }
    }
}

proptest! {
    /// Through the whole engine: values wandering anywhere above `clear` never resolve a firing
    /// alert, so it never goes firing → resolved → firing.
    #[test]
    fn engine_never_flaps_inside_the_band(values in proptest::collection::vec(0.6001f64..1.0, 1..100)) {
        let r = rule(&format!("{MEM_RULE}warning = 0.8\ncritical = 0.95\nclear = 0.6"));
        let mut e = Engine::new(&[r]);
        let first = e.evaluate_at(T0, &snap(vec![p(MEM, &[], 0.9)]));
        prop_assert_eq!(first[0].state, Firing);
        for (i, v) in values.iter().enumerate() {
            let ev = e.evaluate_at(T0 + (i as u64 + 1) * 5000, &snap(vec![p(MEM, &[], *v)]));
            prop_assert!(ev.iter().all(|e| e.state == Firing && e.summary.contains("escalated")), "{ev:?}");
        }
    }

    /// Through the whole engine: whatever the values, nothing fires before `for` has passed
    /// since the condition began.
    #[test]
    fn engine_never_fires_before_for(
        for_s in 1u64..60,
        values in proptest::collection::vec((1u64..10, 0.0f64..1.0), 1..100),
    ) {
        let r = rule(&format!("{MEM_RULE}warning = 0.5\nfor = \"{for_s}s\""));
        let mut e = Engine::new(&[r]);
        let mut t = T0;
        for (dt, v) in values {
            t += dt * 1000;
            for ev in e.evaluate_at(t, &snap(vec![p(MEM, &[], v)])) {
                if ev.state == Firing {
                    prop_assert!(ev.at_ms - ev.since_ms >= for_s * 1000, "{ev:?}");
                }
            }
        }
    }
}

#[test]
fn event_ids_saturate_at_the_top_and_never_wrap() {
    let r = rule(
        "name = \"low\"\nmetric = \"system.memory.utilization\"\nop = \"<\"\nwarning = 0.2\ncritical = 0.1",
    );
    let mut e = Engine::new(std::slice::from_ref(&r));
    // As after restoring a state file whose counter is at the very top.
    e.ensure_next_id_after(u64::MAX - 2);
    assert_eq!(e.allocate_id(), u64::MAX - 1);
    let mut ids = Vec::new();
    for (sec, v) in [(0, 0.05), (5, 0.5), (10, 0.05)] {
        ids.extend(
            e.evaluate_at(T0 + sec * 1000, &snap(vec![p(MEM, &[], v)]))
                .iter()
                .map(|ev| ev.id),
        );
    }
    assert_eq!(ids, vec![u64::MAX, u64::MAX, u64::MAX]);
    assert_eq!(e.allocate_id(), u64::MAX);
}

#[test]
fn a_firing_series_absent_on_the_first_tick_after_a_restart_keeps_firing() {
    // CPU utilisation (like every rate) has no value on the first tick after a start.
    let r = rule(&format!("{MEM_RULE}warning = 0.8"));
    let mut e = Engine::new(std::slice::from_ref(&r));
    let ev = e.evaluate_at(T0, &snap(vec![p(MEM, &[], 0.9)]));
    assert_eq!(ev[0].state, Firing);
    let saved: EngineState =
        serde_json::from_str(&serde_json::to_string(&e.save()).unwrap()).unwrap();

    let mut e2 = Engine::new(std::slice::from_ref(&r));
    assert_eq!(e2.restore(saved), 1);
    let first = e2.evaluate_at(T0 + 5_000, &snap(vec![]));
    assert!(first.is_empty(), "first tick after restart: {first:?}");
    let second = e2.evaluate_at(T0 + 10_000, &snap(vec![p(MEM, &[], 0.9)]));
    assert!(second.is_empty(), "no second firing event: {second:?}");
    assert_eq!(e2.active().len(), 1);
    // Only the first tick is held: a series gone for good later resolves as before.
    let gone = e2.evaluate_at(T0 + 15_000, &snap(vec![]));
    let gone_states: Vec<_> = gone.iter().map(|e| e.state).collect();
    let mut e3 = Engine::new(std::slice::from_ref(&r));
    e3.evaluate_at(T0, &snap(vec![p(MEM, &[], 0.9)]));
    let reference: Vec<_> = e3
        .evaluate_at(T0 + 5_000, &snap(vec![]))
        .iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(gone_states, reference);
}
