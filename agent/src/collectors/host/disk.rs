//! Block devices from `<proc_root>/diskstats` (Documentation/ABI/testing/procfs-diskstats):
//! whole disks, md and dm devices, partitions when asked, minus node_exporter's default
//! exclusions (ram, zram, loop, floppy).

use std::sync::Arc;

use regex_lite::Regex;

use super::config::{DiskConfig, compile};
use super::names::NameMemo;
use crate::model::{AttrKey, Attrs, MetricName, MetricPoint};

/// Below the proc root.
pub const DISKSTATS: &str = "diskstats";

/// One line per block device; a host with 10,000 devices stays far below this.
pub const DISKSTATS_CAP: u64 = 4 << 20;

/// diskstats counts sectors of 512 bytes whatever the device's own sector size.
const SECTOR: u64 = 512;

/// The fields hostwarden reports from one diskstats line (1-based field numbers of the ABI
/// document after major, minor and name).
/// Borrowed from the tick's text: the name is copied only when a device is first seen (the
/// filter's memo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStats<'a> {
    pub name: &'a str,
    /// 1, 5: reads and writes completed.
    pub reads: u64,
    pub writes: u64,
    /// 2, 6: merged.
    pub reads_merged: u64,
    pub writes_merged: u64,
    /// 3, 7: sectors.
    pub sectors_read: u64,
    pub sectors_written: u64,
    /// 4, 8: milliseconds spent reading, writing.
    pub read_ms: u64,
    pub write_ms: u64,
    /// 9: I/Os in progress.
    pub in_progress: u64,
    /// 10: milliseconds with I/O in flight.
    pub io_ms: u64,
}

/// Parses diskstats; lines with fewer than the 11 classic fields are skipped.
pub fn parse_diskstats(text: &str) -> Vec<DiskStats<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_ascii_whitespace();
            let (_major, _minor, name) = (it.next()?, it.next()?, it.next()?);
            let mut n = [0u64; 10];
            for slot in &mut n {
                *slot = it.next()?.parse().ok()?;
            }
            Some(DiskStats {
                name,
                reads: n[0],
                reads_merged: n[1],
                sectors_read: n[2],
                read_ms: n[3],
                writes: n[4],
                writes_merged: n[5],
                sectors_written: n[6],
                write_ms: n[7],
                in_progress: n[8],
                io_ms: n[9],
            })
        })
        .collect()
}

/// Partition names as node_exporter's default exclusion knows them: `sda1`, `hdb2`, `vda3`,
/// `xvda1`, `nvme0n1p1`, and `mmcblk0p1` besides.
pub const PARTITION_PATTERN: &str = r"^((h|s|v|xv)d[a-z]+\d+|(nvme\d+n\d+|mmcblk\d+)p\d+)$";

fn partition_pattern() -> Option<Regex> {
    compile(PARTITION_PATTERN)
}

/// Which devices are reported, compiled once per config, each name judged once.
#[derive(Debug, Clone)]
pub struct DiskFilter {
    exclude: Option<Regex>,
    partition: Option<Regex>,
    memo: NameMemo,
}

impl DiskFilter {
    pub fn new(config: &DiskConfig) -> Self {
        DiskFilter {
            exclude: compile(&config.device_exclude),
            partition: (!config.partitions).then(partition_pattern).flatten(),
            memo: NameMemo::default(),
        }
    }

    /// The device's name, shared, when the filter keeps it.
    pub fn kept(&mut self, name: &str) -> Option<Arc<str>> {
        let (exclude, partition) = (&self.exclude, &self.partition);
        self.memo.kept(name, |n| {
            !exclude.as_ref().is_some_and(|r| r.is_match(n))
                && !partition.as_ref().is_some_and(|r| r.is_match(n))
        })
    }
}

/// The `system.disk.*` points of the devices the filter keeps.
pub fn disk_points(stats: &[DiskStats], filter: &mut DiskFilter, points: &mut Vec<MetricPoint>) {
    for d in stats {
        let Some(name) = filter.kept(d.name) else {
            continue;
        };
        let device = Attrs::new().with(AttrKey::SystemDevice, name);
        for (dir, ops, merged, sectors, ms) in [
            ("read", d.reads, d.reads_merged, d.sectors_read, d.read_ms),
            (
                "write",
                d.writes,
                d.writes_merged,
                d.sectors_written,
                d.write_ms,
            ),
        ] {
            let a = device.clone().with(AttrKey::DiskIoDirection, dir);
            points.push(MetricPoint::new(
                MetricName::SystemDiskIo,
                a.clone(),
                sectors.saturating_mul(SECTOR),
            ));
            points.push(MetricPoint::new(
                MetricName::SystemDiskOperations,
                a.clone(),
                ops,
            ));
            points.push(MetricPoint::new(
                MetricName::SystemDiskOperationTime,
                a.clone(),
                millis(ms),
            ));
            points.push(MetricPoint::new(MetricName::SystemDiskMerged, a, merged));
        }
        points.push(MetricPoint::new(
            MetricName::SystemDiskIoTime,
            device.clone(),
            millis(d.io_ms),
        ));
        points.push(MetricPoint::new(
            MetricName::SystemDiskPendingOperations,
            device,
            d.in_progress,
        ));
    }
}

/// Milliseconds as seconds; exact below 2^53 ms (285,000 years).
#[allow(clippy::cast_precision_loss)]
fn millis(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
