//! What the agent finds at, and leaves behind in, the paths it owns (issue 14, item 8): a file
//! at the status socket path is refused and kept, and the state it writes is private whatever
//! the umask it was started under.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hostwarden_tests::bin;
use hostwarden_tests::daemon::{Daemon, tick_fields};

const WAIT: Duration = Duration::from_secs(20);

fn config(dir: &Path, socket: &Path, rules: &str) -> String {
    format!(
        "[agent]\ninterval = \"200ms\"\nstate_dir = {:?}\nstatus_socket = {socket:?}\n\
         [gpu]\nenabled = false\n[zfs]\nenabled = false\n[ollama]\nenabled = false\n{rules}",
        dir.join("state"),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_regular_file_at_the_status_socket_path_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("status.sock");
    std::fs::write(&socket, "precious\n").unwrap();
    let path = dir.path().join("hostwarden.toml");
    std::fs::write(&path, config(dir.path(), &socket, "")).unwrap();
    let mut d = Daemon::start(&path, &[], &[]);
    let refused = d.wait_for(WAIT, "refusal", |l| l.contains("Status socket not served"));
    assert!(
        refused
            .text
            .contains("status.sock is a regular file, not a socket; refusing to replace it"),
        "{}",
        refused.text
    );
    // Monitoring goes on without the socket.
    d.wait_for(WAIT, "tick", |l| tick_fields(l).is_some());
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "precious\n");
}

#[test]
fn state_is_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/status.sock");
    // Fires on the first tick, so an event reaches the outbox.
    let rule = "[[rules]]\nname = \"always\"\nmetric = \"system.memory.utilization\"\n\
                match = { \"system.memory.state\" = \"used\" }\nop = \">=\"\nwarning = 0\n";
    let path = dir.path().join("hostwarden.toml");
    std::fs::write(&path, config(dir.path(), &socket, rule)).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--view", "never", "--ticks", "3", "--config"])
        .arg(&path);
    // SAFETY: umask(2) is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = dir.path().join("state");
    assert_eq!(mode(&state), 0o700, "state dir");
    let mut files: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&state).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        files.push(p.file_name().unwrap().to_string_lossy().into_owned());
    }
    files.sort();
    assert_eq!(files, ["outbox.json", "rules.json"]);
    assert_eq!(mode(&dir.path().join("run")), 0o755, "socket directory");
}
