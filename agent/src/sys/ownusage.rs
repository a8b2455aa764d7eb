//! The agent's own CPU time and resident memory, read every tick for the self-metrics with one
//! system call each (issue 20).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::proc::ProcessUsage;

/// `<root>/self/statm`, kept open between ticks: a pread at offset 0 renders it afresh, where
/// open, read and close cost three calls and a path every tick.
#[derive(Debug)]
pub struct OwnUsage {
    path: PathBuf,
    statm: Option<File>,
}

impl OwnUsage {
    /// The agent's own process lives in the proc filesystem of its own PID namespace, which is
    /// `/proc` even when `proc_root` points at a host's tree.
    pub fn new() -> Self {
        OwnUsage::under(Path::new("/proc"))
    }

    pub fn under(root: &Path) -> Self {
        OwnUsage {
            path: root.join("self/statm"),
            statm: None,
        }
    }

    /// getrusage(2) for the CPU time (the same user + system time as `stat`, every thread,
    /// exited ones included, in microseconds rather than clock ticks) and `statm` for the
    /// resident pages (VmRSS of `status`), instead of parsing the two longest files of
    /// /proc/self; `None` when either cannot be read.
    pub fn read(&mut self) -> Option<ProcessUsage> {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: `ru` is writable memory of the right type, filled completely on success.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: rc == 0, so the kernel filled the struct.
        let ru = unsafe { ru.assume_init() };
        let seconds = |t: libc::timeval| {
            // Seconds of CPU time stay far below 2^53.
            #[allow(clippy::cast_precision_loss)]
            let s = t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            s
        };
        // statm is seven numbers on one line: one read of a small buffer takes it whole.
        let mut buf = [0u8; 128];
        let n = self.read_statm(&mut buf)?;
        let resident: u64 = std::str::from_utf8(buf.get(..n)?)
            .ok()?
            .split_ascii_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let rss_bytes = resident * procfs::page_size();
        // A process without resident pages is a kernel thread; the agent always has some.
        (rss_bytes > 0).then_some(ProcessUsage {
            rss_bytes,
            cpu_seconds: seconds(ru.ru_utime) + seconds(ru.ru_stime),
        })
    }

    /// The kept descriptor first; opened (again) when there is none or it fails.
    fn read_statm(&mut self, buf: &mut [u8]) -> Option<usize> {
        if let Some(f) = &self.statm {
            match f.read_at(buf, 0) {
                Ok(n) => return Some(n),
                Err(_) => self.statm = None,
            }
        }
        let f = File::open(&self.path).ok()?;
        let n = f.read_at(buf, 0).ok()?;
        self.statm = Some(f);
        Some(n)
    }
}

impl Default for OwnUsage {
    fn default() -> Self {
        OwnUsage::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_agents_own_usage_tick_after_tick() {
        let mut own = OwnUsage::new();
        let first = own.read().expect("/proc/self is readable in tests");
        assert!(first.rss_bytes > 0 && first.cpu_seconds >= 0.0);
        assert!(own.statm.is_some(), "statm is kept open");
        // Memory touched after the first read shows in the second, through the kept descriptor.
        let block = std::hint::black_box(vec![1u8; 32 << 20]);
        let second = own.read().expect("still readable");
        assert!(
            second.rss_bytes >= first.rss_bytes + (16 << 20),
            "{first:?} then {second:?}"
        );
        assert!(second.cpu_seconds >= first.cpu_seconds);
        drop(block);
    }

    #[test]
    fn a_missing_root_reads_nothing() {
        assert_eq!(OwnUsage::under(Path::new("/nonexistent/proc")).read(), None);
    }
}
