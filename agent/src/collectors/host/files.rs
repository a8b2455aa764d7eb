//! The files the host collector reads each tick, each kept open on the proc filesystem
//! (`sys::procfile`), the mount table watched for changes (mounttable.rs), and the ARC's kstat
//! probed at a slow cadence while it is absent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::mounttable::MountTable;
use super::{arc, disk, network};
use crate::sys::procfile::ProcFile;

/// The seven small files of every tick are a few KiB; the cap only stops an endless read (a
/// captured tree's file replaced by a symlink to /dev/zero). /proc/stat is the longest: ~80
/// bytes a CPU plus one count per interrupt, ~1 MiB on the largest hosts.
pub const CORE_CAP: u64 = 16 << 20;

/// How often an absent ARC kstat is looked for again. The ZFS module is loaded at boot or by
/// an operator installing ZFS, a rare event; probing for it every tick was one failed open per
/// tick on every host without ZFS. A module loaded later is still found within this.
pub const ARC_REPROBE: Duration = Duration::from_secs(60);

/// One file below the proc root, per tick.
#[derive(Debug)]
pub struct HostFiles {
    root: PathBuf,
    pub stat: ProcFile,
    pub meminfo: ProcFile,
    pub loadavg: ProcFile,
    pub vmstat: ProcFile,
    /// cpu, memory, io, in `PSI`'s order.
    pub pressure: [ProcFile; 3],
    pub diskstats: ProcFile,
    pub net_dev: ProcFile,
    pub mounts: MountTable,
    pub arcstats: ProcFile,
    /// When the absent ARC kstat is looked for next; `None` while it is present.
    arc_next_probe: Option<Instant>,
}

impl HostFiles {
    pub fn new(root: &Path) -> Self {
        let whole = |rel| ProcFile::one_record(root, rel, CORE_CAP);
        HostFiles {
            root: root.to_owned(),
            stat: whole("stat"),
            meminfo: whole("meminfo"),
            loadavg: whole("loadavg"),
            vmstat: ProcFile::new(root, "vmstat", CORE_CAP),
            pressure: super::PSI.map(|(rel, _, _)| whole(rel)),
            diskstats: ProcFile::new(root, disk::DISKSTATS, disk::DISKSTATS_CAP),
            net_dev: ProcFile::new(root, network::NET_DEV, network::NET_DEV_CAP),
            mounts: MountTable::new(root),
            arcstats: ProcFile::new(root, arc::ARCSTATS, arc::ARCSTATS_CAP),
            arc_next_probe: None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ARC's kstat: read every tick while it is present, looked for once every
    /// `ARC_REPROBE` while it is absent (`Ok(None)` then, as when it does not exist).
    pub fn arcstats<'b>(&mut self, buf: &'b mut Vec<u8>) -> Result<Option<&'b str>, String> {
        let now = Instant::now();
        if self.arc_next_probe.is_some_and(|t| now < t) {
            return Ok(None);
        }
        let read = self.arcstats.read(buf);
        self.arc_next_probe = matches!(read, Ok(None)).then(|| now + ARC_REPROBE);
        read
    }
}

/// A file every kernel has: absent is an error, in `ProcReader`'s words.
pub fn read_core<'b>(file: &mut ProcFile, buf: &'b mut Vec<u8>) -> Result<&'b str, String> {
    match file.read(buf)? {
        Some(text) => Ok(text),
        None => Err(format!(
            "failed to read {}: not found",
            file.path().display()
        )),
    }
}
