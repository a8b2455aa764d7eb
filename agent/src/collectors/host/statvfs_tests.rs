//! The worker pool behind `Statter`: reused across ticks, and a dead mount ahead in the list
//! does not hold up the live ones behind it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{FsStat, StatOutcome, Statter};

const LIVE: FsStat = FsStat {
    frsize: 4096,
    blocks: 10,
    bfree: 5,
    bavail: 4,
    files: 3,
    ffree: 1,
};

fn live(_: &Path) -> Result<FsStat, String> {
    Ok(LIVE)
}

/// Hangs for good on a path ending in `dead`.
fn one_dead(path: &Path) -> Result<FsStat, String> {
    if path.ends_with("dead") {
        loop {
            std::thread::park();
        }
    }
    Ok(LIVE)
}

#[tokio::test]
async fn workers_are_reused_across_ticks() {
    let paths: Vec<Arc<Path>> = (0..6)
        .map(|i| Path::new(&format!("/m{i}")).into())
        .collect();
    let mut statter = Statter::with_stat(live);
    for _ in 0..50 {
        let out = statter.stat_all(&paths, Duration::from_secs(1)).await;
        assert!(out.iter().all(|o| *o == StatOutcome::Done(LIVE)), "{out:?}");
    }
    assert_eq!(statter.outstanding(), 0);
    // One worker serves a tick; a busy host's slow wake-up may add more for that tick, but the
    // extra ones end once idle: never one per mount or per tick.
    settles_to(&statter, 2).await;
}

/// Waits (up to 5 s: a loaded host may be slow to run an ending worker) for at most `max`
/// worker threads.
async fn settles_to(statter: &Statter, max: usize) {
    for _ in 0..500 {
        if statter.threads() <= max {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} worker threads, expected at most {max}",
        statter.threads()
    );
}

#[tokio::test]
async fn a_dead_mount_first_in_the_list_leaves_the_live_ones_answered() {
    let paths: Vec<Arc<Path>> = vec![
        Path::new("/mnt/dead").into(),
        Path::new("/a").into(),
        Path::new("/b").into(),
    ];
    let mut statter = Statter::with_stat(one_dead);
    for tick in 0..5 {
        let out = statter.stat_all(&paths, Duration::from_millis(300)).await;
        assert_eq!(out[0], StatOutcome::Stale, "tick {tick}");
        assert_eq!(
            out[1..],
            [StatOutcome::Done(LIVE), StatOutcome::Done(LIVE)],
            "tick {tick}"
        );
        assert_eq!(statter.outstanding(), 1, "tick {tick}");
    }
    // The stuck worker plus at most two idle ones.
    settles_to(&statter, 3).await;
}

#[tokio::test]
async fn a_path_flagged_inline_is_answered_without_a_worker() {
    let paths: Vec<Arc<Path>> = vec![Path::new("/").into(), Path::new("/run").into()];
    let mut statter = Statter::with_stat(live);
    for _ in 0..3 {
        let issued = statter.submit(&paths, &[true, true], Duration::from_secs(1));
        let out = statter.gather(&paths, issued).await;
        assert_eq!(out, vec![StatOutcome::Done(LIVE); 2]);
    }
    assert_eq!(
        statter.threads(),
        0,
        "no worker started for calls that cannot hang"
    );
    // Unflagged, the same paths go to a worker.
    let issued = statter.submit(&paths, &[true, false], Duration::from_secs(1));
    let out = statter.gather(&paths, issued).await;
    assert_eq!(out, vec![StatOutcome::Done(LIVE); 2]);
    assert_eq!(statter.threads(), 1);
}
