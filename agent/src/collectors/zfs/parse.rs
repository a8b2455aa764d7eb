//! Pure parsers for the tab-separated output of `zpool list` and `zpool iostat`, and for
//! `zpool version`. No I/O: each takes the command's stdout (or one line of it) and returns typed
//! rows or a `ParseError` that names the line. The quirks they survive are those of genuine
//! OpenZFS 2.1 and 2.3 output (tests/fixtures/zfs/): vdev rows of `zpool list -v -o ...` ignore
//! `-o`, class lines (`logs`, `cache`, ...) are space-padded even with `-H`, and `-` stands for
//! "none" or zero depending on the column.

/// A line that does not have the shape its command prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} line {line}: {reason}: {text:?}")]
pub struct ParseError {
    /// The command the text came from (`zpool list`, `zpool iostat`, `zpool status`).
    pub what: &'static str,
    /// 1-based line number within that output.
    pub line: usize,
    pub reason: String,
    /// The offending line, cut to 120 characters.
    pub text: String,
}

impl ParseError {
    pub fn new(what: &'static str, line: usize, text: &str, reason: impl Into<String>) -> Self {
        ParseError {
            what,
            line,
            reason: reason.into(),
            text: text.chars().take(120).collect(),
        }
    }
}

/// One pool of `zpool list -Hp -v -o name,size,alloc,free,frag,cap,dedup,health`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRow {
    pub name: String,
    /// `None` when zpool prints `-` (an UNAVAIL pool has only name and health).
    pub size: Option<u64>,
    pub alloc: Option<u64>,
    pub free: Option<u64>,
    /// Free-space fragmentation in percent; `None` for `-` (not computable).
    pub frag_percent: Option<u64>,
    pub dedup: Option<f64>,
    pub health: String,
    pub vdevs: Vec<VdevRow>,
}

/// One vdev row (any depth, any class) with its own health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdevRow {
    pub name: String,
    pub health: String,
}

/// The columns the collector asks `zpool list` for (pool rows honour them; vdev rows do not).
pub const LIST_ARGS: [&str; 5] = [
    "list",
    "-Hp",
    "-v",
    "-o",
    "name,size,alloc,free,frag,cap,dedup,health",
];

/// `-` means "no value" in `zpool list`.
fn opt_u64(field: &str) -> Result<Option<u64>, String> {
    if field == "-" {
        return Ok(None);
    }
    field
        .parse::<u64>()
        .map(Some)
        .map_err(|_| format!("{field:?} is not an integer"))
}

/// `1.00` with `-p`; legacy FreeBSD ZFS printed `1.83x` even with `-p`.
fn opt_ratio(field: &str) -> Result<Option<f64>, String> {
    if field == "-" {
        return Ok(None);
    }
    let digits = field.strip_suffix('x').unwrap_or(field);
    match digits.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(format!("{field:?} is not a ratio")),
    }
}

/// Parses `zpool list -Hp -v -o name,size,alloc,free,frag,cap,dedup,health`.
///
/// Pool rows have the 8 requested fields. Vdev rows start with a TAB and carry zpool's fixed vdev
/// column set instead (11 fields: empty, name, size, alloc, free, ckpoint, expandsz, frag, cap,
/// dedup, health); only their name and health are used. Lines without a TAB are class headers
/// (`logs`, `cache`, `spare`, `special`, `dedup`) and are skipped.
pub fn parse_list(text: &str) -> Result<Vec<PoolRow>, ParseError> {
    const WHAT: &str = "zpool list";
    let mut pools: Vec<PoolRow> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || !line.contains('\t') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields[0].is_empty() {
            // A vdev row: its health is the last field, whatever zpool's version prints between.
            if fields.len() < 3 {
                return Err(ParseError::new(
                    WHAT,
                    n,
                    line,
                    "vdev row has too few fields",
                ));
            }
            let Some(pool) = pools.last_mut() else {
                return Err(ParseError::new(WHAT, n, line, "vdev row before any pool"));
            };
            let name = fields[1];
            let health = fields[fields.len() - 1];
            if name.is_empty() || health.is_empty() {
                return Err(ParseError::new(
                    WHAT,
                    n,
                    line,
                    "vdev row without name or health",
                ));
            }
            if !pool.vdevs.iter().any(|v| v.name == name) {
                pool.vdevs.push(VdevRow {
                    name: name.to_owned(),
                    health: health.to_owned(),
                });
            }
            continue;
        }
        if fields.len() != 8 {
            return Err(ParseError::new(
                WHAT,
                n,
                line,
                format!("expected 8 tab-separated fields, found {}", fields.len()),
            ));
        }
        let bad = |reason: String| ParseError::new(WHAT, n, line, reason);
        let health = fields[7];
        if health.is_empty() || health.contains(char::is_whitespace) {
            return Err(bad(format!("{health:?} is not a health state")));
        }
        pools.push(PoolRow {
            name: fields[0].to_owned(),
            size: opt_u64(fields[1]).map_err(bad)?,
            alloc: opt_u64(fields[2]).map_err(bad)?,
            free: opt_u64(fields[3]).map_err(bad)?,
            // Legacy FreeBSD ZFS prints `8%` even with -p.
            frag_percent: opt_u64(fields[4].trim_end_matches('%')).map_err(bad)?,
            dedup: opt_ratio(fields[6]).map_err(bad)?,
            health: health.to_owned(),
            vdevs: Vec::new(),
        });
    }
    Ok(pools)
}

