//! The README's first code block is what a newcomer types. Its first command runs literally, as
//! written, in a clean clone of this repository, and shows the live view: the host collector
//! `ok` and every other collector with the reason it is unavailable here. Its second command
//! is the one CI runs.

// Real wall-clock deadlines around a real build: tokio's test clock has nothing to control here.
#![allow(clippy::disallowed_types)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hostwarden_tests::{strip_ansi, workspace_root};

/// The commands of the README's first fenced block, comments and blank lines dropped.
fn first_block_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let block = readme.split("```").nth(1).expect("README has a code block");
    block
        .lines()
        .skip(1) // the fence's info string (`sh`)
        .map(|l| l.split(" #").next().unwrap_or_default().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_readme_opens_with_the_run_command_and_the_command_ci_runs() {
    let cmds = first_block_commands();
    assert_eq!(cmds.len(), 2, "two commands: {cmds:?}");
    assert_eq!(cmds[0], "cargo run --release -- run");
    let ci = std::fs::read_to_string(workspace_root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == cmds[1]),
        ".ci/run must run the README's test command `{}`",
        cmds[1]
    );
}

/// The live view has drawn every collector once: host `ok`, the others with a reason.
fn view_complete(screen: &str) -> bool {
    let line = |name: &str| {
        screen
            .lines()
            .rev()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(str::to_owned)
    };
    let host_ok = line("host").is_some_and(|l| l.split_whitespace().nth(1) == Some("ok"));
    let others_say_why = ["gpu", "zfs", "ollama"]
        .iter()
        .all(|c| line(c).is_some_and(|l| l.contains('(') && l.contains(')')));
    host_ok && others_say_why
}

#[test]
fn the_first_command_shows_the_live_view_in_a_clean_clone() {
    let cmds = first_block_commands();
    let clone_parent = tempfile::tempdir().unwrap();
    let clone = clone_parent.path().join("hostwarden");
    let status = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(workspace_root())
        .arg(&clone)
        .status()
        .expect("git clone");
    assert!(status.success(), "git clone of the workspace failed");

    // A target directory of its own, kept between runs: the clone's release build must not
    // replace the suite's target/release/hostwarden while other tests use it, and a second run
    // only relinks.
    let target = workspace_root().join("target").join("quickstart");
    seed_from_the_suites_release_build(&target);
    let screen = run_on_a_terminal(&clone, &cmds[0], &target);
    assert!(
        view_complete(&screen),
        "`{}` did not show the live view (host ok, the others with their reasons); the terminal \
         showed:\n{screen}",
        cmds[0]
    );
}

/// On a cold machine the suite has usually built the release profile already (the packaging
/// tests run `cargo xtask package` before this one): copying its compiled dependencies into the
/// empty quickstart target leaves the clone only its own crates to compile, minutes of two cores
/// saved. Cargo still decides freshness itself; the clone's crates, at another path, are always
/// rebuilt, so what the test runs is the clone's own build.
fn seed_from_the_suites_release_build(target: &Path) {
    let ours = workspace_root().join("target").join("release");
    let theirs = target.join("release");
    if theirs.exists() || !ours.join(".fingerprint").is_dir() {
        return;
    }
    std::fs::create_dir_all(&theirs).unwrap();
    for part in [".fingerprint", "build", "deps"] {
        let status = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(ours.join(part))
            .arg(&theirs)
            .status()
            .expect("cp");
        assert!(status.success(), "copying target/release/{part} failed");
    }
}

/// Runs `command` through `sh -c` on a pseudo-terminal (util-linux `script`), as a person at a
/// terminal would, until the live view is complete or the time is up; returns the screen text.
fn run_on_a_terminal(dir: &Path, command: &str, target: &Path) -> String {
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", command, "/dev/null"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("util-linux `script` runs the command on a terminal");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // A cold release build on two busy cores takes minutes; the view then draws within a tick.
    let deadline = std::time::Instant::now() + Duration::from_secs(25 * 60);
    let mut raw = Vec::new();
    let mut screen = String::new();
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(bytes) => raw.extend_from_slice(&bytes),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        screen = strip_ansi(&String::from_utf8_lossy(&raw));
        if view_complete(&screen) {
            break;
        }
    }
    // SAFETY: kill has no memory-safety preconditions; the group is the one spawned above.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGTERM);
    }
    let _status = child.wait();
    screen
}
