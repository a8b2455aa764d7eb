//! `[zfs]`: the `zpool` program, the iostat child's interval, and how often pools are listed.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fields::{FieldError, check_duration};

/// ZFS pools through the `zpool` command.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZfsConfig {
    pub enabled: bool,
    /// The `zpool` program (a name looked up in PATH, or a path).
    pub zpool_command: PathBuf,
    /// Interval of the long-lived `zpool iostat` child.
    #[serde(with = "humantime_serde")]
    pub iostat_interval: Duration,
    /// How often the one-shot `zpool list` and `zpool status` run (capacity, health, errors,
    /// scan). Between runs their last result is reported again; a pool that appears in or
    /// leaves the iostat stream triggers a run at once. `0s`: every tick.
    #[serde(with = "humantime_serde")]
    pub pool_interval: Duration,
    /// Deadline of every one-shot `zpool` call, and the longest the first tick waits for the
    /// iostat child's first report.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
}

impl Default for ZfsConfig {
    fn default() -> Self {
        ZfsConfig {
            enabled: true,
            zpool_command: PathBuf::from("zpool"),
            iostat_interval: Duration::from_secs(5),
            pool_interval: Duration::from_secs(10),
            command_timeout: Duration::from_secs(3),
        }
    }
}

impl ZfsConfig {
    /// Checks relative to `[zfs]`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let hour = Duration::from_secs(3600);
        if self.iostat_interval < Duration::from_secs(1) {
            errors.push(FieldError::new(
                "iostat_interval",
                "must be at least 1s (zpool iostat takes whole seconds)",
            ));
        } else {
            check_duration(
                &mut errors,
                "iostat_interval",
                self.iostat_interval,
                Duration::ZERO,
                hour,
            );
        }
        check_duration(
            &mut errors,
            "pool_interval",
            self.pool_interval,
            Duration::ZERO,
            hour,
        );
        // A zero deadline fails every call; past 10 minutes a hung zpool is not noticed.
        check_duration(
            &mut errors,
            "command_timeout",
            self.command_timeout,
            Duration::from_millis(100),
            Duration::from_secs(600),
        );
        errors
    }
}
