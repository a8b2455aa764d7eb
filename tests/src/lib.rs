//! Shared helpers for the integration tests: finding (and building) the real binary, and the
//! runner of the end-to-end tests that need more of the host (`harness`, `need`).

pub mod alertmanager_server;
pub mod daemon;
pub mod fake_proc;
pub mod harness;
pub mod need;
pub mod node_oracle;
pub mod nvml_shim;
pub mod prometheus;
pub mod prometheus_server;
pub mod promql;
pub mod rotel;
pub mod standin;
pub mod systemd_user;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The `target/<profile>` directory this test executable was built into.
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-exe>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("test executable lives in target/<profile>/deps")
}

/// Path of the `hostwarden` binary, built once per test process so it is never stale.
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| cargo_build("hostwarden", "hostwarden", built_as_release()))
        .clone()
}

/// The release `hostwarden` (the one we ship), built if stale whatever profile runs the tests.
pub fn release_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| cargo_build("hostwarden", "hostwarden", true))
        .clone()
}

/// Whether this test executable was built with the release profile.
pub fn built_as_release() -> bool {
    target_profile_dir()
        .file_name()
        .is_some_and(|n| n == "release")
}

/// Builds `bin` of `package` (quietly; cargo makes it a no-op when fresh) and returns its path.
pub fn cargo_build(package: &str, bin: &str, release: bool) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "-p", package, "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build of {bin} failed");
    let profile_dir = target_profile_dir();
    let dir = if release {
        profile_dir.parent().expect("target dir").join("release")
    } else {
        profile_dir
    };
    let path = dir.join(bin);
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

/// The value of the one point named `name` whose attributes include all of `attrs`, in a
/// snapshot as `hostwarden once --format json` prints it; several matches fail the test.
pub fn snapshot_point(
    snap: &serde_json::Value,
    name: &str,
    attrs: &[(&str, &str)],
) -> Option<serde_json::Value> {
    let mut found = snap["points"]
        .as_array()?
        .iter()
        .filter(|p| p["name"] == name && attrs.iter().all(|(k, v)| p["attributes"][*k] == *v));
    let first = found.next()?;
    assert!(
        found.next().is_none(),
        "{name} {attrs:?} matches several points"
    );
    Some(first["value"].clone())
}

/// Drops terminal control sequences (`ESC [ ... letter`) and carriage returns from text a
/// program wrote for a terminal (rotel colours its log even into a pipe; a pseudo-terminal
/// ends lines with CR LF).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}
pub mod wait;
