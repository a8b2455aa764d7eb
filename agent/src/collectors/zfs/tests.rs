//! Parser and metric tests on genuine OpenZFS 2.3.2 and 2.1.11 output
//! (tests/fixtures/zfs/, see its README), and property tests: no input makes a parser panic.

use std::time::Duration;

use proptest::prelude::*;

use super::iostat::{Batcher, Reading};
use super::metrics;
use super::parse::*;
use super::status::*;
use crate::model::{AttrKey, MetricName, MetricPoint, Snapshot};

macro_rules! capture {
    ($version:literal, $file:literal) => {
        include_str!(concat!(
            "../../../../tests/fixtures/zfs/openzfs-",
            $version,
            "-qemu/",
            $file
        ))
    };
}

fn snapshot(points: Vec<MetricPoint>) -> Snapshot {
    Snapshot {
        points,
        ..Snapshot::default()
    }
}

fn value(s: &Snapshot, name: MetricName, with: &[(AttrKey, &str)]) -> f64 {
    s.find(name, with)
        .unwrap_or_else(|| panic!("no {} with {with:?}", name.as_str()))
        .value
        .as_f64()
}

#[test]
fn list_232_pool_rows_have_8_fields_vdev_rows_11_and_logs_line_is_skipped() {
    let pools = parse_list(capture!("2.3.2", "list-Hp-v-o.txt")).unwrap();
    assert_eq!(pools.len(), 2);
    let tank = &pools[1];
    assert_eq!(tank.name, "tank");
    assert_eq!(tank.size, Some(251_658_240));
    assert_eq!(tank.alloc, Some(99_478_528));
    assert_eq!(tank.free, Some(152_179_712));
    assert_eq!(tank.frag_percent, Some(28));
    assert_eq!(tank.dedup, Some(1.0));
    assert_eq!(tank.health, "ONLINE");
    let names: Vec<_> = tank.vdevs.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["mirror-0", "/vdev/tank-a", "/vdev/tank-b", "/vdev/tank-log"]
    );
    assert_eq!(pools[0].vdevs.len(), 1);
}

#[test]
fn list_2111_parses_the_same_shape() {
    let pools = parse_list(capture!("2.1.11", "list-Hp-v-o.txt")).unwrap();
    assert_eq!(pools.len(), 2);
    assert_eq!(pools[0].name, "scratch");
    assert_eq!(pools[0].frag_percent, Some(8));
    assert_eq!(pools[1].vdevs.len(), 4);
}

#[test]
fn degraded_list_gives_degraded_pool_and_offline_vdev() {
    let pools = parse_list(capture!("2.3.2", "degraded-list-Hp-v-o.txt")).unwrap();
    let mut points = Vec::new();
    metrics::list_points(&pools, &mut points);
    let s = snapshot(points);
    let tank = (AttrKey::ZfsPoolName, "tank");
    let state = |h| (AttrKey::ZfsPoolHealthState, h);
    assert_eq!(
        value(&s, MetricName::ZfsPoolHealth, &[tank, state("DEGRADED")]),
        1.0
    );
    assert_eq!(
        value(&s, MetricName::ZfsPoolHealth, &[tank, state("ONLINE")]),
        0.0
    );
    // Every health state is present, so the default rule sees DEGRADED drop back to 0.
    assert_eq!(
        s.points_named(MetricName::ZfsPoolHealth)
            .filter(|p| p
                .attributes
                .get(AttrKey::ZfsPoolName)
                .is_some_and(|v| v.as_text() == "tank"))
            .count(),
        metrics::HEALTH_STATES.len()
    );
    let vdev = (AttrKey::ZfsVdevName, "/vdev/tank-b");
    assert_eq!(
        value(
            &s,
            MetricName::ZfsVdevHealth,
            &[tank, vdev, state("OFFLINE")]
        ),
        1.0
    );
    assert_eq!(
        value(&s, MetricName::ZfsPoolUtilization, &[tank]),
        109_478_912.0 / 251_658_240.0
    );
    assert_eq!(value(&s, MetricName::ZfsPoolFragmentation, &[tank]), 0.33);
}

