//! The mount table, read again only when it changed. mountinfo is the longest file the host
//! collector reads (~150 bytes a mount) and the mount table rarely changes, so its descriptor
//! is kept (on the proc filesystem only, see `sys::procfile`) and polled each tick with no
//! wait: the kernel flags a mountinfo descriptor with POLLPRI|POLLERR once the mount table of
//! its namespace changed since the last poll (proc(5), /proc/pid/mountinfo), remounts (a
//! filesystem turning read-only) included. The first read always happens, and a file off the
//! proc filesystem (a captured tree) is read every tick, as it cannot be polled.

use std::os::fd::AsRawFd;
use std::path::Path;

use super::filesystem::{MOUNTINFO, MOUNTINFO_CAP};
use crate::sys::procfile::ProcFile;

/// What this tick's look at the mount table gave.
#[derive(Debug, PartialEq, Eq)]
pub enum MountRead<'b> {
    /// The table read last is still current.
    Unchanged,
    /// The table, read now.
    Text(&'b str),
    /// Neither file could be read: why, for each.
    Unreadable(String),
}

/// PID 1's mount table, or ours when PID 1's cannot be read (filesystem.rs, `MOUNTINFO`).
#[derive(Debug)]
pub struct MountTable {
    files: [ProcFile; 2],
    /// Which of `files` gave the table read last; `None` before the first read and after a
    /// failed one.
    current: Option<usize>,
}

impl MountTable {
    pub fn new(proc_root: &Path) -> Self {
        MountTable {
            files: MOUNTINFO.map(|rel| ProcFile::new(proc_root, rel, MOUNTINFO_CAP)),
            current: None,
        }
    }

    /// Makes the next `read` read the table whatever the kernel says (a new filter or root).
    pub fn forget(&mut self) {
        self.current = None;
    }

    /// The table when it changed (or cannot be watched), `Unchanged` otherwise.
    pub fn read<'b>(&mut self, buf: &'b mut Vec<u8>) -> MountRead<'b> {
        if let Some(i) = self.current
            && let Some(file) = self.files.get(i).and_then(ProcFile::kept)
            && !changed(file)
        {
            return MountRead::Unchanged;
        }
        self.current = None;
        let mut missing = Vec::new();
        let mut len = None;
        for (i, file) in self.files.iter_mut().enumerate() {
            match file.read_len(buf) {
                Ok(Some(n)) => {
                    self.current = Some(i);
                    len = Some(n);
                    break;
                }
                Ok(None) => missing.push(format!("{} does not exist", file.path().display())),
                Err(e) => missing.push(e),
            }
        }
        // `read_len` checked that these bytes are UTF-8.
        match len.and_then(|n| std::str::from_utf8(buf.get(..n)?).ok()) {
            Some(text) => MountRead::Text(text),
            None => MountRead::Unreadable(missing.join("; ")),
        }
    }
}

/// Whether the kernel flagged the table as changed since the last poll of `file`. A poll that
/// fails says nothing: count it as a change, so the table is read.
fn changed(file: &std::fs::File) -> bool {
    let mut fd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a timeout of 0: poll only reads and writes `fd`.
    let rc = unsafe { libc::poll(&raw mut fd, 1, 0) };
    rc != 0 && (rc < 0 || fd.revents & (libc::POLLPRI | libc::POLLERR) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_table_is_not_flagged() {
        let mut table = MountTable::new(Path::new("/proc"));
        let mut buf = Vec::new();
        assert!(matches!(table.read(&mut buf), MountRead::Text(t) if t.contains(" - ")));
        // Other work on this host may mount something meanwhile (rightly flagged, and read
        // again), so one flag in five is tolerated; a descriptor always flagged is not.
        let mut unchanged = 0;
        for _ in 0..5 {
            if table.read(&mut buf) == MountRead::Unchanged {
                unchanged += 1;
            }
        }
        assert!(unchanged >= 4, "{unchanged} of 5 reads saw no change");
    }

    #[test]
    fn a_captured_table_is_read_every_time_and_a_missing_one_says_where() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("self")).unwrap();
        let line = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n";
        std::fs::write(dir.path().join("self/mountinfo"), line).unwrap();
        let mut table = MountTable::new(dir.path());
        let mut buf = Vec::new();
        assert_eq!(table.read(&mut buf), MountRead::Text(line));
        assert_eq!(table.read(&mut buf), MountRead::Text(line));
        std::fs::remove_file(dir.path().join("self/mountinfo")).unwrap();
        let MountRead::Unreadable(why) = table.read(&mut buf) else {
            panic!("no table");
        };
        let root = dir.path().display();
        assert_eq!(
            why,
            format!("{root}/1/mountinfo does not exist; {root}/self/mountinfo does not exist")
        );
    }
}
