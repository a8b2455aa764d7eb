//! Turns parsed `zpool` output into metric points. Pure: the tests feed it parsed captures.
//!
//! Attribute values come only from pool and vdev names (bounded by the host) and fixed strings.

use super::iostat::Reading;
use super::parse::{IostatRow, PoolRow};
use super::scan::{LastScan, ScanState};
use super::status::PoolStatus;
use crate::model::{AttrKey, Attrs, MetricName, MetricPoint};

/// Every health a pool can report; all are emitted (1 for the current one) so a rule matching
/// `zfs.pool.health = "!ONLINE"` sees a value that drops back to 0 when the pool recovers.
pub const HEALTH_STATES: [&str; 7] = [
    "ONLINE",
    "DEGRADED",
    "FAULTED",
    "OFFLINE",
    "UNAVAIL",
    "REMOVED",
    "SUSPENDED",
];

fn pool_attrs(pool: &str) -> Attrs {
    Attrs::new().with(AttrKey::ZfsPoolName, pool.to_owned())
}

/// The health set: 1 for `current`, 0 for the others; a state outside the set (a vdev's
/// `AVAIL`, `INUSE`) is added with 1.
fn health_points(name: MetricName, base: &Attrs, current: &str, out: &mut Vec<MetricPoint>) {
    for state in HEALTH_STATES {
        let attrs = base.clone().with(AttrKey::ZfsPoolHealthState, state);
        out.push(MetricPoint::new(name, attrs, u32::from(state == current)));
    }
    if !HEALTH_STATES.contains(&current) {
        let attrs = base
            .clone()
            .with(AttrKey::ZfsPoolHealthState, current.to_owned());
        out.push(MetricPoint::new(name, attrs, 1u32));
    }
}

/// Capacity, fragmentation, dedup and health of each pool, and the health of each vdev.
#[allow(clippy::cast_precision_loss)]
pub fn list_points(pools: &[PoolRow], out: &mut Vec<MetricPoint>) {
    for p in pools {
        let attrs = pool_attrs(&p.name);
        if let Some(alloc) = p.alloc {
            let a = attrs.clone().with(AttrKey::ZfsPoolState, "used");
            out.push(MetricPoint::new(MetricName::ZfsPoolUsage, a, alloc));
        }
        if let Some(free) = p.free {
            let a = attrs.clone().with(AttrKey::ZfsPoolState, "free");
            out.push(MetricPoint::new(MetricName::ZfsPoolUsage, a, free));
        }
        if let Some(size) = p.size {
            out.push(MetricPoint::new(
                MetricName::ZfsPoolLimit,
                attrs.clone(),
                size,
            ));
            if let (Some(alloc), true) = (p.alloc, size > 0) {
                let ratio = (alloc as f64 / size as f64).clamp(0.0, 1.0);
                out.push(MetricPoint::new(
                    MetricName::ZfsPoolUtilization,
                    attrs.clone(),
                    ratio,
                ));
            }
        }
        if let Some(frag) = p.frag_percent {
            out.push(MetricPoint::new(
                MetricName::ZfsPoolFragmentation,
                attrs.clone(),
                (frag as f64 / 100.0).clamp(0.0, 1.0),
            ));
        }
        if let Some(dedup) = p.dedup {
            out.push(MetricPoint::new(
                MetricName::ZfsPoolDedupRatio,
                attrs.clone(),
                dedup,
            ));
        }
        health_points(MetricName::ZfsPoolHealth, &attrs, &p.health, out);
        for v in &p.vdevs {
            let base = attrs.clone().with(AttrKey::ZfsVdevName, v.name.clone());
            health_points(MetricName::ZfsVdevHealth, &base, &v.health, out);
        }
    }
}