#[test]
fn list_dash_fragmentation_is_absent_and_unavail_pool_has_only_health() {
    let text = "tank\t-\t-\t-\t-\t-\t-\tUNAVAIL\n";
    let pools = parse_list(text).unwrap();
    let mut points = Vec::new();
    metrics::list_points(&pools, &mut points);
    let s = snapshot(points);
    assert!(
        s.points_named(MetricName::ZfsPoolFragmentation)
            .next()
            .is_none()
    );
    assert!(s.points_named(MetricName::ZfsPoolUsage).next().is_none());
    assert_eq!(
        value(
            &s,
            MetricName::ZfsPoolHealth,
            &[(AttrKey::ZfsPoolHealthState, "UNAVAIL")]
        ),
        1.0
    );
}

#[test]
fn malformed_list_line_names_the_line() {
    let text = "tank\t1\t2\t3\t-\t-\t1.00\tONLINE\nscratch\t251658240\t52368384\n";
    let e = parse_list(text).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(
        e.to_string().contains("zpool list line 2: expected 8"),
        "{e}"
    );
    let e = parse_list("tank\tbig\t2\t3\t-\t-\t1.00\tONLINE\n").unwrap_err();
    assert!(e.to_string().contains("\"big\" is not an integer"), "{e}");
    let e = parse_list("\torphan\t1\t-\t-\t-\t-\t-\t-\t-\tONLINE\n").unwrap_err();
    assert!(e.to_string().contains("vdev row before any pool"), "{e}");
}

#[test]
fn iostat_232_rows_have_18_fields_with_rebuild() {
    let rows = parse_iostat(capture!("2.3.2", "iostat-Hpl.txt")).unwrap();
    assert_eq!(rows.len(), 2);
    let tank = &rows[1];
    assert_eq!(tank.name, "tank");
    assert_eq!((tank.read_ops, tank.write_ops), (121, 965));
    assert_eq!(
        (tank.read_bytes, tank.write_bytes),
        (14_969_189, 21_776_662)
    );
    assert_eq!(tank.waits.total_read, 16_262_493);
    assert_eq!(tank.waits.asyncq_read, 0, "`-` means 0");
    assert_eq!(tank.waits.scrub, 12_925_026);
    assert_eq!(tank.waits.rebuild, Some(0));
}

#[test]
fn iostat_2111_rows_have_17_fields_without_rebuild() {
    let rows = parse_iostat(capture!("2.1.11", "iostat-Hpl.txt")).unwrap();
    assert_eq!(rows[1].waits.rebuild, None);
    assert_eq!(rows[1].waits.scrub, 12_918_313);
    let rows = parse_iostat(capture!("2.1.11", "cksum-iostat-Hpl-v.txt")).unwrap();
    // -v adds vdev rows and an empty separator line; all parse.
    assert_eq!(rows.len(), 7);
}

#[test]
fn iostat_latency_metrics_in_seconds_with_and_without_direction() {
    let rows = parse_iostat(capture!("2.3.2", "iostat-Hpl.txt")).unwrap();
    let pools = parse_list(capture!("2.3.2", "list-Hp-v-o.txt")).unwrap();
    let mut reading = Reading::default();
    reading.apply(rows, true, Duration::from_secs(5));
    let mut points = Vec::new();
    metrics::iostat_points(&reading, &pools, &mut points);
    let s = snapshot(points);
    let tank = (AttrKey::ZfsPoolName, "tank");
    let total_read = [
        tank,
        (AttrKey::ZfsWaitType, "total"),
        (AttrKey::DiskIoDirection, "read"),
    ];
    assert_eq!(
        value(&s, MetricName::ZfsPoolOperationLatency, &total_read),
        0.016_262_493
    );
    let scrub = s
        .find(
            MetricName::ZfsPoolOperationLatency,
            &[tank, (AttrKey::ZfsWaitType, "scrub")],
        )
        .unwrap();
    assert!(scrub.attributes.get(AttrKey::DiskIoDirection).is_none());
    assert!(
        s.find(
            MetricName::ZfsPoolOperationLatency,
            &[(AttrKey::ZfsWaitType, "rebuild")]
        )
        .is_some()
    );
    // The since-import report gives latencies but no counters (its time span is unknown).
    assert!(
        s.points_named(MetricName::ZfsPoolOperations)
            .next()
            .is_none()
    );
}

