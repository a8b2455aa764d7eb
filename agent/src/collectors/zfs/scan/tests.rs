//! The last scan from genuine captures: OpenZFS 2.3.2's text and JSON of the same pools must
//! agree field for field; 2.1.11 and published ZoL 0.7 / TrueNAS text add the other forms. The
//! qemu guests ran in UTC, so their text dates are read as UTC here.

use std::path::Path;

use super::{Civil, LastScan, ScanState};
use crate::collectors::zfs::status::{
    PoolStatus, ScanFunction, parse_status_json, parse_status_text_in,
};

fn read(dir: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/zfs")
        .join(dir)
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn utc(c: Civil) -> Option<i64> {
    Some(c.utc_unix())
}

fn last(pools: &[PoolStatus], name: &str) -> LastScan {
    pools
        .iter()
        .find(|p| p.name == name)
        .unwrap()
        .last_scan
        .unwrap()
}

const Q232: &str = "openzfs-2.3.2-qemu";
const Q2111: &str = "openzfs-2.1.11-qemu";

#[test]
fn a_finished_scrub_reads_the_same_from_232_text_and_json() {
    let text = parse_status_text_in(&read(Q232, "status.txt"), utc).unwrap();
    let json = parse_status_json(&read(Q232, "status-j-json-int.txt")).unwrap();
    let want = LastScan {
        function: Some(ScanFunction::Scrub),
        state: ScanState::Finished,
        start: Some(1_795_441_900),
        end: Some(1_795_441_902),
        repaired: Some(0),
        errors: Some(0),
    };
    assert_eq!(last(&text, "tank"), want);
    assert_eq!(last(&json, "tank"), want);
    // scratch was never scrubbed: no `scan:` line, no scan_stats.
    assert_eq!(last(&text, "scratch"), LastScan::NONE);
    assert_eq!(last(&json, "scratch"), LastScan::NONE);
}

#[test]
fn running_and_paused_scrubs_have_their_start_in_both_forms() {
    for (text, json) in [
        (
            "status-scrub-in-progress.txt",
            "status-j-json-int-scrub-in-progress.txt",
        ),
        (
            "status-scrub-paused.txt",
            "status-j-json-int-scrub-paused.txt",
        ),
    ] {
        let t = last(
            &parse_status_text_in(&read(Q232, text), utc).unwrap(),
            "tank",
        );
        let j = last(&parse_status_json(&read(Q232, json)).unwrap(), "tank");
        for scan in [t, j] {
            assert_eq!(scan.state, ScanState::Scanning, "{text}");
            assert_eq!(scan.function, Some(ScanFunction::Scrub));
            assert_eq!(scan.start, Some(1_795_441_900), "{text}");
            assert_eq!((scan.end, scan.errors), (None, None));
        }
    }
    let t2111 = parse_status_text_in(&read(Q2111, "status-scrub-paused.txt"), utc).unwrap();
    assert_eq!(
        last(&t2111, "tank").start,
        Some(
            Civil::parse_tail("Mon Nov 23 13:52:51 2026")
                .unwrap()
                .utc_unix()
        )
    );
}

#[test]
fn a_scrub_that_repaired_data_on_2111_gives_zpools_rounded_size() {
    let pools = parse_status_text_in(&read(Q2111, "cksum-status.txt"), utc).unwrap();
    let scan = last(&pools, "tank");
    assert_eq!(scan.state, ScanState::Finished);
    // "scrub repaired 18.1M in 00:00:01 with 0 errors on Mon Nov 23 13:53:35 2026"
    assert_eq!(scan.repaired, Some((18.1f64 * 1_048_576.0).round() as u64));
    assert_eq!(scan.errors, Some(0));
    let end = Civil::parse_tail("Mon Nov 23 13:53:35 2026")
        .unwrap()
        .utc_unix();
    assert_eq!((scan.start, scan.end), (Some(end - 1), Some(end)));
}

#[test]
fn finished_resilvers_in_zol_07_and_openzfs_2_forms() {
    let zol = parse_status_text_in(&read("public-status", "zol07-online-resilvered.txt"), utc);
    let scan = last(&zol.unwrap(), "Data");
    assert_eq!(scan.function, Some(ScanFunction::Resilver));
    assert_eq!(scan.state, ScanState::Finished);
    let end = Civil::parse_tail("Sat Jan 12 15:38:26 2019")
        .unwrap()
        .utc_unix();
    assert_eq!(scan.start, Some(end - (4 * 3600 + 8 * 60)));
    assert_eq!(
        scan.repaired,
        Some((1.03f64 * (1u64 << 40) as f64).round() as u64)
    );
    let name = "asokolsky-truenas-2026-degraded-offline.txt";
    let pools = parse_status_text_in(&read("public-status", name), utc).unwrap();
    let scan = pools[0].last_scan.unwrap();
    assert_eq!(scan.function, Some(ScanFunction::Resilver));
    assert_eq!(scan.errors, Some(0));
    assert_eq!(
        scan.end.zip(scan.start).map(|(e, s)| e - s),
        Some(8 * 3600 + 17 * 60 + 36)
    );
}

#[test]
fn dates_convert_like_date_1() {
    // `date -u -d @1795441902` prints "Mon Nov 23 13:51:42 UTC 2026".
    let c = Civil::parse_tail("with 0 errors on Mon Nov 23 13:51:42 2026").unwrap();
    assert_eq!(c.utc_unix(), 1_795_441_902);
    // ctime pads single-digit days with a space.
    let c = Civil::parse_tail("Tue Dec  1 00:00:00 2026").unwrap();
    assert_eq!(c.utc_unix(), 1_796_083_200);
    assert_eq!(Civil::parse_tail("Tue Foo  1 00:00:00 2026"), None);
    assert_eq!(Civil::parse_tail("Tue Dec  1 25:00:00 2026"), None);
}

#[test]
fn canceled_none_and_unknown_scan_lines() {
    let canceled = super::from_text(" scrub canceled on Mon Nov 23 13:51:42 2026", utc).unwrap();
    assert_eq!(canceled.state, ScanState::Canceled);
    assert_eq!(canceled.end, Some(1_795_441_902));
    assert_eq!(
        super::from_text(" none requested", utc),
        Some(LastScan::NONE)
    );
    assert_eq!(super::from_text(" something new", utc), None);
    assert_eq!(super::from_text(" scrub repaired 0B in <snip>", utc), None);
}

proptest::proptest! {
    #[test]
    fn scan_lines_never_panic(line in "\\PC{0,120}") {
        let _ = super::from_text(&line, utc);
        let _ = super::started_on(&line, utc);
    }
}

#[test]
fn points_give_the_age_of_a_finished_scrub_and_mark_a_never_scanned_pool() {
    use crate::collectors::zfs::metrics::status_points;
    use crate::model::{AttrKey, MetricName, MetricPoint};
    let pools = parse_status_json(&read(Q232, "status-j-json-int.txt")).unwrap();
    let mut points = Vec::new();
    status_points(&pools, 1_795_441_902 + 86_400, &mut points);
    let find = |name: MetricName, pool: &str, state: Option<&str>| -> Vec<&MetricPoint> {
        points
            .iter()
            .filter(|p| p.name == name)
            .filter(|p| {
                p.attributes.get(AttrKey::ZfsPoolName).map(|v| v.as_text()) == Some(pool.into())
            })
            .filter(|p| {
                state.is_none()
                    || p.attributes.get(AttrKey::ZfsScanState).map(|v| v.as_text())
                        == state.map(str::to_owned)
            })
            .collect()
    };
    let age = find(MetricName::ZfsPoolScanAge, "tank", None);
    assert_eq!(age.len(), 1);
    assert_eq!(age[0].value.as_f64(), 86_400.0);
    assert_eq!(
        age[0]
            .attributes
            .get(AttrKey::ZfsScanFunction)
            .map(|v| v.as_text()),
        Some("scrub".to_owned())
    );
    assert_eq!(
        find(MetricName::ZfsPoolScanErrors, "tank", None)[0]
            .value
            .as_f64(),
        0.0
    );
    assert_eq!(
        find(MetricName::ZfsPoolScanEnd, "tank", None)[0]
            .value
            .as_f64(),
        1_795_441_902.0
    );
    assert_eq!(
        find(MetricName::ZfsPoolScanState, "tank", Some("finished"))[0]
            .value
            .as_f64(),
        1.0
    );
    assert_eq!(
        find(MetricName::ZfsPoolScanState, "tank", Some("none"))[0]
            .value
            .as_f64(),
        0.0
    );
    // Never scanned: state none = 1, and no age for the 35-day rule to misread.
    assert_eq!(
        find(MetricName::ZfsPoolScanState, "scratch", Some("none"))[0]
            .value
            .as_f64(),
        1.0
    );
    assert!(find(MetricName::ZfsPoolScanAge, "scratch", None).is_empty());
}