/// The last scan's record: its state set (all four states, 1 for the current one), its times,
/// and what it found. `now_unix` (wall-clock seconds) gives the age of a finished scan.
#[allow(clippy::cast_precision_loss)]
fn last_scan_points(pool: &Attrs, scan: &LastScan, now_unix: i64, out: &mut Vec<MetricPoint>) {
    let attrs = match scan.function {
        Some(f) => pool.clone().with(AttrKey::ZfsScanFunction, f.as_str()),
        None => pool.clone(),
    };
    for state in ScanState::ALL {
        let a = attrs.clone().with(AttrKey::ZfsScanState, state.as_str());
        let v = u32::from(state == scan.state);
        out.push(MetricPoint::new(MetricName::ZfsPoolScanState, a, v));
    }
    let mut put = |name, v: Option<f64>| {
        if let Some(v) = v {
            out.push(MetricPoint::new(name, attrs.clone(), v));
        }
    };
    put(MetricName::ZfsPoolScanStart, scan.start.map(|t| t as f64));
    put(MetricName::ZfsPoolScanEnd, scan.end.map(|t| t as f64));
    let age = scan
        .end
        .filter(|_| scan.state == ScanState::Finished)
        .map(|end| now_unix.saturating_sub(end).max(0) as f64);
    put(MetricName::ZfsPoolScanAge, age);
    put(MetricName::ZfsPoolScanErrors, scan.errors.map(|n| n as f64));
    put(
        MetricName::ZfsPoolScanRepaired,
        scan.repaired.map(|n| n as f64),
    );
}

/// Error counts, scan progress and the last scan's record from `zpool status`.
pub fn status_points(pools: &[PoolStatus], now_unix: i64, out: &mut Vec<MetricPoint>) {
    for p in pools {
        let attrs = pool_attrs(&p.name);
        for (kind, n) in [
            ("read", p.read_errors),
            ("write", p.write_errors),
            ("checksum", p.checksum_errors),
        ] {
            let a = attrs.clone().with(AttrKey::ErrorType, kind);
            out.push(MetricPoint::new(MetricName::ZfsPoolErrors, a, n));
        }
        if let Some(scan) = p.scan {
            let a = attrs
                .clone()
                .with(AttrKey::ZfsScanFunction, scan.function.as_str());
            out.push(MetricPoint::new(
                MetricName::ZfsPoolScanProgress,
                a,
                scan.progress,
            ));
        }
        if let Some(last) = &p.last_scan {
            last_scan_points(&attrs, last, now_unix, out);
        }
    }
}

/// Nanoseconds (as printed by `zpool iostat -p`) to seconds.
#[allow(clippy::cast_precision_loss)]
fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn latency_points(row: &IostatRow, out: &mut Vec<MetricPoint>) {
    let w = &row.waits;
    let base = pool_attrs(&row.name);
    let directed = [
        ("total", w.total_read, w.total_write),
        ("disk", w.disk_read, w.disk_write),
        ("syncq", w.syncq_read, w.syncq_write),
        ("asyncq", w.asyncq_read, w.asyncq_write),
    ];
    for (kind, read, write) in directed {
        for (dir, ns) in [("read", read), ("write", write)] {
            let a = base
                .clone()
                .with(AttrKey::ZfsWaitType, kind)
                .with(AttrKey::DiskIoDirection, dir);
            out.push(MetricPoint::new(
                MetricName::ZfsPoolOperationLatency,
                a,
                secs(ns),
            ));
        }
    }
    // zpool prints one column each for scrub, trim and rebuild: no direction attribute.
    let undirected = [("scrub", Some(w.scrub)), ("trim", Some(w.trim))]
        .into_iter()
        .chain(std::iter::once(("rebuild", w.rebuild)));
    for (kind, ns) in undirected {
        if let Some(ns) = ns {
            let a = base.clone().with(AttrKey::ZfsWaitType, kind);
            out.push(MetricPoint::new(
                MetricName::ZfsPoolOperationLatency,
                a,
                secs(ns),
            ));
        }
    }
}

/// Latencies of the last report and the accumulated counters, for pools that are in `known`
/// (the latest `zpool list`), so a pool exported between the two reads is not reported.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn iostat_points(reading: &Reading, known: &[PoolRow], out: &mut Vec<MetricPoint>) {
    for row in &reading.rows {
        if !known.iter().any(|p| p.name == row.name) {
            continue;
        }
        latency_points(row, out);
        let Some(t) = reading.totals.get(&row.name) else {
            continue;
        };
        let base = pool_attrs(&row.name);
        for (dir, ops, bytes) in [
            ("read", t.read_ops, t.read_bytes),
            ("write", t.write_ops, t.write_bytes),
        ] {
            let a = base.clone().with(AttrKey::DiskIoDirection, dir);
            out.push(MetricPoint::new(
                MetricName::ZfsPoolOperations,
                a.clone(),
                ops.round() as u64,
            ));
            out.push(MetricPoint::new(
                MetricName::ZfsPoolIo,
                a,
                bytes.round() as u64,
            ));
        }
    }
}
