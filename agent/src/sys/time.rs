//! Clock readings in the units the agent records: wall-clock milliseconds since the Unix epoch
//! (journal timestamps, sample times, the cooldown that must survive a restart) and durations in
//! milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch now; 0 if the clock is before 1970.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A wall-clock time in nanoseconds since the Unix epoch (OTLP's timestamps); 0 before 1970,
/// saturating far in the future.
pub(crate) fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A duration in whole milliseconds (saturating).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration in milliseconds with the fraction kept, for timings.
pub(crate) fn millis_f64(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_durations() {
        assert_eq!(millis(Duration::from_micros(2_500)), 2);
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert!((millis_f64(Duration::from_micros(2_500)) - 2.5).abs() < 1e-9);
        assert!(wall_ms() > 1_600_000_000_000);
    }
}
