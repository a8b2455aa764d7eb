//! Hot reload through the real daemon: good → bad → good. The bad file is rejected with the
//! same located messages as check-config, never takes effect, and the tick loop never stalls.

use std::time::Duration;

use hostwarden_tests::daemon::{Daemon, save_like_an_editor, tick_fields};

const WAIT: Duration = Duration::from_secs(20);

/// Only the CPU part of the host collector varies with `per_cpu`; disks, filesystems and
/// network are off so that the point counts the test compares move with nothing else (a mount
/// or an interface that comes or goes on the machine while it runs).
fn config(per_cpu: bool, extra: &str) -> String {
    format!(
        "[agent]\ninterval = \"300ms\"\n[host]\nper_cpu = {per_cpu}\n{extra}\n\
         [host.disk]\nenabled = false\n[host.filesystem]\nenabled = false\n\
         [host.network]\nenabled = false\n\
         [gpu]\nenabled = false\n[zfs]\nenabled = false\n[ollama]\nenabled = false\n"
    )
}

#[test]
fn good_bad_good_keeps_the_last_good_config_and_every_tick() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostwarden.toml");
    std::fs::write(&path, config(true, "")).unwrap();
    let mut d = Daemon::start(&path, &[], &[]);

    // Ticks 1 and 2: per-CPU utilisation exists from the second read on.
    d.wait_for(WAIT, "tick 3", |l| {
        tick_fields(l).is_some_and(|(t, _)| t == 3)
    });
    let mut ticks = vec![];
    let with_per_cpu = d.wait_for(WAIT, "tick 4", |l| {
        tick_fields(l).is_some_and(|(t, _)| t == 4)
    });
    let (_, points_per_cpu) = tick_fields(&with_per_cpu.text).unwrap();
    ticks.push(with_per_cpu);

    // A bad file that would also turn per-CPU off: rejected, located, and without effect.
    save_like_an_editor(&path, &config(false, "bogus_key = 1"));
    let rejected = d.wait_for(WAIT, "rejection", |l| l.contains("Config rejected"));
    assert!(
        rejected
            .text
            .contains("the last good config stays in force"),
        "{}",
        rejected.text
    );
    let located = d.wait_for(WAIT, "located error", |l| l.contains("hostwarden.toml:"));
    assert!(
        located
            .text
            .contains(":5:1: host.bogus_key: unknown field `bogus_key`"),
        "{}",
        located.text
    );
    for _ in 0..3 {
        let t = d.wait_for(WAIT, "tick after rejection", |l| tick_fields(l).is_some());
        assert_eq!(
            tick_fields(&t.text).unwrap().1,
            points_per_cpu,
            "bad config took effect: {}",
            t.text
        );
        ticks.push(t);
    }

    // The corrected file takes effect on a following tick without a restart.
    save_like_an_editor(&path, &config(false, ""));
    d.wait_for(WAIT, "reload", |l| l.contains("Config reloaded"));
    let after = d.wait_for(WAIT, "tick after reload", |l| tick_fields(l).is_some());
    let (_, points_after) = tick_fields(&after.text).unwrap();
    ticks.push(after);
    let cpus = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    // system.cpu.time: one series per cpu.mode per CPU becomes one per cpu.mode.
    let modes = 7;
    assert_eq!(
        points_after,
        points_per_cpu - modes * (cpus - 1),
        "per-CPU points should be gone"
    );

    // No tick was lost: numbers are consecutive.
    let numbers: Vec<u64> = ticks
        .iter()
        .map(|t| tick_fields(&t.text).unwrap().0)
        .collect();
    for w in numbers.windows(2) {
        assert_eq!(w[1], w[0] + 1, "ticks {numbers:?}");
    }
}

#[test]
fn sighup_reloads_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostwarden.toml");
    std::fs::write(&path, config(true, "")).unwrap();
    let mut d = Daemon::start(&path, &[], &[]);
    d.wait_for(WAIT, "first tick", |l| tick_fields(l).is_some());
    // Written in place (no rename) while the watcher sees it too; SIGHUP must reload as well.
    std::fs::write(&path, config(false, "")).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for(WAIT, "reload", |l| {
        l.contains("Config reloaded") || l.contains("Config unchanged")
    });
    d.signal(libc::SIGTERM);
    d.wait_for(WAIT, "stop", |l| l.contains("SIGTERM received"));
    let status = d.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}
