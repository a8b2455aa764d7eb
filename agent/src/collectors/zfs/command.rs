//! One-shot `zpool` calls, each under a deadline. A hung `zpool` (a pool suspended on a dead
//! disk, a stuck txg) is a known ZFS failure mode: when its deadline passes the child's whole
//! process group is killed and reaped, and the error says so, so the collector reports instead
//! of hanging.
//!
//! Every child starts its own process group (`process_group(0)`): `zpool` may be a wrapper
//! script whose own children (or a grandchild holding the pipe open) would outlive a kill of
//! the direct child alone and pile up, one set per tick. [`Group`] kills the group on every
//! path out, including a normal exit, which sweeps background stragglers too.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// Why a `zpool` call gave no usable output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZpoolError {
    #[error("zpool not found (is ZFS installed?): no program {program:?}")]
    NotFound { program: PathBuf },
    /// libzfs could not open /dev/zfs: the kernel module is not loaded.
    #[error("ZFS kernel module not loaded: {message}")]
    NoModule { message: String },
    #[error(
        "`{command}` did not answer within {}; killed its process group{} (a hung zpool is a known ZFS failure mode)",
        humantime::format_duration(*.timeout),
        if *.reaped { "" } else { ", but it has not exited yet" }
    )]
    Timeout {
        command: String,
        timeout: Duration,
        /// Whether the direct child was seen to exit after the kill.
        reaped: bool,
    },
    #[error("`{command}` exited with status {code}: {message}")]
    Failed {
        command: String,
        code: i32,
        message: String,
    },
    #[error("cannot run `{command}`: {message}")]
    Spawn { command: String, message: String },
    #[error(
        "`{command}` printed more than {} MiB; killed its process group (no genuine zpool answer is that large)",
        MAX_OUTPUT / (1024 * 1024)
    )]
    TooLarge { command: String },
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
/// decimal point), no stdin, its own process group, kill on drop.
pub fn command(program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// The process group of a child started by [`command`]; dropping it sends SIGKILL to the whole
/// group. The group id is the child's pid, which the kernel does not hand out again while any
/// member of the group lives, so the kill cannot reach an unrelated process group.
#[derive(Debug)]
pub struct Group {
    pgid: Option<i32>,
}

impl Group {
    /// The group led by `child` (none if it has already been reaped).
    pub fn of(child: &Child) -> Group {
        Group {
            pgid: child.id().and_then(|pid| i32::try_from(pid).ok()),
        }
    }

    /// Sends SIGKILL to every process in the group.
    pub fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: kill(2) with a negative pid signals the process group we created; ESRCH
            // (the group is already empty) is the expected outcome after a clean exit.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills `child`'s group and waits up to `grace` for the child itself to be reaped; returns
/// whether it was (tokio reaps it later in the background otherwise).
pub async fn kill_and_reap(child: &mut Child, group: &Group, grace: Duration) -> bool {
    group.kill();
    matches!(tokio::time::timeout(grace, child.wait()).await, Ok(Ok(_)))
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
    let mut child = command(program, args)
        .spawn()
        .map_err(|e| spawn_error(program, args, &e))?;
    // Dropped on every path out: a normal exit sweeps background stragglers of the group too.
    let group = Group::of(&child);
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ZpoolError::Spawn {
            command: display(program, args),
            message: "started without pipes".to_owned(),
        });
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let finished = tokio::time::timeout(timeout, async {
        // Both pipes are read to their end (a grandchild holding one open keeps us here until
        // the deadline), each at most MAX_OUTPUT + 1 bytes, then the child is reaped.
        tokio::try_join!(
            read_capped(&mut stdout, &mut out),
            read_capped(&mut stderr, &mut err)
        )?;
        child.wait().await
    })
    .await;
    if out.len() > MAX_OUTPUT || err.len() > MAX_OUTPUT {
        kill_and_reap(&mut child, &group, REAP_GRACE).await;
        return Err(ZpoolError::TooLarge {
            command: display(program, args),
        });
    }
    match finished {
        Err(_) => {
            let reaped = kill_and_reap(&mut child, &group, REAP_GRACE).await;
            Err(ZpoolError::Timeout {
                command: display(program, args),
                timeout,
                reaped,
            })
        }
        Ok(Err(e)) => Err(ZpoolError::Spawn {
            command: display(program, args),
            message: e.to_string(),
        }),
        Ok(Ok(status)) => Ok(Output {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        }),
    }
}

/// Most bytes read from one pipe of a one-shot call. The largest genuine answer, `zpool status
/// -j` of a pool with thousands of vdevs, is a few MiB; 16 MiB bounds memory per call while
/// leaving room for the biggest real pools.
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// Reads `pipe` to its end or to one byte past `MAX_OUTPUT`, which ends the read with an error
/// (so `try_join!` stops reading the other pipe too).
async fn read_capped(
    pipe: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    pipe.take(MAX_OUTPUT as u64 + 1).read_to_end(buf).await?;
    if buf.len() > MAX_OUTPUT {
        return Err(std::io::Error::other("output over the cap"));
    }
    Ok(())
}

/// How long a killed child gets to be reaped before the caller moves on (SIGKILL is not
/// ignorable, so only a process in uninterruptible sleep, e.g. on a suspended pool, takes longer).
pub const REAP_GRACE: Duration = Duration::from_millis(500);

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

#[cfg(test)]
mod tests;
