//! The last scrub or resilver of a pool, as `zpool status` reports it. OpenZFS keeps one record
//! per pool, the latest scan of either kind: a resilver after a scrub replaces the scrub's
//! record, and the scrub's end is then unknown until the next scrub.
//!
//! OpenZFS 2.3+ gives it as `scan_stats` of `zpool status -j --json-int` (epoch seconds); older
//! versions print a `scan:` line in local time (ctime format, as zpool's own `ctime()` call),
//! which is converted with the host's time zone, the one zpool printed it in.

use serde_json::Value;

use super::status::ScanFunction;

/// How the last scan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanState {
    /// Never scrubbed or resilvered since the pool was created (`scan: none requested`).
    None,
    Scanning,
    Finished,
    Canceled,
}

impl ScanState {
    pub const ALL: [ScanState; 4] = [
        ScanState::None,
        ScanState::Scanning,
        ScanState::Finished,
        ScanState::Canceled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ScanState::None => "none",
            ScanState::Scanning => "scanning",
            ScanState::Finished => "finished",
            ScanState::Canceled => "canceled",
        }
    }
}

/// The pool's scan record. Fields zpool did not print for this state are `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastScan {
    /// `None` only when the state is `None`.
    pub function: Option<ScanFunction>,
    pub state: ScanState,
    /// Unix seconds.
    pub start: Option<i64>,
    /// Unix seconds; finished or canceled scans only.
    pub end: Option<i64>,
    /// Bytes repaired (scrub) or resilvered; exact in JSON, zpool's rounded `18.1M` in text.
    pub repaired: Option<u64>,
    /// Errors the scan could not repair ("with N errors").
    pub errors: Option<u64>,
}

impl LastScan {
    /// A pool never scrubbed or resilvered.
    pub const NONE: LastScan = LastScan {
        function: None,
        state: ScanState::None,
        start: None,
        end: None,
        repaired: None,
        errors: None,
    };
}

fn int(v: Option<&Value>) -> Option<u64> {
    v?.as_u64()
}

/// `scan_stats` of one pool in `zpool status -j --json-int`; a pool without it was never
/// scanned (2.3.2 prints none for such a pool). An unknown function or state gives `None` (nothing is claimed).
pub fn from_json(stats: Option<&Value>) -> Option<LastScan> {
    let Some(stats) = stats else {
        return Some(LastScan::NONE);
    };
    let state = match stats.get("state")?.as_str()? {
        "NONE" => return Some(LastScan::NONE),
        "SCANNING" => ScanState::Scanning,
        "FINISHED" => ScanState::Finished,
        "CANCELED" => ScanState::Canceled,
        _ => return None,
    };
    let function = match stats.get("function")?.as_str()? {
        "SCRUB" => ScanFunction::Scrub,
        "RESILVER" => ScanFunction::Resilver,
        _ => return None,
    };
    let time = |key| {
        int(stats.get(key))
            .filter(|t| *t > 0)
            .and_then(|t| i64::try_from(t).ok())
    };
    let done = state != ScanState::Scanning;
    Some(LastScan {
        function: Some(function),
        state,
        start: time("start_time"),
        end: time("end_time").filter(|_| done),
        repaired: int(stats.get("processed")),
        errors: int(stats.get("errors")).filter(|_| done),
    })
}

/// A local date and time as zpool prints it (`Mon Nov 23 13:52:53 2026`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Civil {
    /// Reads the ctime-style date that ends `text` (weekday, month, day, H:M:S, year).
    pub fn parse_tail(text: &str) -> Option<Civil> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [.., month, day, hms, year] = words.as_slice() else {
            return None;
        };
        let month = MONTHS.iter().position(|m| m == month)?;
        let mut hms = hms.split(':').map(str::parse::<u32>);
        let (Some(Ok(hour)), Some(Ok(minute)), Some(Ok(second)), None) =
            (hms.next(), hms.next(), hms.next(), hms.next())
        else {
            return None;
        };
        let civil = Civil {
            year: year.parse().ok()?,
            month: u32::try_from(month).ok()? + 1,
            day: day.parse().ok()?,
            hour,
            minute,
            second,
        };
        let valid = (1..=31).contains(&civil.day) && hour < 24 && minute < 60 && second < 61;
        valid.then_some(civil)
    }

    /// Seconds since the epoch, taking the fields as UTC (days from civil, H. Hinnant).
    pub fn utc_unix(self) -> i64 {
        let y = self.year - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// Seconds since the epoch, taking the fields as this host's local time (as zpool printed
    /// them): mktime(3) with the daylight-saving flag left to the zone's rules.
    pub fn local_unix(self) -> Option<i64> {
        // SAFETY: an all-zero `tm` is a valid value; mktime reads and normalises only it.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_year = i32::try_from(self.year - 1900).ok()?;
        tm.tm_mon = i32::try_from(self.month).ok()? - 1;
        tm.tm_mday = i32::try_from(self.day).ok()?;
        tm.tm_hour = i32::try_from(self.hour).ok()?;
        tm.tm_min = i32::try_from(self.minute).ok()?;
        tm.tm_sec = i32::try_from(self.second).ok()?;
        tm.tm_isdst = -1;
        // SAFETY: `tm` is a valid, exclusively borrowed struct for the call's duration.
        let t = unsafe { libc::mktime(&raw mut tm) };
        (t != -1).then_some(t)
    }
}

