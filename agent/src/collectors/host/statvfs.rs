//! statvfs under a deadline. A stat of a mount whose server is gone (hard-mounted NFS, a stuck
//! FUSE daemon) blocks in the kernel for as long as the server stays away, and no signal or
//! timeout ends it. So the calls run on worker threads and the tick waits for them until the
//! deadline only; a call still outstanding keeps its worker, the mount is reported stale, and it
//! is not stat'ed again until that call returns: one stuck thread per dead mount, never one per
//! tick.
//!
//! The workers are kept between ticks (starting a thread per mount per tick was the largest
//! per-tick cost of the host collector). One worker takes the tick's calls one after another,
//! which costs a single wake-up; if the queue stops moving for `STALL` (a worker is stuck in a
//! dead mount), another worker is woken or started for the rest, so a dead mount ahead in the
//! list never makes a live one behind it stale.

use std::collections::{HashMap, VecDeque};
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
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

type Answer = Result<FsStat, String>;
type Reply = oneshot::Receiver<Answer>;

/// The call that may hang: `statvfs`, or a stand-in in tests.
pub type StatFn = fn(&Path) -> Result<FsStat, String>;

/// How long the queue may stand still before another worker is sent to it. A live statvfs
/// takes microseconds; this only has to outlast a worker's wake-up on a busy host.
const STALL: Duration = Duration::from_millis(20);

/// Idle workers kept for the next tick; more than this (left from a tick that needed extra
/// workers) end.
const KEEP_IDLE: usize = 2;

/// The outstanding calls, by the path they stat. Kept across ticks; cancel-safe (a tick
/// dropped mid-wait leaves its calls here for the next tick to find). Paths are shared, not
/// copied: each call keeps its path here and in its job (two copies a mount a tick before;
/// issue 20).
#[derive(Debug)]
pub struct Statter {
    pending: HashMap<Arc<Path>, Reply>,
    pool: Pool,
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
            pool: Pool::new(stat),
        }
    }

    /// Calls still outstanding (queued, or on a worker).
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Worker threads alive (idle, busy or stuck).
    pub fn threads(&self) -> usize {
        self.pool.lock().threads
    }

    /// Stats every path on the workers, waiting at most `timeout` in total.
    #[cfg(test)]
    pub async fn stat_all(&mut self, paths: &[Arc<Path>], timeout: Duration) -> Vec<StatOutcome> {
        let issued = self.submit(paths, &[], timeout);
        self.gather(paths, issued).await
    }

    /// Sends the calls for `paths` to the workers and returns at once; `gather` waits for the
    /// answers, at most `timeout` from now. What the caller does in between (reading /proc)
    /// overlaps the workers' calls, so the tick usually finds the answers there instead of
    /// sleeping until a worker wakes it (issue 20: one wake-up of the tick thread per tick).
    /// A path whose `inline` flag is set (inline_stat.rs: a statfs that cannot wait) is stat'ed
    /// here and now instead; a missing flag means a worker.
    pub fn submit(&mut self, paths: &[Arc<Path>], inline: &[bool], timeout: Duration) -> Issued {
        let mut out = vec![StatOutcome::Stale; paths.len()];
        let mut issued = Vec::with_capacity(paths.len());
        let mut jobs = Vec::with_capacity(paths.len());
        for (i, path) in paths.iter().enumerate() {
            if inline.get(i).copied().unwrap_or(false) && !self.pending.contains_key(&**path) {
                out[i] = match (self.pool.stat)(path) {
                    Ok(stat) => StatOutcome::Done(stat),
                    Err(e) => StatOutcome::Failed(e),
                };
                continue;
            }
            if let Some(rx) = self.pending.get_mut(&**path) {
                match rx.try_recv() {
                    // Still stuck: stale, and no second call.
                    Err(TryRecvError::Empty) => continue,
                    // Answered after its deadline: that answer is old; ask again.
                    Ok(_) | Err(TryRecvError::Closed) => {
                        self.pending.remove(&**path);
                    }
                }
            }
            let (tx, rx) = oneshot::channel();
            self.pending.insert(Arc::clone(path), rx);
            jobs.push(Job {
                path: Arc::clone(path),
                reply: tx,
            });
            issued.push(i);
        }
        if let Err(e) = self.pool.submit(jobs) {
            for &i in &issued {
                self.pending.remove(&*paths[i]);
                out[i] = StatOutcome::Failed(format!("statvfs {}: {e}", paths[i].display()));
            }
            issued.clear();
        }
        Issued {
            out,
            issued,
            deadline: Instant::now() + timeout,
        }
    }

    /// The answers to `submit`'s calls (`paths` as given to it), each stale that is not in by
    /// the deadline.
    pub async fn gather(&mut self, paths: &[Arc<Path>], calls: Issued) -> Vec<StatOutcome> {
        let Issued {
            mut out,
            issued,
            deadline,
        } = calls;
        for &i in &issued {
            let Some(rx) = self.pending.get_mut(&*paths[i]) else {
                continue;
            };
            let reply = loop {
                let wake = deadline.min(Instant::now() + STALL);
                match tokio::time::timeout_at(wake, &mut *rx).await {
                    Ok(reply) => break Some(reply),
                    Err(_) if Instant::now() >= deadline => break None,
                    // The queue has not moved: its worker may be stuck in a dead mount.
                    Err(_) => {
                        if let Err(e) = self.pool.help() {
                            tracing::debug!(error = %e, "statvfs: no extra worker");
                        }
                    }
                }
            };
            if let Some(reply) = reply {
                self.pending.remove(&*paths[i]);
                out[i] = match reply {
                    Ok(Ok(stat)) => StatOutcome::Done(stat),
                    Ok(Err(e)) => StatOutcome::Failed(e),
                    Err(_) => StatOutcome::Failed(format!(
                        "statvfs {}: worker ended without an answer",
                        paths[i].display()
                    )),
                };
            }
        }
        // Calls never started by the deadline (every worker stuck) are dropped: stale this tick,
        // and asked again next tick, since nothing hangs on them.
        self.pool.lock().jobs.clear();
        // Mounts gone from the list whose calls have returned free their entries; calls still
        // stuck stay, so a mount that comes back is not stat'ed twice.
        self.pending
            .retain(|_, rx| matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        out
    }
}