#[test]
fn stream_reports_split_on_repeated_pool_and_accumulate_rate_times_interval() {
    let mut batcher = Batcher::default();
    let mut reports = Vec::new();
    for (i, line) in capture!("2.3.2", "iostat-Hply-1-3.txt").lines().enumerate() {
        if let Some(r) = batcher.push(parse_iostat_line(line, i + 1).unwrap()) {
            reports.push(r);
        }
    }
    reports.extend(batcher.take());
    assert_eq!(reports.len(), 3);
    let mut reading = Reading::default();
    for r in reports {
        reading.apply(r, false, Duration::from_secs(2));
    }
    let tank = reading.totals["tank"];
    // write ops 1349 + 1461 + 1750 per second, 2 s each.
    assert_eq!(tank.write_ops, f64::from((1349 + 1461 + 1750) * 2));
    assert_eq!(
        tank.write_bytes,
        (18_278_584.0 + 16_188_849.0 + 18_435_191.0) * 2.0
    );
    // A report without tank (exported) drops it.
    let scratch_only = parse_iostat(capture!("2.3.2", "iostat-Hply-1-3.txt"))
        .unwrap()
        .into_iter()
        .take(1)
        .collect();
    reading.apply(scratch_only, false, Duration::from_secs(2));
    assert!(!reading.totals.contains_key("tank"));
    assert!(reading.rows.iter().all(|r| r.name == "scratch"));
}

#[test]
fn malformed_iostat_line_names_the_line() {
    let e = parse_iostat_line("tank\t1\t2", 7).unwrap_err();
    assert_eq!(e.line, 7);
    assert!(e.to_string().contains("expected 17"), "{e}");
    let bad = "tank\t1\t2\t3\t4\t5\t6\t7\t8\t9\tx\t1\t2\t3\t4\t5\t6";
    assert!(
        parse_iostat_line(bad, 1)
            .unwrap_err()
            .to_string()
            .contains("\"x\"")
    );
}

#[test]
fn versions_choose_json_from_23() {
    let v = parse_version(capture!("2.3.2", "zpool-version.txt")).unwrap();
    assert_eq!(v, ZfsVersion { major: 2, minor: 3 });
    assert!(v.has_status_json());
    let v = parse_version(capture!("2.1.11", "zpool-version.txt")).unwrap();
    assert!(!v.has_status_json());
    assert_eq!(parse_version("garbage"), None);
}

#[test]
fn status_json_232_healthy_and_degraded() {
    let s = parse_status_json(capture!("2.3.2", "status-j-json-int.txt")).unwrap();
    assert_eq!(s.len(), 2);
    assert!(
        s.iter()
            .all(|p| p.read_errors + p.write_errors + p.checksum_errors == 0)
    );
    assert!(
        s.iter().all(|p| p.scan.is_none()),
        "a finished scrub is no progress"
    );
    let s = parse_status_json(capture!("2.3.2", "degraded-status-j-json-int.txt")).unwrap();
    assert_eq!(s.len(), 2);
}

