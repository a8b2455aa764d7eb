//! Installing what the suite needs: one script per group of tests in tests/ci/install-*.sh
//! (apt packages, rotel from PyPI, cargo tools), each idempotent, run in name order after one
//! `apt-get update` (a fresh machine's package lists are stale or empty).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace::{root, run};

/// Runs every install script, as root (through sudo when we are not root).
pub fn install() -> anyhow::Result<()> {
    let scripts = install_scripts()?;
    // Wall time for the operator's log; no tokio runtime here, and no test controls this clock.
    #[allow(clippy::disallowed_types)]
    let started = std::time::Instant::now();
    eprintln!("xtask: apt-get update");
    run(as_root("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=600", "update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    for script in scripts {
        eprintln!("xtask: {}", script.display());
        run(as_root("bash")
            .arg(&script)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    eprintln!(
        "xtask: prerequisites installed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// tests/ci/install-*.sh in name order.
fn install_scripts() -> anyhow::Result<Vec<PathBuf>> {
    let dir = root().join("tests").join("ci");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("install-") && n.ends_with(".sh"))
        })
        .collect();
    scripts.sort();
    if scripts.is_empty() {
        bail!("no install scripts in {}", dir.display());
    }
    Ok(scripts)
}

/// `program` as root: directly when we are root, else through `sudo`, keeping PATH (cargo and
/// rustup live in the user's home) and the cargo variables so cargo tools land where the
/// user's cargo finds them.
fn as_root(program: &str) -> Command {
    if is_root() {
        return Command::new(program);
    }
    let mut cmd = Command::new("sudo");
    cmd.arg("--preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME,DEBIAN_FRONTEND")
        .arg(program);
    cmd
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
