//! The ZFS ARC, from `<proc_root>/spl/kstat/zfs/arcstats`. The ARC is neither page cache nor in
//! MemAvailable, so without it a ZFS host looks short of memory when the ARC has merely grown.
//! The file is a kstat the module renders on read (~10 KiB, no `zpool`, no fork), so the host
//! collector reads it in the same tick as /proc/meminfo and the ARC-aware available memory is
//! made of two readings microseconds apart. No ZFS module: no file, no points.

use crate::model::{AttrKey, Attrs, MetricName, MetricPoint};

/// Below the proc root.
pub const ARCSTATS: &str = "spl/kstat/zfs/arcstats";

/// The file is ~10 KiB; anything past this is not arcstats.
pub const ARCSTATS_CAP: u64 = 1 << 20;

/// The arcstats fields hostwarden reports (OpenZFS names in the comments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcStats {
    /// `size`
    pub size: u64,
    /// `c`, the target size.
    pub c: u64,
    /// `c_min`
    pub c_min: u64,
    /// `c_max`
    pub c_max: u64,
    /// `mru_size`, `mfu_size`
    pub mru: Option<u64>,
    pub mfu: Option<u64>,
    /// `metadata_size`
    pub metadata: Option<u64>,
    /// `hits`, `misses`
    pub hits: Option<u64>,
    pub misses: Option<u64>,
    /// `evict_l2_cached + evict_l2_eligible + evict_l2_ineligible`: every evicted byte, split by
    /// whether the L2ARC held it.
    pub evicted: Option<u64>,
    /// `arc_no_grow` (0.7+ on Linux).
    pub no_grow: Option<bool>,
    /// `l2_size`, `l2_hits`, `l2_misses`, only when a cache device is present.
    pub l2: Option<L2Stats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Stats {
    pub size: u64,
    pub hits: u64,
    pub misses: u64,
}

impl ArcStats {
    /// What the kernel can take back from the ARC under pressure: everything above c_min.
    pub fn reclaimable(&self) -> u64 {
        self.size.saturating_sub(self.c_min)
    }
}

/// Parses arcstats: a kstat header line, a `name type data` line, then one `name type data`
/// line per field. Lines that are not three fields with numeric type and data are skipped
/// (negative values such as `memory_available_bytes` included: none is used). `None` when a
/// size field is missing, which no OpenZFS release lacks.
pub fn parse_arcstats(text: &str) -> Option<ArcStats> {
    let mut fields: Vec<(&str, u64)> = Vec::with_capacity(160);
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(name), Some(kind), Some(data), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        if kind.parse::<u8>().is_err() {
            continue;
        }
        if let Ok(v) = data.parse::<u64>() {
            fields.push((name, v));
        }
    }
    let get = |n: &str| fields.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let evicted = [
        "evict_l2_cached",
        "evict_l2_eligible",
        "evict_l2_ineligible",
    ]
    .iter()
    .map(|n| get(n))
    .sum::<Option<u64>>();
    // l2_feeds counts feed passes over a cache device; with none it stays 0.
    let l2_present =
        get("l2_feeds").is_some_and(|n| n > 0) || get("l2_size").is_some_and(|n| n > 0);
    let l2 = match (l2_present, get("l2_size"), get("l2_hits"), get("l2_misses")) {
        (true, Some(size), Some(hits), Some(misses)) => Some(L2Stats { size, hits, misses }),
        _ => None,
    };
    Some(ArcStats {
        size: get("size")?,
        c: get("c")?,
        c_min: get("c_min")?,
        c_max: get("c_max")?,
        mru: get("mru_size"),
        mfu: get("mfu_size"),
        metadata: get("metadata_size"),
        hits: get("hits"),
        misses: get("misses"),
        evicted,
        no_grow: get("arc_no_grow").map(|v| v != 0),
        l2,
    })
}

/// The `zfs.arc.*` points, and `zfs.arc.memory.available` when MemAvailable is known.
pub fn arc_points(arc: &ArcStats, mem_available: Option<u64>, points: &mut Vec<MetricPoint>) {
    let none = Attrs::new;
    points.push(MetricPoint::new(MetricName::ZfsArcSize, none(), arc.size));
    points.push(MetricPoint::new(MetricName::ZfsArcTarget, none(), arc.c));
    for (kind, v) in [("min", arc.c_min), ("max", arc.c_max)] {
        let attrs = Attrs::new().with(AttrKey::ZfsArcLimitType, kind);
        points.push(MetricPoint::new(MetricName::ZfsArcLimit, attrs, v));
    }
    for (state, v) in [("mru", arc.mru), ("mfu", arc.mfu)] {
        if let Some(v) = v {
            let attrs = Attrs::new().with(AttrKey::ZfsArcState, state);
            points.push(MetricPoint::new(MetricName::ZfsArcStateSize, attrs, v));
        }
    }
    for (name, v) in [
        (MetricName::ZfsArcMetadataSize, arc.metadata),
        (MetricName::ZfsArcHits, arc.hits),
        (MetricName::ZfsArcMisses, arc.misses),
        (MetricName::ZfsArcEvicted, arc.evicted),
        (MetricName::ZfsArcNoGrow, arc.no_grow.map(u64::from)),
    ] {
        if let Some(v) = v {
            points.push(MetricPoint::new(name, none(), v));
        }
    }
    if let Some(l2) = arc.l2 {
        points.push(MetricPoint::new(MetricName::ZfsArcL2Size, none(), l2.size));
        points.push(MetricPoint::new(MetricName::ZfsArcL2Hits, none(), l2.hits));
        points.push(MetricPoint::new(
            MetricName::ZfsArcL2Misses,
            none(),
            l2.misses,
        ));
    }
    points.push(MetricPoint::new(
        MetricName::ZfsArcReclaimable,
        none(),
        arc.reclaimable(),
    ));
    if let Some(avail) = mem_available {
        points.push(MetricPoint::new(
            MetricName::ZfsArcMemoryAvailable,
            none(),
            avail.saturating_add(arc.reclaimable()),
        ));
    }
}

#[cfg(test)]
mod tests;
