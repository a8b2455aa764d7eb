//! Mounted filesystems from `<proc_root>/1/mountinfo` (proc(5); `self/mountinfo` as a fallback), measured by statvfs below
//! `[host] root_fs`. Pseudo filesystems and runtime-private mount points are left out by
//! node_exporter's default filters; ZFS datasets are mounts like any other.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex_lite::Regex;

use super::config::{FilesystemConfig, compile};
use super::inline_stat;
use super::statvfs::{FsStat, Issued, StatOutcome};
use crate::model::{AttrKey, Attrs, MetricName, MetricPoint};

/// Below the proc root, in the order tried: PID 1's mount table (the host's, also from inside a
/// container that has the host's /proc), then our own.
pub const MOUNTINFO: [&str; 2] = ["1/mountinfo", "self/mountinfo"];

/// ~150 bytes a mount: 64 MiB is ~400,000 mounts, far past `max_mounts`' useful range.
pub const MOUNTINFO_CAP: u64 = 64 << 20;

/// One line of mountinfo, the fields hostwarden reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount source (`/dev/sda1`, `tank/home`, `server:/export`).
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    /// `ro` when the mount or its superblock is read-only, else `rw`.
    pub mode: &'static str,
}

/// Parses at most `max` mounts of mountinfo: `id parent maj:min root mountpoint options
/// [optional...] - fstype source super-options`. Returns the mounts and whether lines were
/// left over.
pub fn parse_mountinfo(text: &str, max: usize) -> (Vec<Mount>, bool) {
    let mut mounts = Vec::new();
    let mut lines = text.lines();
    for line in lines.by_ref() {
        if mounts.len() == max {
            return (mounts, true);
        }
        if let Some(m) = parse_line(line) {
            mounts.push(m);
        }
    }
    (mounts, false)
}

fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let mountpoint = l.nth(4)?;
    let options = l.next()?;
    let mut r = right.split(' ');
    let fstype = r.next()?;
    let source = r.next()?;
    let super_options = r.next().unwrap_or("");
    let ro = |opts: &str| opts.split(',').any(|o| o == "ro");
    Some(Mount {
        device: unescape(source),
        mountpoint: unescape(mountpoint),
        fstype: fstype.to_owned(),
        mode: if ro(options) || ro(super_options) {
            "ro"
        } else {
            "rw"
        },
    })
}

/// The kernel writes space, tab, newline and backslash in mountinfo as octal escapes (`\040`).
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which mounts are reported, compiled once per config.
#[derive(Debug, Clone)]
pub struct FsFilter {
    types: Option<Regex>,
    mount_points: Option<Regex>,
}

impl FsFilter {
    pub fn new(config: &FilesystemConfig) -> Self {
        FsFilter {
            types: compile(&config.fs_types_exclude),
            mount_points: compile(&config.mount_points_exclude),
        }
    }

    pub fn keeps(&self, m: &Mount) -> bool {
        !self.types.as_ref().is_some_and(|r| r.is_match(&m.fstype))
            && !self
                .mount_points
                .as_ref()
                .is_some_and(|r| r.is_match(&m.mountpoint))
    }

    /// The mounts to report: filtered, and one per mount point (the last, the one on top when
    /// a path is mounted over).
    pub fn select(&self, mounts: Vec<Mount>) -> Vec<Mount> {
        let mut kept: Vec<Mount> = Vec::new();
        for m in mounts.into_iter().filter(|m| self.keeps(m)) {
            kept.retain(|k| k.mountpoint != m.mountpoint);
            kept.push(m);
        }
        kept
    }
}

/// Where a mount is stat'ed: its mount point below `root_fs`.
pub fn stat_path(root_fs: &Path, mountpoint: &str) -> PathBuf {
    root_fs.join(mountpoint.trim_start_matches('/'))
}

fn attrs(m: &Mount) -> Attrs {
    Attrs::new()
        .with(AttrKey::SystemDevice, m.device.clone())
        .with(AttrKey::SystemFilesystemMountpoint, m.mountpoint.clone())
        .with(AttrKey::SystemFilesystemType, m.fstype.clone())
        .with(AttrKey::SystemFilesystemMode, m.mode)
}

