//! The release packages: the binary we ship, its man pages and completions, a .deb built by
//! cargo-deb and an .rpm built by cargo-generate-rpm from agent/Cargo.toml's metadata.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::workspace::{assets_dir, cargo, run, target_dir};

/// The cargo profile the packaged binary is built with.
const PROFILE: &str = "dist";

pub struct Packages {
    pub deb: PathBuf,
    pub rpm: PathBuf,
}

pub fn build() -> anyhow::Result<Packages> {
    // The `dist` profile (fat LTO, one codegen unit, opt-level "s"; the workspace Cargo.toml
    // says why): what ships is the smallest binary, and CI's other release builds stay fast.
    run(cargo().args([
        "build",
        "--profile",
        PROFILE,
        "--locked",
        "-p",
        "hostwarden",
        "--bin",
        "hostwarden",
    ]))?;
    let assets = assets_dir();
    if assets.exists() {
        std::fs::remove_dir_all(&assets)
            .with_context(|| format!("cannot clear {}", assets.display()))?;
    }
    crate::assets::write_all(&assets)?;

    // --no-build: the binary above is the one packaged (cargo-deb would rebuild otherwise).
    let out = cargo()
        .args([
            "deb",
            "--no-build",
            "--locked",
            "--profile",
            PROFILE,
            "-p",
            "hostwarden",
        ])
        .output()
        .context("cannot start cargo deb (cargo xtask install-deps installs cargo-deb)")?;
    if !out.status.success() {
        bail!(
            "cargo deb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let deb = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| p.is_file())
        .context("cargo deb printed no package path")?;

    // -p takes the member directory (agent/), not the crate name. Both packagers read the
    // binary's `target/release/` asset path from `--profile`'s directory instead.
    run(cargo().args(["generate-rpm", "-p", "agent", "--profile", PROFILE]))?;
    let rpm = newest_rpm()?;
    Ok(Packages { deb, rpm })
}

fn newest_rpm() -> anyhow::Result<PathBuf> {
    let dir = target_dir().join("generate-rpm");
    std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("hostwarden-") && n.ends_with(".rpm"))
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .with_context(|| format!("cargo generate-rpm left no package in {}", dir.display()))
}