/// The calls of one tick, between `submit` and `gather`.
#[derive(Debug)]
pub struct Issued {
    /// Stale until answered; failed already when no worker could take the calls.
    out: Vec<StatOutcome>,
    /// The indices (into the paths) of the calls sent.
    issued: Vec<usize>,
    deadline: Instant,
}

struct Job {
    path: Arc<Path>,
    reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Workers waiting for a job.
    idle: usize,
    /// Workers alive.
    threads: usize,
    /// The statter is gone: workers end once idle.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// The worker threads and their queue.
struct Pool {
    shared: Arc<Shared>,
    stat: StatFn,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.lock();
        f.debug_struct("Pool")
            .field("queued", &q.jobs.len())
            .field("idle", &q.idle)
            .field("threads", &q.threads)
            .finish()
    }
}

impl Pool {
    fn new(stat: StatFn) -> Self {
        Pool {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                ready: Condvar::new(),
            }),
            stat,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        lock(&self.shared.queue)
    }

    /// Queues the calls and wakes (or starts) one worker for them.
    fn submit(&self, jobs: Vec<Job>) -> Result<(), String> {
        if jobs.is_empty() {
            return Ok(());
        }
        self.lock().jobs.extend(jobs);
        self.help()
    }

    /// One more worker on the queue, if anything is queued: an idle one, else a new thread.
    fn help(&self) -> Result<(), String> {
        let mut q = self.lock();
        if q.jobs.is_empty() {
            return Ok(());
        }
        if q.idle > 0 {
            drop(q);
            self.shared.ready.notify_one();
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let stat = self.stat;
        std::thread::Builder::new()
            .name("hw-statvfs".to_owned())
            // statvfs needs a few hundred bytes of stack; the default 2 MiB is address space
            // only, but a small stack keeps a pile of stuck threads cheap.
            .stack_size(64 * 1024)
            .spawn(move || work(&shared, stat))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        q.threads += 1;
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let mut q = self.lock();
        q.closed = true;
        q.jobs.clear();
        drop(q);
        self.shared.ready.notify_all();
    }
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // The queue holds no invariant a panicking holder could break halfway.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A worker: takes calls from the queue until the statter is gone or enough others are idle.
fn work(shared: &Shared, stat: StatFn) {
    let mut q = lock(&shared.queue);
    loop {
        if let Some(job) = q.jobs.pop_front() {
            drop(q);
            // The receiver may be gone (the mount left the list): nothing to tell.
            job.reply.send(stat(&job.path)).ok();
            q = lock(&shared.queue);
            continue;
        }
        if q.closed || q.idle >= KEEP_IDLE {
            q.threads -= 1;
            return;
        }
        q.idle += 1;
        q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
        q.idle -= 1;
    }
}
/// Paths shorter than this are NUL-terminated on the worker's stack, longer ones on the heap:
/// a mount point is seldom long, and the copy was an allocation a mount a tick (issue 20).
const STACK_PATH: usize = 256;

/// One statvfs(3) call.
pub fn statvfs(path: &Path) -> Result<FsStat, String> {
    let bytes = path.as_os_str().as_bytes();
    let nul = || format!("statvfs {}: path holds a NUL byte", path.display());
    let mut stack = [0u8; STACK_PATH];
    let heap: CString;
    let c: &CStr = if bytes.len() < STACK_PATH {
        stack[..bytes.len()].copy_from_slice(bytes);
        CStr::from_bytes_with_nul(&stack[..=bytes.len()]).map_err(|_| nul())?
    } else {
        heap = CString::new(bytes).map_err(|_| nul())?;
        &heap
    };
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

#[cfg(test)]
#[path = "statvfs_tests.rs"]
mod tests;