/// The `system.filesystem.*` points of one mount, whose attributes are `base` (`attrs`).
pub fn filesystem_points(base: &Attrs, outcome: &StatOutcome, points: &mut Vec<MetricPoint>) {
    let stale = matches!(outcome, StatOutcome::Stale);
    points.push(MetricPoint::new(
        MetricName::SystemFilesystemStale,
        base.clone(),
        u32::from(stale),
    ));
    if let StatOutcome::Done(s) = outcome {
        space_points(s, base, points);
    }
}

fn space_points(s: &FsStat, base: &Attrs, points: &mut Vec<MetricPoint>) {
    let bytes = |blocks: u64| blocks.saturating_mul(s.frsize);
    // free is what an unprivileged user can still write (f_bavail); reserved is the root-only
    // rest of f_bfree; the three add up to f_blocks, as the conventions ask.
    let used = bytes(s.blocks.saturating_sub(s.bfree));
    let free = bytes(s.bavail);
    let reserved = bytes(s.bfree.saturating_sub(s.bavail));
    for (state, v) in [("used", used), ("free", free), ("reserved", reserved)] {
        let a = base.clone().with(AttrKey::SystemFilesystemState, state);
        points.push(MetricPoint::new(MetricName::SystemFilesystemUsage, a, v));
    }
    points.push(MetricPoint::new(
        MetricName::SystemFilesystemLimit,
        base.clone(),
        bytes(s.blocks),
    ));
    if let Some(total) = used.checked_add(free).filter(|t| *t > 0) {
        #[allow(clippy::cast_precision_loss)]
        let u = used as f64 / total as f64;
        points.push(MetricPoint::new(
            MetricName::SystemFilesystemUtilization,
            base.clone(),
            u,
        ));
    }
    // Filesystems without a fixed inode table (btrfs, some FUSE) report 0 inodes.
    if s.files > 0 {
        for (state, v) in [("used", s.files.saturating_sub(s.ffree)), ("free", s.ffree)] {
            let a = base.clone().with(AttrKey::SystemFilesystemState, state);
            points.push(MetricPoint::new(
                MetricName::SystemFilesystemInodesUsage,
                a,
                v,
            ));
        }
    }
}

/// The filesystem part of the host collector: its filters, the outstanding stats, and which
/// mounts it has already warned about.
#[derive(Debug)]
pub struct FsCollector {
    filter: FsFilter,
    config: FilesystemConfig,
    statter: super::statvfs::Statter,
    /// Mount points reported stale; a warning is logged when one joins, not every tick.
    stale: std::collections::BTreeSet<String>,
    /// The selected mounts of the table read last, their stat paths, and whether the table
    /// had more than `max_mounts`: kept until the table changes (mounttable.rs).
    mounts: Vec<Mount>,
    paths: Vec<Arc<Path>>,
    /// Whether each mount is stat'ed on the tick thread (inline_stat.rs) rather than a worker.
    inline: Vec<bool>,
    /// Each mount's attributes, built with the table: its device, mount point and type are
    /// shared by its points every tick instead of copied (issue 20).
    bases: Vec<Attrs>,
    truncated: bool,
}

impl FsCollector {
    pub fn new(config: &FilesystemConfig) -> Self {
        FsCollector::with_statter(config, super::statvfs::Statter::default())
    }

    pub fn with_statter(config: &FilesystemConfig, statter: super::statvfs::Statter) -> Self {
        FsCollector {
            filter: FsFilter::new(config),
            config: config.clone(),
            statter,
            stale: std::collections::BTreeSet::new(),
            mounts: Vec::new(),
            paths: Vec::new(),
            inline: Vec::new(),
            bases: Vec::new(),
            truncated: false,
        }
    }

    /// Takes a reloaded config, keeping the outstanding stats (their threads are still there).
    pub fn reconfigure(&mut self, config: &FilesystemConfig) {
        if *config != self.config {
            self.filter = FsFilter::new(config);
            self.config = config.clone();
        }
    }

