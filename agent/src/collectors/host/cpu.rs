//! The CPU lines of /proc/stat, split as the semantic conventions split them: `system.cpu.time`
//! (seconds per `cpu.mode`, per logical CPU when `[host] per_cpu` is on) and
//! `system.cpu.utilization` (whole host only, each mode's share between two reads). Per-CPU and
//! whole-host series never share a metric's attribute set, so a sum over either metric counts
//! every CPU second once.

use crate::model::{AttrKey, Attrs, MetricName, MetricPoint};

/// The conventions' `cpu.mode` values, in /proc/stat's column order. softirq is counted in
/// `interrupt` (the conventions have no softirq mode); guest time is already inside user and
/// nice, so it is not added twice.
pub const MODES: [&str; 7] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "interrupt",
    "steal",
];

/// Index of `idle` in `MODES` (the busy share is 1 − idle).
pub const IDLE: usize = 3;

/// Jiffies per mode of one CPU line of /proc/stat, in `MODES` order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks(pub [u64; MODES.len()]);

/// The CPU lines of /proc/stat: the aggregate and each logical CPU by its number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub total: Option<CpuTicks>,
    pub per_cpu: Vec<(u32, CpuTicks)>,
}

/// Parses the `cpu` lines of /proc/stat (user nice system idle iowait irq softirq steal ...).
pub fn parse_stat(text: &str) -> CpuStat {
    let mut out = CpuStat::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        // The aggregate line is `cpu  1 2 3 ...`; per-CPU lines are `cpu7 1 2 3 ...`.
        let (label, values) = rest.split_once(' ').unwrap_or((rest, ""));
        // The first eight numbers (unparseable fields skipped), in a fixed array: no
        // allocation per line.
        let mut nums = [0u64; 8];
        let mut len = 0;
        for v in values
            .split_ascii_whitespace()
            .take(8)
            .filter_map(|f| f.parse().ok())
        {
            if let Some(slot) = nums.get_mut(len) {
                *slot = v;
                len += 1;
            }
        }
        if len < 4 {
            continue;
        }
        let at = |i: usize| nums.get(i).copied().unwrap_or(0);
        let ticks = CpuTicks([at(0), at(1), at(2), at(3), at(4), at(5) + at(6), at(7)]);
        if label.is_empty() {
            out.total = Some(ticks);
        } else if let Ok(n) = label.parse::<u32>() {
            out.per_cpu.push((n, ticks));
        }
    }
    out
}

/// Each mode's share of the time between two readings (they add up to 1); `None` when no time
/// passed (never a made-up 0%). A mode whose counter went back (iowait can, and a CPU that was
/// unplugged restarts from 0) counts as no time rather than as negative time.
pub fn mode_shares(prev: CpuTicks, now: CpuTicks) -> Option<[f64; MODES.len()]> {
    let delta: [u64; MODES.len()] = std::array::from_fn(|i| now.0[i].saturating_sub(prev.0[i]));
    let total: u64 = delta.iter().sum();
    if total == 0 {
        return None;
    }
    let mut out = [0.0; MODES.len()];
    for (share, d) in out.iter_mut().zip(delta) {
        #[allow(clippy::cast_precision_loss)]
        let s = d as f64 / total as f64;
        *share = s;
    }
    Some(out)
}

/// `system.cpu.logical.count`, `system.cpu.time` (per CPU when `per_cpu`, whole host
/// otherwise; `hz` is the kernel's USER_HZ) and the whole host's `system.cpu.utilization`
/// (absent on the first read).
pub fn cpu_points(
    prev: Option<&CpuStat>,
    now: &CpuStat,
    per_cpu: bool,
    hz: f64,
    points: &mut Vec<MetricPoint>,
) {
    let count = u32::try_from(now.per_cpu.len()).unwrap_or(u32::MAX);
    points.push(MetricPoint::new(
        MetricName::SystemCpuLogicalCount,
        Attrs::new(),
        count,
    ));
    let mut time = |attrs: Attrs, ticks: &CpuTicks| {
        for (mode, t) in MODES.iter().zip(ticks.0) {
            #[allow(clippy::cast_precision_loss)]
            let secs = t as f64 / hz;
            let a = attrs.clone().with(AttrKey::CpuMode, *mode);
            points.push(MetricPoint::new(MetricName::SystemCpuTime, a, secs));
        }
    };
    if per_cpu {
        for (n, ticks) in &now.per_cpu {
            time(Attrs::new().with(AttrKey::CpuLogicalNumber, *n), ticks);
        }
    } else if let Some(ticks) = &now.total {
        time(Attrs::new(), ticks);
    }
    if let (Some(a), Some(b)) = (prev.and_then(|p| p.total), now.total)
        && let Some(shares) = mode_shares(a, b)
    {
        for (mode, share) in MODES.iter().zip(shares) {
            let attrs = Attrs::new().with(AttrKey::CpuMode, *mode);
            points.push(MetricPoint::new(
                MetricName::SystemCpuUtilization,
                attrs,
                share,
            ));
        }
    }
}
