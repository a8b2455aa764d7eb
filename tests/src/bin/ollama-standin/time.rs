//! Time formats without a date crate: Go's RFC3339Nano (as `/api/ps` writes `expires_at` when the
//! server runs with TZ=UTC) and the HTTP `Date` header.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// `2026-06-28T11:22:51.358551Z`: nanoseconds since the epoch, trailing zeros of the fraction
/// dropped (and the dot, when the fraction is zero), as Go's `time.RFC3339Nano`.
pub fn rfc3339_nano_utc(ns: i128) -> String {
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
    let frac = ns.rem_euclid(1_000_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// `Mon, 23 Nov 2026 17:02:21 GMT` (RFC 7231 IMF-fixdate).
pub fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let t = secs.rem_euclid(86_400);
    let wd = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let mon = MONTHS[usize::try_from(mo.saturating_sub(1)).unwrap_or(0).min(11)];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        // 2319-01-15T12:04:23.265762103Z is a real expires_at (infinite keep-alive).
        let secs: i128 = 11_014_574_663;
        assert_eq!(
            rfc3339_nano_utc(secs * 1_000_000_000 + 265_762_103),
            "2319-01-15T12:04:23.265762103Z"
        );
        assert_eq!(rfc3339_nano_utc(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(rfc3339_nano_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(http_date(1_795_453_341), "Mon, 23 Nov 2026 17:02:21 GMT");
    }
}
