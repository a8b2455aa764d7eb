//! CPU, load, memory, swap, pressure stall information and OOM kills, read from a configurable
//! proc root (`/host/proc` in a container, a captured tree in tests).
//!
//! Seven small files per tick, read into one reused buffer and, on the proc filesystem, kept
//! open between ticks (files.rs, `sys::procfile`). `/proc/stat` (cpu.rs), loadavg and the
//! pressure files are parsed here (procfs' `KernelStats` drops the CPU numbers of offline CPUs,
//! its `LoadAverage` rounds through f32, and its pressure parser rejects kernels whose CPU line
//! has no `full` record), meminfo in meminfo.rs (procfs' parser allocates every line). On a ZFS
//! host the ARC's kstat is an eighth file (arc.rs), read here so that available memory can count
//! the ARC it can shrink. Disks (disk.rs), network interfaces (network.rs) and filesystems
//! (filesystem.rs, with the mount table in mounttable.rs, read only when it changed, and its
//! statvfs deadline in statvfs.rs) come from three more files.

mod arc;
mod config;
pub mod cpu;
pub mod disk;
mod files;
pub mod filesystem;
mod inline_stat;
mod meminfo;
mod mounttable;
mod names;
pub mod network;
pub mod statvfs;

pub use arc::{ArcStats, parse_arcstats};
pub use config::{DiskConfig, FilesystemConfig, HostConfig, NetworkConfig};
pub use cpu::{CpuStat, CpuTicks, mode_shares, parse_stat};

use async_trait::async_trait;

use super::{CollectError, Collector, Sample};
use crate::model::{AttrKey, Attrs, CollectorId, MetricName, MetricPoint};
use files::{HostFiles, read_core};
use meminfo::{MemInfo, parse_meminfo};
use mounttable::MountRead;
use statvfs::Issued;

/// One PSI line: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Total stall time in microseconds.
    pub total_us: u64,
}

/// Parses a /proc/pressure file into its `some` and `full` lines (either may be absent).
pub fn parse_pressure(text: &str) -> (Option<PressureLine>, Option<PressureLine>) {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let slot = match parts.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
        for kv in parts {
            match kv.split_once('=') {
                Some(("avg10", v)) => avg10 = v.parse().ok(),
                Some(("avg60", v)) => avg60 = v.parse().ok(),
                Some(("avg300", v)) => avg300 = v.parse().ok(),
                Some(("total", v)) => total = v.parse().ok(),
                _ => {}
            }
        }
        if let (Some(avg10), Some(avg60), Some(avg300), Some(total_us)) =
            (avg10, avg60, avg300, total)
        {
            *slot = Some(PressureLine {
                avg10,
                avg60,
                avg300,
                total_us,
            });
        }
    }
    (some, full)
}

/// The three load averages of /proc/loadavg, as printed (procfs reads them as f32, which turns
/// `15.42` into `15.4200000763`).
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_ascii_whitespace().map(str::parse::<f64>);
    Some([it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?])
}