    /// `set_table` then `measure` in one call (the tests' tables; the collector reads the
    /// table only when it changed, mounttable.rs).
    #[cfg(test)]
    pub async fn collect(
        &mut self,
        text: &str,
        root_fs: &Path,
        points: &mut Vec<MetricPoint>,
        problems: &mut Vec<String>,
    ) {
        self.set_table(text, root_fs);
        self.measure(points, problems).await;
    }

    /// Takes a new mount table: the mounts to report and where they are stat'ed.
    pub fn set_table(&mut self, text: &str, root_fs: &Path) {
        let (mounts, truncated) = parse_mountinfo(text, self.config.max_mounts);
        self.truncated = truncated;
        let hazards = inline_stat::walk_hazards(&mounts);
        self.mounts = self.filter.select(mounts);
        // A table cut short may hide a hazard on the way to a mount it lists: workers for all.
        self.inline = self
            .mounts
            .iter()
            .map(|m| !truncated && inline_stat::on_tick_thread(m, &hazards, root_fs))
            .collect();
        self.paths = self
            .mounts
            .iter()
            .map(|m| stat_path(root_fs, &m.mountpoint).into())
            .collect();
        self.bases = self.mounts.iter().map(attrs).collect();
    }

    /// Stats the mounts of the table taken last and adds their points; problems (a truncated
    /// list, a failed stat, stale mounts) go to `problems`.
    #[cfg(test)]
    pub async fn measure(&mut self, points: &mut Vec<MetricPoint>, problems: &mut Vec<String>) {
        let calls = self.start();
        self.finish(calls, points, problems).await;
    }

    /// Which of the table's selected mounts are stat'ed on the tick thread.
    #[cfg(test)]
    pub fn inline_flags(&self) -> &[bool] {
        &self.inline
    }

    /// Stats the mounts of the table taken last that cannot block (inline_stat.rs) and sends
    /// the others' calls to the workers; `finish` takes the answers. The host collector reads
    /// /proc in between, while the workers stat.
    pub fn start(&mut self) -> Issued {
        self.statter
            .submit(&self.paths, &self.inline, self.config.stat_timeout)
    }

    /// Adds the points of `start`'s calls; problems (a truncated list, a failed stat, stale
    /// mounts) go to `problems`.
    pub async fn finish(
        &mut self,
        calls: Issued,
        points: &mut Vec<MetricPoint>,
        problems: &mut Vec<String>,
    ) {
        if self.truncated {
            problems.push(format!(
                "mountinfo lists more than {} mounts ([host.filesystem] max_mounts); the rest are not reported",
                self.config.max_mounts
            ));
        }
        let outcomes = self.statter.gather(&self.paths, calls).await;
        let mounts = &self.mounts;
        let mut stale_now = std::collections::BTreeSet::new();
        for ((m, base), outcome) in mounts.iter().zip(&self.bases).zip(&outcomes) {
            filesystem_points(base, outcome, points);
            match outcome {
                StatOutcome::Stale => {
                    stale_now.insert(m.mountpoint.clone());
                }
                StatOutcome::Failed(e) => problems.push(e.clone()),
                StatOutcome::Done(_) => {}
            }
        }
        for mp in stale_now.difference(&self.stale) {
            tracing::warn!(
                mountpoint = %mp,
                timeout = ?self.config.stat_timeout,
                "filesystem stale: statvfs did not return within the deadline; not asked again until it does"
            );
        }
        for mp in self.stale.difference(&stale_now) {
            tracing::info!(mountpoint = %mp, "filesystem answers statvfs again");
        }
        if !stale_now.is_empty() {
            let list: Vec<&str> = stale_now.iter().map(String::as_str).collect();
            problems.push(format!(
                "{} filesystem(s) stale (statvfs outstanding past {:?}): {}",
                stale_now.len(),
                self.config.stat_timeout,
                list.join(", ")
            ));
        }
        self.stale = stale_now;
    }
}