/// Waits in nanoseconds from one `zpool iostat -l` row. `-` (zpool's way of printing 0) is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Waits {
    pub total_read: u64,
    pub total_write: u64,
    pub disk_read: u64,
    pub disk_write: u64,
    pub syncq_read: u64,
    pub syncq_write: u64,
    pub asyncq_read: u64,
    pub asyncq_write: u64,
    pub scrub: u64,
    pub trim: u64,
    /// `None` on OpenZFS 2.0/2.1, which has no rebuild column.
    pub rebuild: Option<u64>,
}

/// One pool row of `zpool iostat -Hpl`: rates per second over the interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IostatRow {
    pub name: String,
    pub read_ops: u64,
    pub write_ops: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub waits: Waits,
}

/// Parses one row of `zpool iostat -Hpl`: the name and 16 values (OpenZFS 2.0/2.1) or 17
/// (2.2+, with rebuild wait). Every value may be `-`, which zpool prints for 0.
pub fn parse_iostat_line(line: &str, n: usize) -> Result<IostatRow, ParseError> {
    const WHAT: &str = "zpool iostat";
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() != 17 && fields.len() != 18 {
        return Err(ParseError::new(
            WHAT,
            n,
            line,
            format!(
                "expected 17 (OpenZFS 2.0/2.1) or 18 (2.2+) tab-separated fields, found {}",
                fields.len()
            ),
        ));
    }
    if fields[0].is_empty() {
        return Err(ParseError::new(WHAT, n, line, "row without a pool name"));
    }
    let mut values = [0u64; 17];
    for (slot, field) in values.iter_mut().zip(&fields[1..]) {
        *slot = match *field {
            "-" => 0,
            f => f
                .parse()
                .map_err(|_| ParseError::new(WHAT, n, line, format!("{f:?} is not an integer")))?,
        };
    }
    // values: alloc, free, ops r/w, bytes r/w, total r/w, disk r/w, syncq r/w, asyncq r/w,
    // scrub, trim[, rebuild]
    Ok(IostatRow {
        name: fields[0].to_owned(),
        read_ops: values[2],
        write_ops: values[3],
        read_bytes: values[4],
        write_bytes: values[5],
        waits: Waits {
            total_read: values[6],
            total_write: values[7],
            disk_read: values[8],
            disk_write: values[9],
            syncq_read: values[10],
            syncq_write: values[11],
            asyncq_read: values[12],
            asyncq_write: values[13],
            scrub: values[14],
            trim: values[15],
            rebuild: (fields.len() == 18).then_some(values[16]),
        },
    })
}

/// Parses a whole `zpool iostat -Hpl` report (no `-v`): one row per pool; empty lines skipped.
pub fn parse_iostat(text: &str) -> Result<Vec<IostatRow>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_iostat_line(l, i + 1))
        .collect()
}

/// An OpenZFS version, from `zpool version` (`zfs-2.3.2-2~bpo12+2`, `zfs-kmod-2.1.11-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ZfsVersion {
    pub major: u32,
    pub minor: u32,
}

impl ZfsVersion {
    /// `zpool status -j --json-int` exists from OpenZFS 2.3.0.
    pub fn has_status_json(self) -> bool {
        self >= ZfsVersion { major: 2, minor: 3 }
    }
}

impl std::fmt::Display for ZfsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Reads the version from `zpool version` output. The userland line wins over the kernel line
/// (`zfs-kmod-`) because `-j` is parsed by the `zpool` program; `None` when neither parses.
pub fn parse_version(text: &str) -> Option<ZfsVersion> {
    let parse = |rest: &str| {
        let mut parts = rest.split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(ZfsVersion { major, minor })
    };
    let mut user = None;
    let mut kernel = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("zfs-kmod-") {
            kernel = kernel.or_else(|| parse(rest));
        } else if let Some(rest) = line.strip_prefix("zfs-") {
            user = user.or_else(|| parse(rest));
        }
    }
    user.or(kernel)
}
