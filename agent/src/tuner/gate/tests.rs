use super::*;
use proptest::prelude::*;
use rstest::rstest;

const MIN: u64 = 60_000;

fn env(v: &str) -> Env {
    [("OLLAMA_NUM_PARALLEL".to_owned(), v.to_owned())].into()
}

fn cfg(when: RestartWhen) -> TunerConfig {
    TunerConfig {
        restart_when: when,
        settle: Duration::from_secs(600),
        cooldown: Duration::from_secs(1800),
        max_restarts_per_day: 4,
        ..TunerConfig::default()
    }
}

fn input<'a>(
    now_ms: u64,
    desired: &'a Env,
    current: &'a Env,
    host: &'a HostFingerprint,
) -> GateInput<'a> {
    GateInput {
        now_ms,
        desired,
        current,
        host,
        local_minute: 12 * 60,
        idle: (true, "nothing loaded".to_owned()),
    }
}

#[rstest]
#[case("03:00-05:00", 3 * 60, true)]
#[case("03:00-05:00", 5 * 60, false)]
#[case("03:00-05:00", 2 * 60 + 59, false)]
#[case("22:00-02:00", 23 * 60, true)]
#[case("22:00-02:00", 60, true)]
#[case("22:00-02:00", 2 * 60, false)]
#[case("22:00-02:00", 12 * 60, false)]
fn window_may_wrap_midnight(#[case] w: &str, #[case] minute: u16, #[case] inside: bool) {
    assert_eq!(RestartWindow::parse(w).unwrap().contains(minute), inside);
}

#[rstest]
#[case("3-5")]
#[case("24:00-01:00")]
#[case("03:00-03:00")]
#[case("03:60-04:00")]
fn bad_windows_are_rejected(#[case] w: &str) {
    assert!(RestartWindow::parse(w).is_err());
}

#[test]
fn nothing_to_do_when_the_unit_has_the_wanted_env() {
    let mut g = Gate::default();
    let (e, h) = (env("2"), HostFingerprint::default());
    assert_eq!(
        g.evaluate(&cfg(RestartWhen::Now), None, &input(0, &e, &e, &h)),
        Verdict::NoChange
    );
}

#[test]
fn settle_restarts_when_the_wanted_value_changes() {
    let mut g = Gate::default();
    let c = cfg(RestartWhen::Now);
    let (cur, h) = (env("1"), HostFingerprint::default());
    let (two, three) = (env("2"), env("3"));
    assert!(matches!(
        g.evaluate(&c, None, &input(0, &two, &cur, &h)),
        Verdict::Wait(_)
    ));
    // The policy changed its mind at 9 minutes: the settle period starts again.
    assert!(matches!(
        g.evaluate(&c, None, &input(9 * MIN, &three, &cur, &h)),
        Verdict::Wait(_)
    ));
    assert!(matches!(
        g.evaluate(&c, None, &input(18 * MIN, &three, &cur, &h)),
        Verdict::Wait(_)
    ));
    assert!(matches!(
        g.evaluate(&c, None, &input(19 * MIN, &three, &cur, &h)),
        Verdict::Go(_)
    ));
}

#[test]
fn cooldown_and_daily_cap_hold() {
    let mut g = Gate::default();
    let c = cfg(RestartWhen::Now);
    let h = HostFingerprint::default();
    let mut now = 0;
    let mut cur = env("0");
    for n in 1..=4 {
        let want = env(&n.to_string());
        g.evaluate(&c, None, &input(now, &want, &cur, &h));
        now += 10 * MIN;
        let v = g.evaluate(&c, None, &input(now, &want, &cur, &h));
        if n > 1 {
            // Settled after 10 minutes, but the last restart was 10 minutes ago.
            assert!(
                matches!(&v, Verdict::Wait(r) if r.starts_with("cooldown")),
                "{v:?}"
            );
            now += 20 * MIN;
        }
        assert!(matches!(
            g.evaluate(&c, None, &input(now, &want, &cur, &h)),
            Verdict::Go(_)
        ));
        g.record_restart(now);
        cur = want;
    }
    let want = env("9");
    g.evaluate(&c, None, &input(now, &want, &cur, &h));
    now += 60 * MIN;
    let v = g.evaluate(&c, None, &input(now, &want, &cur, &h));
    assert!(
        matches!(&v, Verdict::Wait(r) if r.starts_with("daily cap")),
        "{v:?}"
    );
    // A day after the first restart one slot frees up.
    now = 24 * 60 * MIN + 10 * MIN;
    assert!(matches!(
        g.evaluate(&c, None, &input(now, &want, &cur, &h)),
        Verdict::Go(_)
    ));
}

