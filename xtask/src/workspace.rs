//! Where things are, and running cargo itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The environment variable under which the test harness turns a missing prerequisite from
/// `ignored` into a failure (tests/src/harness.rs reads it).
pub const REQUIRE_ALL: &str = "HOSTWARDEN_REQUIRE_ALL";

/// The workspace root: the parent of this crate.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The cargo that runs us (`cargo xtask` sets `CARGO`), so a pinned toolchain stays pinned.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// The target directory cargo builds into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Generated man pages and completions. agent/Cargo.toml's package metadata names them
/// relative to the checkout (`../target/assets`), whatever the target directory.
pub fn assets_dir() -> PathBuf {
    root().join("target").join("assets")
}

/// Runs `cmd`, failing with its rendering when it does not exit 0.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// The whole suite, nothing ignored.
pub fn test(args: &[String]) -> anyhow::Result<()> {
    run(cargo()
        .args(["test", "--workspace"])
        .args(args)
        .env(REQUIRE_ALL, "1"))
}