/// A duration as zpool prints it: `00:00:02`, `1 days 02:03:04`, or ZoL 0.6/0.7's `0h12m`.
fn duration_secs(text: &str) -> Option<i64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (days, clock) = match words.as_slice() {
        [clock] => (0, *clock),
        [days, "days" | "day", clock] => (days.parse::<i64>().ok()?, *clock),
        _ => return None,
    };
    if let Some((h, rest)) = clock.split_once('h') {
        let m = rest.strip_suffix('m')?;
        return Some(days * 86_400 + h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60);
    }
    let parts: Option<Vec<i64>> = clock.split(':').map(|p| p.parse().ok()).collect();
    match parts?.as_slice() {
        [h, m, s] => Some(days * 86_400 + h * 3600 + m * 60 + s),
        _ => None,
    }
}

/// zpool's rounded sizes (`0B`, `18.1M`, `1.50G`, ZoL's bare `0`), in bytes (powers of 1024).
fn size_bytes(text: &str) -> Option<u64> {
    let (digits, shift) = match text.chars().last()? {
        'B' => (&text[..text.len() - 1], 0),
        'K' => (&text[..text.len() - 1], 10),
        'M' => (&text[..text.len() - 1], 20),
        'G' => (&text[..text.len() - 1], 30),
        'T' => (&text[..text.len() - 1], 40),
        'P' => (&text[..text.len() - 1], 50),
        _ => (text, 0),
    };
    let v: f64 = digits.parse().ok()?;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    (v.is_finite() && v >= 0.0).then(|| (v * (1u64 << shift) as f64).round() as u64)
}

/// The `scan:` line's text (after `scan:`); `local` turns zpool's local dates into Unix seconds.
/// `None` when the line is none of the known forms.
pub fn from_text(rest: &str, local: impl Fn(Civil) -> Option<i64>) -> Option<LastScan> {
    let rest = rest.trim();
    if rest.starts_with("none requested") {
        return Some(LastScan::NONE);
    }
    let (function, tail) = if let Some(t) = rest.strip_prefix("scrub ") {
        (ScanFunction::Scrub, t)
    } else if let Some(t) = rest.strip_prefix("resilver ") {
        (ScanFunction::Resilver, t)
    } else if let Some(t) = rest.strip_prefix("resilvered ") {
        // "resilvered 1.2G in ..." (the finished form has no separate verb).
        (ScanFunction::Resilver, t)
    } else {
        return None;
    };
    let at = |s: &str| Civil::parse_tail(s).and_then(&local);
    let scan = |state| LastScan {
        function: Some(function),
        state,
        ..LastScan::NONE
    };
    if let Some(since) = tail
        .strip_prefix("in progress since ")
        .or_else(|| tail.strip_prefix("paused since "))
    {
        // A paused scrub's start is on the next line ("scrub started on ..."), see `started_on`.
        let start = tail.starts_with("in progress").then(|| at(since)).flatten();
        return Some(LastScan {
            start,
            ..scan(ScanState::Scanning)
        });
    }
    if let Some(on) = tail.strip_prefix("canceled on ") {
        return Some(LastScan {
            end: at(on),
            ..scan(ScanState::Canceled)
        });
    }
    // "<repaired|resilvered> X in DURATION with N errors on DATE"; a resilver's line begins
    // with its size, a scrub's with "repaired".
    let tail = tail.strip_prefix("repaired ").unwrap_or(tail);
    let (size, tail) = tail.split_once(" in ")?;
    let (took, tail) = tail.split_once(" with ")?;
    let (errors, on) = tail.split_once(" errors on ")?;
    let end = at(on)?;
    Some(LastScan {
        start: duration_secs(took).map(|d| end - d),
        end: Some(end),
        repaired: size_bytes(size.trim()),
        errors: errors.trim().parse().ok(),
        ..scan(ScanState::Finished)
    })
}

/// A paused scrub's continuation line `scrub started on DATE`: its start.
pub fn started_on(line: &str, local: impl Fn(Civil) -> Option<i64>) -> Option<i64> {
    let on = line.trim().strip_prefix("scrub started on ")?;
    Civil::parse_tail(on).and_then(local)
}

#[cfg(test)]
mod tests;
