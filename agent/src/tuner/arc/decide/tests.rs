use rstest::rstest;

use super::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn limits() -> Limits {
    Limits {
        boot: 32 * GIB,
        floor: 256 * MIB,
        min_max: GIB,
        reserve: GIB,
    }
}

fn loaded(ram: u64, resident: u64) -> OllamaNeed {
    OllamaNeed::Loaded {
        ram,
        resident,
        models: vec!["llama3.1:70b 40.0 GiB of which 0 MiB in VRAM".to_owned()],
    }
}

/// A 64 GiB host whose ARC holds 30 GiB (c_min 2 GiB, OpenZFS's 1/32).
fn mem(available: u64, arc_size: u64) -> HostMemory {
    HostMemory {
        available,
        arc_size,
        arc_c_min: 2 * GIB,
    }
}

// (memory, need, wanted zfs_arc_max, words the reason must hold)
#[rstest]
// A 40 GiB model on CPU beside a 30 GiB ARC with 8 GiB available: the ARC must give up 33 GiB,
// so it is kept at c_min 2 GiB + floor 0.25 GiB, the lowest allowed.
#[case::cpu_model_larger_than_the_arc_can_give(
    mem(8 * GIB, 30 * GIB),
    loaded(40 * GIB, 0),
    Some(2 * GIB + 256 * MIB),
    "kept at the lowest allowed"
)]
// 10 GiB to load, 8 GiB available, ARC 30 GiB: 8 + 30 - 10 - 1 = 27 GiB.
#[case::room_made_for_what_is_left_to_load(
    mem(8 * GIB, 30 * GIB),
    loaded(10 * GIB, 0),
    Some(27 * GIB),
    "the ARC may hold 27.0 GiB at most"
)]
// The same model once resident: its pages left MemAvailable and `missing` alike.
#[case::resident_model_keeps_the_value(
    mem(GIB, 27 * GIB), loaded(10 * GIB, 10 * GIB), Some(27 * GIB), "10.0 GiB of it resident"
)]
// A small spill fits beside the ARC even at its boot maximum.
#[case::small_spill_gets_the_boot_value(
    mem(30 * GIB, 10 * GIB), loaded(2 * GIB, 0), Some(32 * GIB), "boot maximum"
)]
#[case::model_all_in_vram_gets_the_boot_value(
    mem(GIB, 30 * GIB), loaded(0, 0), Some(32 * GIB), "no Ollama model in host RAM"
)]
#[case::ollama_down_gets_the_boot_value(
    mem(GIB, 30 * GIB), OllamaNeed::Down, Some(32 * GIB), "not answering"
)]
#[case::api_ps_unanswered_keeps_the_value(mem(GIB, 30 * GIB), OllamaNeed::Unknown, None, "")]
fn the_wanted_limit_leaves_ollama_what_it_still_has_to_load(
    #[case] m: HostMemory,
    #[case] need: OllamaNeed,
    #[case] max: Option<u64>,
    #[case] words: &str,
) {
    let w = want(&m, &need, &limits());
    assert_eq!(w.as_ref().map(|w| w.max), max);
    if let Some(w) = w {
        assert!(w.reason.contains(words), "{}", w.reason);
        assert_eq!(w.figures.mem_available, m.available);
    }
}

#[test]
fn never_below_c_min_plus_floor_nor_the_operator_bound() {
    let m = mem(0, 30 * GIB);
    let need = loaded(60 * GIB, 0);
    let mut l = limits();
    assert_eq!(want(&m, &need, &l).unwrap().max, 2 * GIB + 256 * MIB);
    l.min_max = 4 * GIB;
    assert_eq!(want(&m, &need, &l).unwrap().max, 4 * GIB);
    // OpenZFS's own 64 MiB minimum holds when c_min, floor and bound are all tiny.
    let tiny = HostMemory {
        arc_c_min: 16 * MIB,
        ..m
    };
    let l = Limits {
        floor: 0,
        min_max: 0,
        ..limits()
    };
    assert_eq!(want(&tiny, &need, &l).unwrap().max, MIN_ARC_MAX + 1);
}

const BOOT: u64 = 32 * GIB;

// (wanted, held, since the last change, change?) with a 256 MiB step and a 60 s hold.
#[rstest]
#[case::first_change(20 * GIB, BOOT, None, true)]
#[case::same_value(20 * GIB, 20 * GIB, Some(600), false)]
#[case::under_a_step(20 * GIB + 100 * MIB, 20 * GIB, Some(600), false)]
#[case::a_step(20 * GIB + 256 * MIB, 20 * GIB, Some(600), true)]
#[case::a_step_down(19 * GIB, 20 * GIB, Some(600), true)]
#[case::within_the_hold(10 * GIB, 20 * GIB, Some(30), false)]
#[case::back_to_boot_however_close(BOOT, BOOT - MIB, Some(600), true)]
#[case::back_to_boot_within_the_hold(BOOT, 20 * GIB, Some(5), false)]
fn hysteresis_moves_only_by_a_step_and_once_per_hold(
    #[case] wanted: u64,
    #[case] held: u64,
    #[case] since_secs: Option<u64>,
    #[case] change: bool,
) {
    let since = since_secs.map(Duration::from_secs);
    let (step, hold) = (256 * MIB, Duration::from_secs(60));
    let v = verdict(wanted, held, BOOT, step, hold, since);
    assert_eq!(v == Verdict::Change, change, "{v:?}");
}

#[test]
fn shrinking_toward_the_value_does_not_move_it() {
    // While the ARC evicts down to the limit, each freed byte shows up in MemAvailable: the
    // wanted value stays where it was, so the agent does not ratchet it down.
    let need = loaded(10 * GIB, 0);
    let before = want(&mem(8 * GIB, 30 * GIB), &need, &limits()).unwrap();
    let during = want(&mem(11 * GIB, 27 * GIB), &need, &limits()).unwrap();
    let after = want(
        &mem(11 * GIB + 512 * MIB, 26 * GIB + 512 * MIB),
        &need,
        &limits(),
    )
    .unwrap();
    assert_eq!(
        (before.max, during.max, after.max),
        (27 * GIB, 27 * GIB, 27 * GIB)
    );
}
