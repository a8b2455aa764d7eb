//! Pure parsers for `zpool status`: error counts summed over each pool's vdevs and the progress
//! of a running (or paused) scrub or resilver. `zpool status -j --json-int` (OpenZFS 2.3+) is
//! read as JSON; older versions print text, read from the `config:` table and the `scan:` lines.

use serde_json::Value;

use super::parse::ParseError;
use super::scan::{self, Civil, LastScan};

/// Which kind of scan is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFunction {
    Scrub,
    Resilver,
}

impl ScanFunction {
    pub const fn as_str(self) -> &'static str {
        match self {
            ScanFunction::Scrub => "scrub",
            ScanFunction::Resilver => "resilver",
        }
    }
}

/// A scan that has started and not finished (a paused scrub counts: it still has work left).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scan {
    pub function: ScanFunction,
    /// 0..1, as zpool's own "% done".
    pub progress: f64,
    pub paused: bool,
}

/// Errors and scan state of one pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStatus {
    pub name: String,
    pub read_errors: u64,
    pub write_errors: u64,
    pub checksum_errors: u64,
    pub scan: Option<Scan>,
    /// The last scrub or resilver (running, finished or canceled), when zpool's form is known.
    pub last_scan: Option<LastScan>,
}

fn num(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        // Without --json-int numbers are strings; accept them too.
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Adds the error counts of every vdev in a `vdevs`-style map, recursively.
fn sum_vdevs(map: &serde_json::Map<String, Value>, out: &mut PoolStatus) {
    for vdev in map.values() {
        out.read_errors += num(vdev.get("read_errors"));
        out.write_errors += num(vdev.get("write_errors"));
        out.checksum_errors += num(vdev.get("checksum_errors"));
        if let Some(Value::Object(children)) = vdev.get("vdevs") {
            sum_vdevs(children, out);
        }
    }
}

fn json_scan(stats: &Value) -> Option<Scan> {
    if stats.get("state")?.as_str()? != "SCANNING" {
        return None;
    }
    let function = match stats.get("function")?.as_str()? {
        "SCRUB" => ScanFunction::Scrub,
        "RESILVER" => ScanFunction::Resilver,
        _ => return None,
    };
    // zpool status prints issued / (to_examine - skipped) as "% done".
    let total = num(stats.get("to_examine")).saturating_sub(num(stats.get("skipped")));
    let issued = num(stats.get("issued"));
    #[allow(clippy::cast_precision_loss)]
    let progress = if total == 0 {
        0.0
    } else {
        (issued as f64 / total as f64).clamp(0.0, 1.0)
    };
    Some(Scan {
        function,
        progress,
        paused: num(stats.get("scrub_pause")) != 0,
    })
}

/// Parses `zpool status -j --json-int` (OpenZFS 2.3+). Error counts are summed over every vdev
/// of every class (the pool's root vdev, interior vdevs, leaves, logs, cache, spares, special).
pub fn parse_status_json(text: &str) -> Result<Vec<PoolStatus>, ParseError> {
    const WHAT: &str = "zpool status -j";
    let root: Value = serde_json::from_str(text).map_err(|e| {
        let line = e.line();
        let bad = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
        ParseError::new(WHAT, line, bad, format!("invalid JSON: {e}"))
    })?;
    let Some(Value::Object(pools)) = root.get("pools") else {
        // `zpool status -j` with no pools prints no "pools" key at all.
        if root.get("output_version").is_some() {
            return Ok(Vec::new());
        }
        return Err(ParseError::new(WHAT, 1, "", "no \"pools\" object"));
    };
    let mut out = Vec::with_capacity(pools.len());
    for (key, pool) in pools {
        let name = pool.get("name").and_then(Value::as_str).unwrap_or(key);
        let mut status = PoolStatus {
            name: name.to_owned(),
            read_errors: 0,
            write_errors: 0,
            checksum_errors: 0,
            scan: pool.get("scan_stats").and_then(json_scan),
            last_scan: scan::from_json(pool.get("scan_stats")),
        };
        if let Value::Object(fields) = pool {
            for (field, value) in fields {
                // "vdevs" holds the root vdev; "logs", "l2cache", "spares", "special", "dedup"
                // hold the other classes, each a map of vdevs.
                if let (true, Value::Object(map)) = (is_vdev_map(field), value) {
                    sum_vdevs(map, &mut status);
                }
            }
        }
        out.push(status);
    }
    Ok(out)
}

fn is_vdev_map(field: &str) -> bool {
    matches!(
        field,
        "vdevs" | "logs" | "l2cache" | "spares" | "special" | "dedup"
    )
}

/// A count from the text table: exact with `-p`, `1.2K` style otherwise.
fn text_count(field: &str) -> Option<u64> {
    if let Ok(v) = field.parse::<u64>() {
        return Some(v);
    }
    let (digits, mult) = match field.chars().last()? {
        'K' => (&field[..field.len() - 1], 1e3),
        'M' => (&field[..field.len() - 1], 1e6),
        'G' => (&field[..field.len() - 1], 1e9),
        'T' => (&field[..field.len() - 1], 1e12),
        _ => return None,
    };
    let v: f64 = digits.parse().ok()?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (v.is_finite() && v >= 0.0).then(|| (v * mult).round() as u64)
}

/// Reads "NN.NN% done" from a scan line.
fn percent_done(line: &str) -> Option<f64> {
    let end = line.find("% done")?;
    let head = &line[..end];
    let start = head
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let v: f64 = head[start..].parse().ok()?;
    v.is_finite().then(|| (v / 100.0).clamp(0.0, 1.0))
}

/// A `scan:` line: the scrub or resilver in progress (or paused), if any, and its progress
/// when this line gives it (ZoL 0.6; 0.7 put everything on the continuation lines).
fn scan_started(rest: &str, pool: &mut PoolStatus) -> Option<(ScanFunction, bool)> {
    let rest = rest.trim();
    let function = if rest.starts_with("scrub") {
        ScanFunction::Scrub
    } else if rest.starts_with("resilver") {
        ScanFunction::Resilver
    } else {
        return None;
    };
    if !(rest.contains("in progress") || rest.contains("paused")) {
        return None;
    }
    let paused = rest.contains("paused");
    if let Some(progress) = percent_done(rest) {
        pool.scan = Some(Scan {
            function,
            progress,
            paused,
        });
    }
    Some((function, paused))
}

/// Adds a `config:` row's READ/WRITE/CKSUM to the pool's counts; `false` when they are not
/// numbers. Header, class lines (`logs`, `cache`, `spares`) and spare rows (`sdb AVAIL`) have
/// fewer than 5 fields and are skipped; notes after the counts ("was /dev/sdx") are ignored.
fn add_config_row(trimmed: &str, pool: &mut PoolStatus) -> bool {
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if fields.len() < 5 || fields[0] == "NAME" {
        return true;
    }
    let counts: Option<Vec<u64>> = fields[2..5].iter().map(|f| text_count(f)).collect();
    let Some(counts) = counts else {
        return false;
    };
    pool.read_errors += counts[0];
    pool.write_errors += counts[1];
    pool.checksum_errors += counts[2];
    true
}

/// Parses the text of `zpool status [-p]` (every OpenZFS version). Per pool: the sum of the
/// READ/WRITE/CKSUM columns over every row of the `config:` table, the scan in progress, and
/// the last scan's record with its dates in this host's local time (as zpool printed them).
pub fn parse_status_text(text: &str) -> Result<Vec<PoolStatus>, ParseError> {
    parse_status_text_in(text, Civil::local_unix)
}

/// `parse_status_text` with the dates read by `local` (tests pass UTC).
pub fn parse_status_text_in(
    text: &str,
    local: impl Fn(Civil) -> Option<i64> + Copy,
) -> Result<Vec<PoolStatus>, ParseError> {
    const WHAT: &str = "zpool status";
    let mut out: Vec<PoolStatus> = Vec::new();
    // Where we are inside the current pool's block.
    let mut in_config = false;
    let mut in_scan: Option<(ScanFunction, bool)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("pool:") {
            let name = name.trim();
            if name.is_empty() {
                return Err(ParseError::new(WHAT, n, line, "pool line without a name"));
            }
            out.push(PoolStatus {
                name: name.to_owned(),
                read_errors: 0,
                write_errors: 0,
                checksum_errors: 0,
                scan: None,
                // OpenZFS prints no `scan:` line for a pool never scanned (older: `none requested`).
                last_scan: Some(LastScan::NONE),
            });
            in_config = false;
            in_scan = None;
            continue;
        }
        let Some(pool) = out.last_mut() else {
            continue;
        };
        // A `key:` line at the start (after up to a few spaces) ends the previous section.
        let is_key = !line.starts_with('\t') && trimmed.contains(':');
        if is_key {
            in_config = trimmed == "config:";
            if let Some(rest) = trimmed.strip_prefix("scan:") {
                pool.last_scan = scan::from_text(rest, local);
            }
            in_scan = trimmed
                .strip_prefix("scan:")
                .and_then(|rest| scan_started(rest, pool));
            continue;
        }
        if let Some((function, paused)) = in_scan {
            if let (Some(start), Some(last)) =
                (scan::started_on(trimmed, local), pool.last_scan.as_mut())
            {
                last.start = Some(start);
            }
            if let Some(progress) = percent_done(trimmed) {
                pool.scan = Some(Scan {
                    function,
                    progress,
                    paused,
                });
            }
            continue;
        }
        if in_config && !add_config_row(trimmed, pool) {
            return Err(ParseError::new(
                WHAT,
                n,
                line,
                "expected NAME STATE READ WRITE CKSUM with numeric counts",
            ));
        }
    }
    Ok(out)
}
