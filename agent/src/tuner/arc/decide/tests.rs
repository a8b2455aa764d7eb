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

#[test]
fn the_wanted_limit_leaves_ollama_what_it_still_has_to_load() {
    // (case, memory, need, wanted zfs_arc_max, words the reason must hold)
    let cases: Vec<(&str, HostMemory, OllamaNeed, Option<u64>, &str)> = vec![
        (
            "40 GiB model on CPU, 8 GiB available, ARC 30 GiB: the ARC must give up 33 GiB; \
             c_min 2 + floor 0.25 is the lowest",
            mem(8 * GIB, 30 * GIB),
            loaded(40 * GIB, 0),
            Some(2 * GIB + 256 * MIB),
            "kept at the lowest allowed",
        ),
        (
            "10 GiB to load, 8 GiB available, ARC 30 GiB: 8 + 30 - 10 - 1 = 27 GiB",
            mem(8 * GIB, 30 * GIB),
            loaded(10 * GIB, 0),
            Some(27 * GIB),
            "the ARC may hold 27.0 GiB at most",
        ),
        (
            "the same model once resident: its pages left MemAvailable and `missing` alike",
            mem(GIB, 27 * GIB),
            loaded(10 * GIB, 10 * GIB),
            Some(27 * GIB),
            "10.0 GiB of it resident",
        ),
        (
            "a small spill fits beside the ARC even at its boot maximum: the boot value",
            mem(30 * GIB, 10 * GIB),
            loaded(2 * GIB, 0),
            Some(32 * GIB),
            "boot maximum",
        ),
        (
            "the model is all in VRAM: the boot value",
            mem(GIB, 30 * GIB),
            loaded(0, 0),
            Some(32 * GIB),
            "no Ollama model in host RAM",
        ),
        (
            "Ollama down: the boot value",
            mem(GIB, 30 * GIB),
            OllamaNeed::Down,
            Some(32 * GIB),
            "not answering",
        ),
        (
            "/api/ps unanswered: keep",
            mem(GIB, 30 * GIB),
            OllamaNeed::Unknown,
            None,
            "",
        ),
    ];
    for (case, m, need, max, words) in cases {
        let w = want(&m, &need, &limits());
        assert_eq!(w.as_ref().map(|w| w.max), max, "{case}");
        if let Some(w) = w {
            assert!(w.reason.contains(words), "{case}: {}", w.reason);
            assert_eq!(w.figures.mem_available, m.available, "{case}");
        }
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

#[test]
fn hysteresis_moves_only_by_a_step_and_once_per_hold() {
    let boot = 32 * GIB;
    let step = 256 * MIB;
    let hold = Duration::from_secs(60);
    let secs = |s| Some(Duration::from_secs(s));
    // (case, want, held, since the last change, change?)
    let cases = [
        ("first change", 20 * GIB, boot, None, true),
        ("same value", 20 * GIB, 20 * GIB, secs(600), false),
        (
            "under a step",
            20 * GIB + 100 * MIB,
            20 * GIB,
            secs(600),
            false,
        ),
        ("a step", 20 * GIB + 256 * MIB, 20 * GIB, secs(600), true),
        ("a step down", 19 * GIB, 20 * GIB, secs(600), true),
        ("within the hold", 10 * GIB, 20 * GIB, secs(30), false),
        (
            "back to boot, however close",
            boot,
            boot - MIB,
            secs(600),
            true,
        ),
        (
            "back to boot, within the hold",
            boot,
            20 * GIB,
            secs(5),
            false,
        ),
    ];
    for (case, want, held, since, change) in cases {
        let v = verdict(want, held, boot, step, hold, since);
        assert_eq!(v == Verdict::Change, change, "{case}: {v:?}");
    }
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