#[test]
fn rolled_back_change_waits_for_a_material_change_or_the_backoff() {
    let mut g = Gate::default();
    let c = cfg(RestartWhen::Now);
    let (cur, bad) = (env("1"), env("7"));
    let h = HostFingerprint {
        gpu_count: 1,
        gpu_memory_bytes: 8 << 30,
        ram_bytes: 32 << 30,
    };
    g.record_rollback(bad.clone(), h.clone(), 0);
    g.evaluate(&c, None, &input(0, &bad, &cur, &h));
    let v = g.evaluate(&c, None, &input(60 * MIN, &bad, &cur, &h));
    assert!(
        matches!(&v, Verdict::Wait(r) if r.contains("rolled back")),
        "{v:?}"
    );
    // More VRAM is a material change.
    let bigger = HostFingerprint {
        gpu_memory_bytes: 24 << 30,
        ..h.clone()
    };
    assert!(matches!(
        g.evaluate(&c, None, &input(60 * MIN, &bad, &cur, &bigger)),
        Verdict::Go(_)
    ));
    // A different wanted value is too (after its own settle).
    let other = env("6");
    g.evaluate(&c, None, &input(60 * MIN, &other, &cur, &h));
    assert!(matches!(
        g.evaluate(&c, None, &input(70 * MIN, &other, &cur, &h)),
        Verdict::Go(_)
    ));
    // And so is the back-off.
    g.evaluate(&c, None, &input(70 * MIN, &bad, &cur, &h));
    assert!(matches!(
        g.evaluate(&c, None, &input(24 * 60 * MIN, &bad, &cur, &h)),
        Verdict::Go(_)
    ));
}

#[test]
fn restart_when_idle_and_window() {
    let (cur, want, h) = (env("1"), env("2"), HostFingerprint::default());
    let mut g = Gate::default();
    let c = cfg(RestartWhen::Idle);
    g.evaluate(&c, None, &input(0, &want, &cur, &h));
    let mut busy = input(10 * MIN, &want, &cur, &h);
    busy.idle = (false, "GPU 80% busy".to_owned());
    assert_eq!(
        g.evaluate(&c, None, &busy),
        Verdict::Wait("waiting for idle: GPU 80% busy".to_owned())
    );
    let mut g = Gate::default();
    let c = cfg(RestartWhen::RestartWindow);
    let w = RestartWindow::parse(&c.window).ok();
    g.evaluate(&c, w, &input(0, &want, &cur, &h));
    let mut at = input(10 * MIN, &want, &cur, &h);
    assert!(matches!(g.evaluate(&c, w, &at), Verdict::Wait(r) if r.contains("outside")));
    at.local_minute = 4 * 60;
    assert!(matches!(g.evaluate(&c, w, &at), Verdict::Go(_)));
}

proptest! {
    /// Whatever the sequence of ticks, no Go comes before the change was wanted for `settle`,
    /// within `cooldown` of a restart, or beyond the daily cap.
    #[test]
    fn gate_never_breaks_its_rules(steps in proptest::collection::vec((0u64..20 * MIN, 0u8..3), 1..80)) {
        let c = cfg(RestartWhen::Now);
        let h = HostFingerprint::default();
        let mut g = Gate::default();
        let mut now = 0u64;
        let mut cur = env("0");
        let mut wanted: Option<(Env, u64)> = None;
        let mut restarts: Vec<u64> = Vec::new();
        for (dt, v) in steps {
            now += dt;
            let want = env(&v.to_string());
            if wanted.as_ref().is_none_or(|(w, _)| *w != want) {
                wanted = Some((want.clone(), now));
            }
            if want == cur { wanted = None; }
            if let Verdict::Go(_) = g.evaluate(&c, None, &input(now, &want, &cur, &h)) {
                let since = wanted.as_ref().map_or(now, |w| w.1);
                prop_assert!(now - since >= 10 * MIN);
                prop_assert!(restarts.last().is_none_or(|&r| now - r >= 30 * MIN));
                prop_assert!(restarts.iter().filter(|&&r| now - r < 24 * 60 * MIN).count() < 4);
                g.record_restart(now);
                restarts.push(now);
                cur = want;
                wanted = None;
            }
        }
    }
}