/// The `oom_kill` counter of /proc/vmstat (Linux 4.13+).
pub fn parse_oom_kills(vmstat: &str) -> Option<u64> {
    vmstat
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

pub struct HostCollector {
    files: HostFiles,
    per_cpu: bool,
    /// The kernel's USER_HZ: /proc/stat counts jiffies of 1/hz seconds.
    hz: f64,
    buf: Vec<u8>,
    prev: Option<CpuStat>,
    root_fs: std::path::PathBuf,
    /// `None` when the part is disabled.
    disk: Option<disk::DiskFilter>,
    network: Option<network::NetFilter>,
    filesystem: Option<filesystem::FsCollector>,
}

impl HostCollector {
    pub fn new(config: &HostConfig) -> Self {
        HostCollector {
            files: HostFiles::new(&config.proc_root),
            per_cpu: config.per_cpu,
            #[allow(clippy::cast_precision_loss)]
            hz: procfs::ticks_per_second().max(1) as f64,
            buf: Vec::with_capacity(16 * 1024),
            prev: None,
            root_fs: config.root_fs.clone(),
            disk: config
                .disk
                .enabled
                .then(|| disk::DiskFilter::new(&config.disk)),
            network: config
                .network
                .enabled
                .then(|| network::NetFilter::new(&config.network)),
            filesystem: config
                .filesystem
                .enabled
                .then(|| filesystem::FsCollector::new(&config.filesystem)),
        }
    }

    /// Disks and interfaces: two more small files, read like the others.
    fn devices(&mut self, points: &mut Vec<MetricPoint>, problems: &mut Vec<String>) {
        if let Some(filter) = &mut self.disk {
            match self.files.diskstats.read(&mut self.buf) {
                Ok(Some(text)) => disk::disk_points(&disk::parse_diskstats(text), filter, points),
                Ok(None) => problems.push(format!(
                    "{} does not exist",
                    self.files.diskstats.path().display()
                )),
                Err(e) => problems.push(e),
            }
        }
        if let Some(filter) = &mut self.network {
            match self.files.net_dev.read(&mut self.buf) {
                Ok(Some(text)) => {
                    network::network_points(&network::parse_net_dev(text), filter, points);
                }
                Ok(None) => problems.push(format!(
                    "{} does not exist",
                    self.files.net_dev.path().display()
                )),
                Err(e) => problems.push(e),
            }
        }
    }

    /// Filesystems, first half: mountinfo when it changed (mounttable.rs), then one statvfs
    /// per mount sent to the workers (statvfs.rs), every tick: free space changes without a
    /// mount event. `None` when the table cannot be read (its reason is in `problem`).
    fn start_filesystems(&mut self, problem: &mut Option<String>) -> Option<Issued> {
        let fs = self.filesystem.as_mut()?;
        // PID 1's mount table first, as node_exporter reads it: in a container with the host's
        // /proc (and under a hardened unit's private mount namespace) our own `self` table lists
        // the container's mounts, PID 1's the host's. `self` when PID 1's cannot be read.
        match self.files.mounts.read(&mut self.buf) {
            MountRead::Unchanged => {}
            MountRead::Text(text) => fs.set_table(text, &self.root_fs),
            MountRead::Unreadable(why) => {
                *problem = Some(why);
                return None;
            }
        }
        Some(fs.start())
    }

    /// Reads everything synchronously: these are small pseudo-files that the kernel renders in
    /// microseconds, cheaper than a hop to the blocking pool.
    pub fn collect_now(&mut self) -> Result<Sample, CollectError> {
        let mut points = Vec::with_capacity(64);
        let mut problems: Vec<String> = Vec::new();
        self.read_files(&mut points, &mut problems);
        finish(points, &problems)
    }

    /// Everything but the filesystems, which wait on statvfs (`collect`).
    fn read_files(&mut self, points: &mut Vec<MetricPoint>, problems: &mut Vec<String>) {
        let stat = read_core(&mut self.files.stat, &mut self.buf).map(parse_stat);
        match stat {
            Ok(stat) => {
                cpu::cpu_points(self.prev.as_ref(), &stat, self.per_cpu, self.hz, points);
                self.prev = Some(stat);
            }
            Err(e) => problems.push(e),
        }

        let meminfo = match read_core(&mut self.files.meminfo, &mut self.buf).map(parse_meminfo) {
            Ok(Ok(m)) => {
                memory_points(&m, points);
                Some(m)
            }
            Ok(Err(e)) => {
                problems.push(format!(
                    "cannot parse {}: {e}",
                    self.files.meminfo.path().display()
                ));
                None
            }
            Err(e) => {
                problems.push(e);
                None
            }
        };
        let arc = self.arcstats(problems);
        if let Some(arc) = &arc {
            arc::arc_points(arc, meminfo.as_ref().and_then(|m| m.mem_available), points);
        }
        if let Some(m) = &meminfo {
            available_ratio(m, arc.as_ref(), points);
        }

        match read_core(&mut self.files.loadavg, &mut self.buf).map(parse_loadavg) {
            Ok(Some([one, five, fifteen])) => {
                for (name, v) in [
                    (MetricName::SystemCpuLoadAverage1m, one),
                    (MetricName::SystemCpuLoadAverage5m, five),
                    (MetricName::SystemCpuLoadAverage15m, fifteen),
                ] {
                    points.push(MetricPoint::new(name, Attrs::new(), v));
                }
            }
            Ok(None) => problems.push(format!(
                "cannot parse {}",
                self.files.loadavg.path().display()
            )),
            Err(e) => problems.push(e),
        }

        match read_core(&mut self.files.vmstat, &mut self.buf).map(parse_oom_kills) {
            Ok(Some(n)) => points.push(MetricPoint::new(
                MetricName::SystemMemoryLinuxOomKills,
                Attrs::new(),
                n,
            )),
            Ok(None) => {}
            Err(e) => problems.push(e),
        }

        self.pressure_points(points, problems);
        self.devices(points, problems);
    }

    /// The ARC's kstat; `None` without a ZFS module (not a problem; looked for again every
    /// `ARC_REPROBE`, files.rs) or when it cannot be read.
    fn arcstats(&mut self, problems: &mut Vec<String>) -> Option<ArcStats> {
        match self.files.arcstats(&mut self.buf) {
            Ok(None) => None,
            Ok(Some(text)) => {
                let parsed = arc::parse_arcstats(text);
                if parsed.is_none() {
                    problems.push(format!(
                        "cannot parse {}: no size, c, c_min or c_max",
                        self.files.arcstats.path().display()
                    ));
                }
                parsed
            }
            Err(e) => {
                problems.push(e);
                None
            }
        }
    }

    /// Pressure stall information (some and full, memory/cpu/io); a kernel without PSI is one
    /// problem, not three.
    fn pressure_points(&mut self, points: &mut Vec<MetricPoint>, problems: &mut Vec<String>) {
        let mut psi_missing = 0;
        for (file, (_, [avg10, avg60, avg300], total)) in self.files.pressure.iter_mut().zip(PSI) {
            match read_core(file, &mut self.buf) {
                Ok(text) => {
                    let (some, full) = parse_pressure(text);
                    for (stall, line) in [("some", some), ("full", full)] {
                        let Some(line) = line else { continue };
                        let attrs = Attrs::new().with(AttrKey::PressureStallType, stall);
                        points.push(MetricPoint::new(avg10, attrs.clone(), line.avg10 / 100.0));
                        points.push(MetricPoint::new(avg60, attrs.clone(), line.avg60 / 100.0));
                        points.push(MetricPoint::new(avg300, attrs.clone(), line.avg300 / 100.0));
                        #[allow(clippy::cast_precision_loss)]
                        points.push(MetricPoint::new(total, attrs, line.total_us as f64 / 1e6));
                    }
                }
                Err(_) => psi_missing += 1,
            }
        }
        if psi_missing == PSI.len() {
            problems.push(format!(
            "{}/pressure is not readable: kernel without PSI (CONFIG_PSI, or booted with psi=0)",
            self.files.root().display()
        ));
        }
    }
}

/// Each pressure file with its 10 s, 1 min and 5 min averages and its total.
pub(crate) const PSI: [(&str, [MetricName; 3], MetricName); 3] = [
    (
        "pressure/cpu",
        [
            MetricName::SystemCpuLinuxPressure10s,
            MetricName::SystemCpuLinuxPressure1m,
            MetricName::SystemCpuLinuxPressure5m,
        ],
        MetricName::SystemCpuLinuxPressureTotal,
    ),
    (
        "pressure/memory",
        [
            MetricName::SystemMemoryLinuxPressure10s,
            MetricName::SystemMemoryLinuxPressure1m,
            MetricName::SystemMemoryLinuxPressure5m,
        ],
        MetricName::SystemMemoryLinuxPressureTotal,
    ),
    (
        "pressure/io",
        [
            MetricName::SystemIoLinuxPressure10s,
            MetricName::SystemIoLinuxPressure1m,
            MetricName::SystemIoLinuxPressure5m,
        ],
        MetricName::SystemIoLinuxPressureTotal,
    ),
];

fn memory_points(m: &MemInfo, points: &mut Vec<MetricPoint>) {
    // As gopsutil (and so the OTel hostmetrics receiver) computes it: reclaimable slab counts
    // as cache, and the four states add up to the total.
    let cached = m.cached + m.s_reclaimable.unwrap_or(0);
    let used = m
        .mem_total
        .saturating_sub(m.mem_free)
        .saturating_sub(m.buffers)
        .saturating_sub(cached);
    for (state, v) in [
        ("used", used),
        ("free", m.mem_free),
        ("cached", cached),
        ("buffers", m.buffers),
    ] {
        let attrs = Attrs::new().with(AttrKey::SystemMemoryState, state);
        points.push(MetricPoint::new(
            MetricName::SystemMemoryUsage,
            attrs.clone(),
            v,
        ));
        if m.mem_total > 0 {
            #[allow(clippy::cast_precision_loss)]
            let u = v as f64 / m.mem_total as f64;
            points.push(MetricPoint::new(
                MetricName::SystemMemoryUtilization,
                attrs,
                u,
            ));
        }
    }
    points.push(MetricPoint::new(
        MetricName::SystemMemoryLimit,
        Attrs::new(),
        m.mem_total,
    ));
    if let Some(avail) = m.mem_available {
        points.push(MetricPoint::new(
            MetricName::SystemMemoryLinuxAvailable,
            Attrs::new(),
            avail,
        ));
    }
    let swap_used = m.swap_total.saturating_sub(m.swap_free);
    for (state, v) in [("used", swap_used), ("free", m.swap_free)] {
        let attrs = Attrs::new().with(AttrKey::SystemPagingState, state);
        points.push(MetricPoint::new(MetricName::SystemPagingUsage, attrs, v));
    }
    // No swap configured: utilisation is undefined, so it is absent rather than 0.
    if m.swap_total > 0 {
        #[allow(clippy::cast_precision_loss)]
        let u = swap_used as f64 / m.swap_total as f64;
        points.push(MetricPoint::new(
            MetricName::SystemPagingUtilization,
            Attrs::new(),
            u,
        ));
    }
}

/// The share of memory a new allocation can still get: MemAvailable plus the ARC the kernel can
/// take back (none without ZFS), over MemTotal. Absent on kernels without MemAvailable (< 3.14).
fn available_ratio(m: &MemInfo, arc: Option<&ArcStats>, points: &mut Vec<MetricPoint>) {
    let (Some(avail), true) = (m.mem_available, m.mem_total > 0) else {
        return;
    };
    let avail = avail.saturating_add(arc.map_or(0, ArcStats::reclaimable));
    #[allow(clippy::cast_precision_loss)]
    let ratio = (avail as f64 / m.mem_total as f64).min(1.0);
    points.push(MetricPoint::new(
        MetricName::SystemMemoryLinuxAvailableRatio,
        Attrs::new(),
        ratio,
    ));
}

#[async_trait]
impl Collector for HostCollector {
    fn id(&self) -> CollectorId {
        CollectorId::Host
    }

    async fn collect(&mut self) -> Result<Sample, CollectError> {
        let mut points = Vec::with_capacity(256);
        let mut problems: Vec<String> = Vec::new();
        // The statvfs calls go out first: the workers make them while this thread reads /proc.
        let mut mount_problem = None;
        let calls = self.start_filesystems(&mut mount_problem);
        self.read_files(&mut points, &mut problems);
        problems.extend(mount_problem);
        if let (Some(calls), Some(fs)) = (calls, self.filesystem.as_mut()) {
            fs.finish(calls, &mut points, &mut problems).await;
        }
        finish(points, &problems)
    }

    fn reconfigure(&mut self, config: super::CollectorsConfig<'_>) -> bool {
        if !config.host.enabled {
            return false;
        }
        if config.host.proc_root != self.files.root() {
            // Counters from another tree cannot be subtracted from these.
            self.files = HostFiles::new(&config.host.proc_root);
            self.prev = None;
        }
        // A new filter, limit or root_fs applies to the table read now, not at its next change.
        self.files.mounts.forget();
        self.per_cpu = config.host.per_cpu;
        self.root_fs.clone_from(&config.host.root_fs);
        let host = config.host;
        self.disk = host.disk.enabled.then(|| disk::DiskFilter::new(&host.disk));
        self.network = host
            .network
            .enabled
            .then(|| network::NetFilter::new(&host.network));
        match (&mut self.filesystem, host.filesystem.enabled) {
            (Some(fs), true) => fs.reconfigure(&host.filesystem),
            (None, true) => {
                self.filesystem = Some(filesystem::FsCollector::new(&host.filesystem));
            }
            (_, false) => self.filesystem = None,
        }
        true
    }
}

/// A sample of what was read, degraded by what was not; nothing read at all is an error.
fn finish(points: Vec<MetricPoint>, problems: &[String]) -> Result<Sample, CollectError> {
    if points.is_empty() {
        return Err(CollectError::new(problems.join("; ")));
    }
    Ok(Sample {
        points,
        degraded: (!problems.is_empty()).then(|| problems.join("; ")),
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod devices_tests;