#[test]
fn status_json_scrub_running_and_paused() {
    let s =
        parse_status_json(capture!("2.3.2", "status-j-json-int-scrub-in-progress.txt")).unwrap();
    let scan = s[0].scan.unwrap();
    assert_eq!(scan.function, ScanFunction::Scrub);
    assert!(!scan.paused);
    // issued / (to_examine - skipped), as zpool computes "% done".
    assert!((scan.progress - 12_858_880.0 / (90_020_352.0 - 477_184.0)).abs() < 1e-12);
    let s = parse_status_json(capture!("2.3.2", "status-j-json-int-scrub-paused.txt")).unwrap();
    let scan = s[0].scan.unwrap();
    assert!(scan.paused);
    // The text capture of the same pause says 79.33% done.
    assert!((scan.progress - 0.7933).abs() < 0.0001, "{}", scan.progress);
}

#[test]
fn status_text_checksum_errors_2111() {
    let s = parse_status_text(capture!("2.1.11", "cksum-status.txt")).unwrap();
    let tank = s.iter().find(|p| p.name == "tank").unwrap();
    assert_eq!(
        (tank.read_errors, tank.write_errors, tank.checksum_errors),
        (0, 0, 198)
    );
    assert!(tank.scan.is_none());
    let mut points = Vec::new();
    metrics::status_points(&s, 0, &mut points);
    let snap = snapshot(points);
    let cksum = [
        (AttrKey::ZfsPoolName, "tank"),
        (AttrKey::ErrorType, "checksum"),
    ];
    assert_eq!(value(&snap, MetricName::ZfsPoolErrors, &cksum), 198.0);
}

#[test]
fn status_text_scrub_running_and_paused_both_versions() {
    for (text, want, paused) in [
        (
            capture!("2.1.11", "status-scrub-in-progress.txt"),
            0.001,
            false,
        ),
        (capture!("2.1.11", "status-scrub-paused.txt"), 0.9987, true),
        (
            capture!("2.3.2", "status-scrub-in-progress.txt"),
            0.0396,
            false,
        ),
        (capture!("2.3.2", "status-scrub-paused.txt"), 0.7933, true),
    ] {
        let s = parse_status_text(text).unwrap();
        let scan = s[0].scan.unwrap();
        assert_eq!(scan.function, ScanFunction::Scrub);
        assert!(
            (scan.progress - want).abs() < 1e-9,
            "{} != {want}",
            scan.progress
        );
        assert_eq!(scan.paused, paused);
    }
}

#[test]
fn status_text_degraded_and_finished_scrub() {
    let s = parse_status_text(capture!("2.3.2", "degraded-status.txt")).unwrap();
    assert_eq!(s.len(), 2);
    assert!(s.iter().all(|p| p.scan.is_none()));
    let s = parse_status_text(capture!("2.3.2", "status.txt")).unwrap();
    assert_eq!(s[1].name, "tank");
}

#[test]
fn status_text_malformed_counts_name_the_line() {
    let text = "  pool: tank\n state: ONLINE\nconfig:\n\n\tNAME STATE READ WRITE CKSUM\n\ttank ONLINE 0 zero 0\n";
    let e = parse_status_text(text).unwrap_err();
    assert_eq!(e.line, 6);
    let e = parse_status_json("{\"pools\": [").unwrap_err();
    assert!(e.to_string().contains("invalid JSON"), "{e}");
}

proptest! {
    #[test]
    fn parsers_never_panic(text in "(?s).{0,400}") {
        let _list = parse_list(&text);
        let _iostat = parse_iostat(&text);
        let _json = parse_status_json(&text);
        let _status = parse_status_text(&text);
        let _version = parse_version(&text);
    }

    #[test]
    fn parsers_never_panic_on_tabbed_fields(
        fields in proptest::collection::vec("[-0-9a-zA-Z.%:/ ]{0,12}", 0..20),
        lead_tab in any::<bool>(),
    ) {
        let mut line = fields.join("\t");
        if lead_tab {
            line.insert(0, '\t');
        }
        let text = format!("tank\t1\t2\t3\t4\t5\t1.00\tONLINE\n{line}\n  pool: x\nconfig:\n{line}\n  scan: scrub in progress\n{line}% done\n");
        let _list = parse_list(&text);
        let _line = parse_iostat_line(&line, 1);
        let _status = parse_status_text(&text);
    }
}
