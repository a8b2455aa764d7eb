//! Hostile config files through the real daemon (issue 14, items 1 to 3): an empty file, a FIFO
//! at the config path, and reloads in a row that change `interval`. Each must leave the tick
//! loop running and the last good config in force.

// Tests bound their own wall-clock budget; tokio's virtual clock does not apply.
#![allow(clippy::disallowed_types)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hostwarden_tests::bin;
use hostwarden_tests::daemon::{Daemon, save_like_an_editor, tick_fields};

const WAIT: Duration = Duration::from_secs(20);

fn config(interval: &str) -> String {
    format!(
        "[agent]\ninterval = \"{interval}\"\n\
         [gpu]\nenabled = false\n[zfs]\nenabled = false\n[ollama]\nenabled = false\n"
    )
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path that lives across the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

fn is_tick(l: &str) -> bool {
    tick_fields(l).is_some()
}

#[test]
fn an_empty_file_on_reload_is_rejected_and_the_last_good_config_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostwarden.toml");
    std::fs::write(&path, config("300ms")).unwrap();
    let mut d = Daemon::start(&path, &[], &[]);
    d.wait_for(WAIT, "first tick", is_tick);
    // Truncated in place, as an editor does before it writes or a full disk leaves it.
    std::fs::File::create(&path).unwrap();
    d.wait_for(WAIT, "rejection", |l| l.contains("Config rejected"));
    let why = d.wait_for(WAIT, "reason", |l| l.contains("hostwarden.toml:"));
    assert!(
        why.text.contains(":1:1: (document): the file is empty"),
        "{}",
        why.text
    );
    for _ in 0..2 {
        d.wait_for(WAIT, "tick after the rejection", is_tick);
    }
    assert!(!d.seen.iter().any(|l| l.contains("Config reloaded")));
}

#[test]
fn an_empty_file_on_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostwarden.toml");
    std::fs::write(&path, "\n  \n").unwrap();
    let out = Command::new(bin())
        .args(["run", "--view", "never", "--ticks", "1", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("hostwarden.toml:1:1: (document): the file is empty"),
        "{stderr}"
    );
}

#[test]
fn a_fifo_at_the_config_path_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    mkfifo(&fifo);
    // No writer ever opens the FIFO: a blocking open() would never return.
    let mut check = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&fifo)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = check.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > WAIT {
            let _killed = check.kill();
            panic!("check-config blocked on a FIFO");
        }
        // Polling the exit status: there is no portable exit event for a child.
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = check.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(
        stderr.contains("fifo.toml: cannot read: a FIFO; only a regular file is read as config"),
        "{stderr}"
    );

    // The same FIFO swapped in under a running daemon: rejected, and ticks and SIGHUP go on.
    let path = dir.path().join("hostwarden.toml");
    std::fs::write(&path, config("300ms")).unwrap();
    let mut d = Daemon::start(&path, &[], &[]);
    d.wait_for(WAIT, "first tick", is_tick);
    std::fs::rename(&fifo, &path).unwrap();
    d.wait_for(WAIT, "FIFO refused", |l| l.contains("cannot read: a FIFO"));
    d.wait_for(WAIT, "tick after the FIFO", is_tick);
    d.signal(libc::SIGHUP);
    d.wait_for(WAIT, "FIFO refused on SIGHUP", |l| {
        l.contains("cannot read: a FIFO")
    });
    for _ in 0..2 {
        d.wait_for(WAIT, "tick after SIGHUP", is_tick);
    }
}

#[test]
fn reloads_in_a_row_that_change_the_interval_never_hold_ticks_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostwarden.toml");
    std::fs::write(&path, config("700ms")).unwrap();
    let mut d = Daemon::start(&path, &[], &[]);
    d.wait_for(WAIT, "first tick", is_tick);
    // Each reload lands well inside an interval (the watcher settles for 150 ms): a ticker
    // rebuilt a full interval after each reload would never fire.
    let mut ticks = 0;
    let mut reloads = 0;
    let started = Instant::now();
    while ticks < 3 {
        assert!(
            started.elapsed() < WAIT,
            "{ticks} ticks in {reloads} reloads over {:?}",
            started.elapsed()
        );
        let interval = if reloads % 2 == 0 { "800ms" } else { "700ms" };
        save_like_an_editor(&path, &config(interval));
        loop {
            let l = d.wait_for(WAIT, "reload or tick", |l| {
                is_tick(l) || l.contains("Config reloaded")
            });
            if is_tick(&l.text) {
                ticks += 1;
            } else {
                reloads += 1;
                break;
            }
        }
    }
    assert!(reloads >= 3, "only {reloads} reloads for {ticks} ticks");
}

#[test]
fn a_kubernetes_configmap_swap_of_the_data_symlink_is_reloaded() {
    // The layout kubelet gives a mounted ConfigMap: the file is a link through `..data`, and an
    // update writes a new timestamped directory, then renames a new `..data` link over the old.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("..2026_12_01_a")).unwrap();
    std::fs::write(root.join("..2026_12_01_a/hostwarden.toml"), config("300ms")).unwrap();
    std::os::unix::fs::symlink("..2026_12_01_a", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/hostwarden.toml", root.join("hostwarden.toml")).unwrap();
    let mut d = Daemon::start(&root.join("hostwarden.toml"), &[], &[]);
    d.wait_for(WAIT, "first tick", is_tick);

    std::fs::create_dir(root.join("..2026_12_01_b")).unwrap();
    std::fs::write(root.join("..2026_12_01_b/hostwarden.toml"), config("400ms")).unwrap();
    std::os::unix::fs::symlink("..2026_12_01_b", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    d.wait_for(WAIT, "reload after the swap", |l| {
        l.contains("Config reloaded")
    });
    d.wait_for(WAIT, "tick after the swap", is_tick);
}

#[test]
fn an_edit_to_a_symlinked_configs_target_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    let link_dir = dir.path().join("etc");
    std::fs::create_dir(&real_dir).unwrap();
    std::fs::create_dir(&link_dir).unwrap();
    let target = real_dir.join("hw.toml");
    std::fs::write(&target, config("300ms")).unwrap();
    let link = link_dir.join("hostwarden.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut d = Daemon::start(&link, &[], &[]);
    d.wait_for(WAIT, "first tick", is_tick);
    // Nothing changes in the link's directory: only the target's does.
    save_like_an_editor(&target, &config("400ms"));
    d.wait_for(WAIT, "reload after the edit", |l| {
        l.contains("Config reloaded")
    });
}
