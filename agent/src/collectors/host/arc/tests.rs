use super::*;

/// The shape of every arcstats: kstat header, column line, `name type data`.
const MINIMAL: &str = "13 1 0x01 4 1088 5155279937 39858497127\n\
name                            type data\n\
size                            4    1000\n\
c                               4    900\n\
c_min                           4    100\n\
c_max                           4    2000\n";

#[test]
fn the_four_sizes_are_enough() {
    let arc = parse_arcstats(MINIMAL).unwrap();
    assert_eq!(
        (arc.size, arc.c, arc.c_min, arc.c_max),
        (1000, 900, 100, 2000)
    );
    assert_eq!(arc.reclaimable(), 900);
    assert_eq!(
        (arc.mru, arc.hits, arc.evicted, arc.no_grow),
        (None, None, None, None)
    );
    assert!(arc.l2.is_none());
}

#[test]
fn a_missing_size_is_not_arcstats() {
    assert!(parse_arcstats(&MINIMAL.replace("c_min ", "c_low ")).is_none());
    assert!(parse_arcstats("").is_none());
    assert!(parse_arcstats("\0\0garbage\nsize 4\n").is_none());
}

#[test]
fn odd_lines_are_skipped_and_negative_values_ignored() {
    let text = format!(
        "{MINIMAL}memory_available_bytes          3    -12345\n\
         hits 4 77 extra\n\
         misses x 5\n\
         arc_no_grow                     4    1\n"
    );
    let arc = parse_arcstats(&text).unwrap();
    assert_eq!((arc.hits, arc.misses), (None, None));
    assert_eq!(arc.no_grow, Some(true));
}

#[test]
fn below_c_min_nothing_is_reclaimable() {
    let arc = parse_arcstats(&MINIMAL.replace("1000", "50")).unwrap();
    assert_eq!(arc.reclaimable(), 0);
}

#[test]
fn arc_aware_available_is_mem_available_plus_what_lies_above_c_min() {
    let arc = parse_arcstats(MINIMAL).unwrap();
    let mut points = Vec::new();
    arc_points(&arc, Some(5000), &mut points);
    let get = |n: MetricName| {
        points
            .iter()
            .find(|p| p.name == n)
            .map(|p| p.value.as_f64())
    };
    assert_eq!(get(MetricName::ZfsArcMemoryAvailable), Some(5900.0));
    assert_eq!(get(MetricName::ZfsArcReclaimable), Some(900.0));
    let mut points = Vec::new();
    arc_points(&arc, None, &mut points);
    assert!(
        !points
            .iter()
            .any(|p| p.name == MetricName::ZfsArcMemoryAvailable)
    );
}

/// Genuine arcstats from the project's OpenZFS guests (tests/fixtures/zfs/*/README.md), with the
/// ARC grown to ~46 % of RAM: every field the collector names is read, in either version's
/// layout (2.1 and 2.3 order and name their fields differently).
#[test]
fn genuine_captures_of_both_versions_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/zfs");
    // (version, size, c_min, c_max, mru, mfu, hits, misses)
    let cases = [
        (
            "2.3.2",
            1_433_873_176,
            97_319_552,
            1_557_112_832,
            1_324_475_904,
            106_173_440,
            82_806,
            9_527,
        ),
        (
            "2.1.11",
            1_436_868_128,
            97_319_552,
            1_557_112_832,
            189_986_816,
            1_242_720_256,
            105_881,
            9_533,
        ),
    ];
    for (version, size, c_min, c_max, mru, mfu, hits, misses) in cases {
        let path = dir.join(format!("openzfs-{version}-qemu/arcstats.txt"));
        let text = std::fs::read_to_string(&path).unwrap();
        let arc = parse_arcstats(&text).unwrap_or_else(|| panic!("{}", path.display()));
        assert_eq!(
            (arc.size, arc.c_min, arc.c_max),
            (size, c_min, c_max),
            "{version}"
        );
        assert_eq!((arc.mru, arc.mfu), (Some(mru), Some(mfu)), "{version}");
        assert_eq!(
            (arc.hits, arc.misses),
            (Some(hits), Some(misses)),
            "{version}"
        );
        assert_eq!(arc.no_grow, Some(false), "{version}");
        assert!(arc.l2.is_none(), "{version}: no cache device in the guest");
        assert_eq!(arc.reclaimable(), size - c_min, "{version}");
    }
}
