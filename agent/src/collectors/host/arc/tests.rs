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
