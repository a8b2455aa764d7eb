//! statvfs under a deadline. A stat of a mount whose server is gone (hard-mounted NFS, a stuck
//! FUSE daemon) blocks in the kernel for as long as the server stays away, and no signal or
//! timeout ends it. So each call runs on a thread of its own and the tick waits for it until
//! the deadline only; a call still outstanding keeps its thread, the mount is reported stale,
//! and it is not stat'ed again until that call returns: one stuck thread per dead mount, never
//! one per tick.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;
use tokio::time::Instant;

/// The statvfs fields hostwarden reports. Block counts are in units of `frsize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStat {
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
}

/// What one mount's stat gave this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatOutcome {
    Done(FsStat),
    Failed(String),
    /// Still outstanding past the deadline (this tick's, or an earlier one's).
    Stale,
}

type Reply = oneshot::Receiver<Result<FsStat, String>>;

/// The call that may hang: `statvfs`, or a stand-in in tests.
pub type StatFn = fn(&Path) -> Result<FsStat, String>;

/// The outstanding calls, by the path they stat. Kept across ticks; cancel-safe (a tick
/// dropped mid-wait leaves its calls here for the next tick to find).
#[derive(Debug)]
pub struct Statter {
    pending: HashMap<PathBuf, Reply>,
    stat: StatFn,
}

impl Default for Statter {
    fn default() -> Self {
        Statter::with_stat(statvfs)
    }
}

impl Statter {
    pub fn with_stat(stat: StatFn) -> Self {
        Statter {
            pending: HashMap::new(),
            stat,
        }
    }

    /// Calls still outstanding (one thread each).
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Stats every path, all at once, waiting at most `timeout` in total.
    pub async fn stat_all(&mut self, paths: &[PathBuf], timeout: Duration) -> Vec<StatOutcome> {
        let mut out = vec![StatOutcome::Stale; paths.len()];
        let mut issued = Vec::with_capacity(paths.len());
        for (i, path) in paths.iter().enumerate() {
            if let Some(rx) = self.pending.get_mut(path) {
                match rx.try_recv() {
                    // Still stuck: stale, and no second call.
                    Err(TryRecvError::Empty) => continue,
                    // Answered after its deadline: that answer is old; ask again.
                    Ok(_) | Err(TryRecvError::Closed) => {
                        self.pending.remove(path);
                    }
                }
            }
            match spawn_stat(self.stat, path) {
                Ok(rx) => {
                    self.pending.insert(path.clone(), rx);
                    issued.push(i);
                }
                Err(e) => out[i] = StatOutcome::Failed(e),
            }
        }
        let deadline = Instant::now() + timeout;
        for i in issued {
            let Some(rx) = self.pending.get_mut(&paths[i]) else {
                continue;
            };
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(reply) => {
                    self.pending.remove(&paths[i]);
                    out[i] = match reply {
                        Ok(Ok(stat)) => StatOutcome::Done(stat),
                        Ok(Err(e)) => StatOutcome::Failed(e),
                        Err(_) => StatOutcome::Failed(format!(
                            "statvfs {}: worker thread ended without an answer",
                            paths[i].display()
                        )),
                    };
                }
                Err(_elapsed) => {}
            }
        }
        // Mounts gone from the list whose calls have returned free their entries; calls still
        // stuck stay, so a mount that comes back is not stat'ed twice.
        self.pending
            .retain(|_, rx| matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        out
    }
}

fn spawn_stat(stat: StatFn, path: &Path) -> Result<Reply, String> {
    let (tx, rx) = oneshot::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("hw-statvfs".to_owned())
        // statvfs needs a few hundred bytes of stack; the default 2 MiB is address space only,
        // but a small stack keeps a pile of stuck threads cheap.
        .stack_size(64 * 1024)
        .spawn(move || {
            // The receiver may be gone (the mount left the list): nothing to tell.
            tx.send(stat(&owned)).ok();
        })
        .map_err(|e| format!("statvfs {}: cannot start a thread: {e}", path.display()))?;
    Ok(rx)
}

/// One statvfs(3) call.
pub fn statvfs(path: &Path) -> Result<FsStat, String> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("statvfs {}: path holds a NUL byte", path.display()))?;
    let mut buf = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `buf` is writable memory of the right type,
    // which statvfs fills completely when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("statvfs {}: {e}", path.display()));
    }
    // SAFETY: rc == 0, so the kernel filled the struct.
    let s = unsafe { buf.assume_init() };
    #[allow(clippy::useless_conversion)] // fsblkcnt_t is u64 on some targets, u32 on others.
    Ok(FsStat {
        frsize: u64::from(s.f_frsize),
        blocks: u64::from(s.f_blocks),
        bfree: u64::from(s.f_bfree),
        bavail: u64::from(s.f_bavail),
        files: u64::from(s.f_files),
        ffree: u64::from(s.f_ffree),
    })
}
