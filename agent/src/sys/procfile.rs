//! One file below a proc root, read whole every tick with as few system calls as the kernel
//! allows (issue 20).
//!
//! A file on the proc filesystem is opened once and kept: each tick re-reads it with `pread` at
//! offset 0, which makes the kernel render it afresh (a seq_file restarts at offset 0), so a
//! tick costs two reads (the data, then the end of file) instead of open, statx, lseek, two
//! reads and close. A file anywhere else (a captured tree in tests, which replace files by
//! rename between ticks) is opened, read and closed every tick, since a kept descriptor would
//! go on reading the replaced file. A failed `pread` drops the descriptor and the file is
//! opened again in the same tick, so a kept file never costs a reading.
//!
//! Every read is bounded: a file holding more than its cap is refused, so a hostile tree (a
//! symlink to /dev/zero) cannot make a tick read forever.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What the scratch buffer starts at: every per-tick /proc file of a small host fits.
const FIRST_CHUNK: usize = 16 * 1024;

/// One file, kept open while it is on the proc filesystem.
#[derive(Debug)]
pub struct ProcFile {
    path: PathBuf,
    cap: u64,
    kept: Option<File>,
    /// The kernel renders the file as one record (`single_open`: /proc/stat, meminfo, loadavg,
    /// pressure), so a kept descriptor's read shorter than asked has returned all of it.
    one_record: bool,
}

impl ProcFile {
    /// `<root>/<rel>`, refused past `cap` bytes.
    pub fn new(root: &Path, rel: &str, cap: u64) -> Self {
        ProcFile {
            path: root.join(rel),
            cap,
            kept: None,
            one_record: false,
        }
    }

    /// `new` for a file the kernel renders whole in one record: a seq_file copies such a
    /// record out until the caller's buffer is full, so a short read is the end and the read
    /// that would return 0 is skipped (one system call of two per file per tick; issue 20).
    /// Not for a file of many records (vmstat, diskstats, net/dev): its reads stop short at
    /// the kernel's own buffer, a page, before the end.
    pub fn one_record(root: &Path, rel: &str, cap: u64) -> Self {
        ProcFile {
            one_record: true,
            ..ProcFile::new(root, rel, cap)
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a descriptor on the proc filesystem is kept (for `poll`).
    pub fn kept(&self) -> Option<&File> {
        self.kept.as_ref()
    }

    /// Reads the whole file into `buf` (a scratch area reused across ticks: its length is
    /// kept at its capacity, so no tick zeroes it) and returns it as text; `Ok(None)` when the
    /// file does not exist. Errors name the path, in the words `ProcReader` uses.
    pub fn read<'b>(&mut self, buf: &'b mut Vec<u8>) -> Result<Option<&'b str>, String> {
        let len = match self.read_bytes(buf)? {
            Some(len) => len,
            None => return Ok(None),
        };
        let bytes = buf.get(..len).unwrap_or_default();
        std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{} is not UTF-8", self.path.display()))
    }

    /// `read` for a caller that cannot hold the borrow (a loop over files): the length of the
    /// text now at the start of `buf`.
    pub fn read_len(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>, String> {
        Ok(self.read(buf)?.map(str::len))
    }

    fn read_bytes(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>, String> {
        if let Some(file) = &self.kept {
            match read_capped(buf, self.cap, self.one_record, |b, at| file.read_at(b, at)) {
                Ok(Some(len)) => return Ok(Some(len)),
                Ok(None) => return Err(self.over_cap()),
                // Gone (a process's file after it exited) or refused: open it again below.
                Err(_) => self.kept = None,
            }
        }
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.failed(&e)),
        };
        // A fresh descriptor is read in sequence: a file that refuses pread still reads.
        let len = read_capped(buf, self.cap, false, |b, _| file.read(b))
            .map_err(|e| self.failed(&e))?
            .ok_or_else(|| self.over_cap())?;
        if on_procfs(&file) {
            self.kept = Some(file);
        }
        Ok(Some(len))
    }

    fn failed(&self, e: &std::io::Error) -> String {
        format!(
            "failed to read {}: {}",
            self.path.display(),
            super::proc::io_reason(e)
        )
    }

    fn over_cap(&self) -> String {
        format!(
            "refused {}: over the {}-byte limit",
            self.path.display(),
            self.cap
        )
    }
}

/// Reads from offset 0 to the end into `buf` with `read(chunk, offset)`; the length read, or
/// `None` past `cap`. The end is a read of 0 bytes, or with `short_is_end` any read shorter
/// than its chunk. `buf`'s length is raised to its capacity once and left there.
fn read_capped(
    buf: &mut Vec<u8>,
    cap: u64,
    short_is_end: bool,
    mut read: impl FnMut(&mut [u8], u64) -> std::io::Result<usize>,
) -> std::io::Result<Option<usize>> {
    let limit = usize::try_from(cap.saturating_add(1)).unwrap_or(usize::MAX);
    if buf.len() < buf.capacity().max(FIRST_CHUNK) {
        buf.resize(buf.capacity().max(FIRST_CHUNK), 0);
    }
    let mut len = 0;
    loop {
        if len >= limit {
            return Ok(None);
        }
        if len == buf.len() {
            buf.resize(len.saturating_mul(2).min(limit), 0);
        }
        let end = buf.len().min(limit);
        let Some(chunk) = buf.get_mut(len..end) else {
            return Ok(None);
        };
        let asked = chunk.len();
        match read(chunk, len as u64) {
            Ok(0) => return Ok(Some(len)),
            Ok(n) if short_is_end && n < asked => return Ok(Some(len + n)),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether `file` lives on the proc filesystem, the only place where keeping it open reads
/// fresh data: fstatfs's f_type is PROC_SUPER_MAGIC.
fn on_procfs(file: &File) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the descriptor is open for the call, and `st` is writable memory of the right
    // type, filled completely when fstatfs returns 0.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: rc == 0, so the kernel filled the struct.
    let st = unsafe { st.assume_init() };
    st.f_type == libc::PROC_SUPER_MAGIC
}

#[cfg(test)]
#[path = "procfile_tests.rs"]
mod tests;
