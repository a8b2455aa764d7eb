//! The counter under tokio's paused clock: one line first, then one summary per window.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_flood_gives_the_first_line_then_one_summary_per_window() {
    let mut c = RepeatCounter::new(WINDOW);
    let mut reports = Vec::new();
    // 100,000 occurrences spread over 150 s.
    for i in 0..100_000u64 {
        if let Some(r) = c.hit(Instant::now(), || format!("line {i}")) {
            reports.push(r);
        }
        tokio::time::advance(Duration::from_micros(1_500)).await;
    }
    reports.extend(c.flush(Instant::now()));
    // First, a summary at 60 s, one at 120 s, the rest on flush.
    assert_eq!(reports.len(), 4, "{reports:?}");
    assert_eq!(reports[0], Report::First);
    let counted: u64 = reports
        .iter()
        .map(|r| match r {
            Report::Summary { count, .. } => *count,
            Report::First => 1,
        })
        .sum();
    assert_eq!(counted, 100_000);
    let Report::Summary { last, over, .. } = &reports[3] else {
        panic!("{reports:?}")
    };
    assert_eq!(last, "line 99999");
    assert!(*over <= WINDOW);
}

#[tokio::test(start_paused = true)]
async fn after_a_quiet_window_the_next_occurrence_is_logged_at_once() {
    let mut c = RepeatCounter::new(WINDOW);
    assert_eq!(c.hit(Instant::now(), String::new), Some(Report::First));
    assert_eq!(c.flush(Instant::now()), None);
    tokio::time::advance(WINDOW * 2).await;
    assert_eq!(c.hit(Instant::now(), String::new), Some(Report::First));
}

#[test]
fn counts_have_thousands_separators() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1_000), "1,000");
    assert_eq!(thousands(3_456_614), "3,456,614");
}
