//! Shared helpers for the integration tests: finding (and building) the real binary, and the
//! skip-or-fail rule for tests that need root or a namespace.

pub mod daemon;
pub mod rotel;

pub mod prometheus;
pub mod promql;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub mod standin;
pub mod systemd_user;

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
    BIN.get_or_init(|| {
        let dir = target_profile_dir();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root()).args([
            "build",
            "--quiet",
            "-p",
            "hostwarden",
            "--bin",
            "hostwarden",
        ]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of hostwarden failed");
        let path = dir.join("hostwarden");
        assert!(path.exists(), "{} missing after build", path.display());
        path
    })
    .clone()
}

/// True under CI (`CI=true`), where a missing prerequisite is a failure, never a skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Skips the calling test (returns true) when `ok` is false, printing why; under CI it panics
/// instead, because CI must run everything.
pub fn skip_unless(ok: bool, reason: &str) -> bool {
    if ok {
        return false;
    }
    assert!(!under_ci(), "prerequisite missing under CI: {reason}");
    eprintln!("SKIPPED: {reason}");
    true
}

/// The shared/ folder beside the checkout (genuine captures and the ZFS VM recipe).
pub fn shared_dir() -> PathBuf {
    workspace_root().join("..").join("shared")
}
pub mod nvml_shim;
