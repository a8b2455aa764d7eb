//! The iostat child against small scripts: death, stall, malformed lines.

use std::os::unix::fs::PermissionsExt;

use super::*;

/// A script standing in for `zpool`: its `iostat` prints `body` (shell).
fn script(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let path = dir.path().join("zpool");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const ROW: &str = "tank\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t14\t15\t16\t17";

#[tokio::test]
async fn a_child_that_dies_is_restarted_and_the_status_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("printf '{ROW}\\n'; echo 'cannot open pool' >&2; exit 1");
    let mut stream = Iostat::start(script(&dir, &body), Duration::from_secs(1));
    let status = stream
        .wait_until(Duration::from_secs(10), |s| {
            matches!(s.state, ChildState::Restarting { .. })
        })
        .await;
    // The one report it printed was read before it died.
    assert_eq!(status.reports, 1);
    assert_eq!(status.reading.rows[0].name, "tank");
    let problem = status.problem().unwrap();
    assert!(
        problem.starts_with("zpool iostat exited (exit status: 1): cannot open pool;"),
        "{problem}"
    );
    assert!(
        problem.contains("restarting in 1s (attempt 1)"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_silent_child_is_a_stall_after_three_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("printf '{ROW}\\n'; exec sleep 600");
    let mut stream = Iostat::start(script(&dir, &body), Duration::from_secs(1));
    let status = stream
        .wait_until(Duration::from_secs(20), |s| {
            matches!(s.state, ChildState::Restarting { .. })
        })
        .await;
    let problem = status.problem().unwrap();
    assert!(
        problem.starts_with("zpool iostat stalled (no line for 3s)"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_malformed_stream_line_is_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("printf 'tank\\tgarbage\\n{ROW}\\n'; exec sleep 600");
    let mut stream = Iostat::start(script(&dir, &body), Duration::from_secs(5));
    let status = stream
        .wait_until(Duration::from_secs(10), |s| s.malformed.is_some())
        .await;
    let problem = status.problem().unwrap();
    assert!(
        problem.contains("zpool iostat line 1: expected 17"),
        "{problem}"
    );
}

#[test]
fn the_waiting_state_reads_as_the_operator_expects() {
    let status = Status {
        state: ChildState::Waiting,
        reading: Reading::default(),
        malformed: None,
        reports: 0,
    };
    assert_eq!(
        status.problem().as_deref(),
        Some("waiting for the first zpool iostat interval")
    );
}

#[tokio::test]
async fn an_endless_line_restarts_the_child_with_the_cap_as_reason() {
    let dir = tempfile::tempdir().unwrap();
    // `tr` deletes every newline: one line that never ends.
    let mut stream = Iostat::start(
        script(&dir, "yes 0123456789 | tr -d '\\n'"),
        Duration::from_secs(1),
    );
    let status = stream
        .wait_until(Duration::from_secs(10), |s| {
            matches!(s.state, ChildState::Restarting { .. })
        })
        .await;
    let problem = status.problem().unwrap();
    assert!(
        problem.contains("printed a line longer than 64 KiB; killed its process group"),
        "{problem}"
    );
}
