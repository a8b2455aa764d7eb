//! One-shot `zpool` calls, each under a deadline. A hung `zpool` (a pool suspended on a dead
//! disk, a stuck txg) is a known ZFS failure mode: the child is killed when its deadline passes
//! (`kill_on_drop`), and the error says so, so the collector reports instead of hanging.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Why a `zpool` call gave no usable output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZpoolError {
    #[error("zpool not found (is ZFS installed?): no program {program:?}")]
    NotFound { program: PathBuf },
    /// libzfs could not open /dev/zfs: the kernel module is not loaded.
    #[error("ZFS kernel module not loaded: {message}")]
    NoModule { message: String },
    #[error(
        "`{command}` did not answer within {}; killed it (a hung zpool is a known ZFS failure mode)",
        humantime::format_duration(*.timeout)
    )]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` exited with status {code}: {message}")]
    Failed {
        command: String,
        code: i32,
        message: String,
    },
    #[error("cannot run `{command}`: {message}")]
    Spawn { command: String, message: String },
}

/// Output of a call that ran to completion (any exit status).
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Builds the command line for messages: `zpool list -Hp ...`.
pub fn display(program: &Path, args: &[&str]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// A `zpool` command with the environment every call uses: C locale (English messages, `.` as
/// decimal point), no stdin, kill on drop.
pub fn command(program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Maps a spawn failure: a missing program is the common "ZFS not installed" case.
pub fn spawn_error(program: &Path, args: &[&str], e: &std::io::Error) -> ZpoolError {
    if e.kind() == ErrorKind::NotFound {
        ZpoolError::NotFound {
            program: program.to_path_buf(),
        }
    } else {
        ZpoolError::Spawn {
            command: display(program, args),
            message: e.to_string(),
        }
    }
}

/// Runs `program args` under `timeout`; a non-zero exit is returned as `Ok` so the caller can
/// tell "option not supported" (exit 2) from a real failure.
pub async fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Output, ZpoolError> {
    let child = command(program, args)
        .spawn()
        .map_err(|e| spawn_error(program, args, &e))?;
    // Dropping the future on timeout drops the child, and kill_on_drop kills it.
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(ZpoolError::Timeout {
            command: display(program, args),
            timeout,
        }),
        Ok(Err(e)) => Err(ZpoolError::Spawn {
            command: display(program, args),
            message: e.to_string(),
        }),
        Ok(Ok(out)) => Ok(Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}

/// The stderr text of a failed call on one line (zpool's messages span two or three lines).
pub fn one_line(stderr: &str) -> String {
    let joined = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    if joined.is_empty() {
        "no message on stderr".to_owned()
    } else {
        joined
    }
}

/// Turns a non-zero exit into an error, recognising libzfs' "modules are not loaded".
pub fn check(program: &Path, args: &[&str], out: Output) -> Result<String, ZpoolError> {
    if out.code == 0 {
        return Ok(out.stdout);
    }
    let message = one_line(&out.stderr);
    // Other libzfs init failures (e.g. "Permission to access /dev/zfs denied") stay `Failed`
    // with zpool's own words, which name the fix.
    if message.contains("modules are not loaded") {
        return Err(ZpoolError::NoModule { message });
    }
    Err(ZpoolError::Failed {
        command: display(program, args),
        code: out.code,
        message,
    })
}

/// Runs and checks in one step.
pub async fn run_checked(
    program: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<String, ZpoolError> {
    let out = run(program, args, timeout).await?;
    check(program, args, out)
}
