//! `[tuner.zfs_arc]`: whether and how far the agent may lower the ZFS ARC's `zfs_arc_max` so that
//! Ollama gets the host memory it needs. Part of the product's interface.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fields::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArcMode {
    /// Not looked at; a value the agent set earlier is restored.
    Off,
    /// Decide, log and journal what it would set; never write the parameter.
    Observe,
    /// Write `zfs_arc_max` when a change is due; restore the boot value at stop.
    Apply,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZfsArcConfig {
    pub mode: ArcMode,
    /// MiB the ARC keeps above `zfs_arc_min` whatever Ollama needs.
    pub floor_mib: u64,
    /// The operator's bound: `zfs_arc_max` is never set below this many MiB.
    pub min_max_mib: u64,
    /// MiB of MemAvailable the host keeps beyond what Ollama still has to load.
    pub reserve_mib: u64,
    /// Hysteresis: a new value only when the wanted one moved by at least this many MiB (the
    /// return to the boot value excepted).
    pub step_mib: u64,
    /// At most one change per this long.
    #[serde(with = "humantime_serde")]
    pub hold: Duration,
}

impl Default for ZfsArcConfig {
    fn default() -> Self {
        ZfsArcConfig {
            mode: ArcMode::Off,
            // Above c_min the ARC still caches the pool's metadata and the hot blocks; OpenZFS's
            // own c_min (1/32 of RAM, at least 32 MiB) is sized for the metadata alone.
            floor_mib: 256,
            min_max_mib: 1024,
            reserve_mib: 1024,
            // Smaller moves are noise in MemAvailable (page cache, a burst of allocations).
            step_mib: 256,
            hold: Duration::from_secs(60),
        }
    }
}

impl ZfsArcConfig {
    /// Checks relative to `[tuner.zfs_arc]`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.step_mib == 0 {
            errors.push(FieldError::new(
                "step_mib",
                "must be at least 1 (0 would change the parameter on every tick)",
            ));
        }
        if self.hold.is_zero() {
            errors.push(FieldError::new("hold", "must be longer than 0s"));
        }
        // zfs_arc_max is a u64 of bytes: a bound that overflows it is a typo.
        for (field, v) in [
            ("floor_mib", self.floor_mib),
            ("min_max_mib", self.min_max_mib),
            ("reserve_mib", self.reserve_mib),
            ("step_mib", self.step_mib),
        ] {
            if v > MAX_MIB {
                errors.push(FieldError::new(field, format!("must be at most {MAX_MIB}")));
            }
        }
        errors
    }

    pub fn floor(&self) -> u64 {
        self.floor_mib << 20
    }
    pub fn min_max(&self) -> u64 {
        self.min_max_mib << 20
    }
    pub fn reserve(&self) -> u64 {
        self.reserve_mib << 20
    }
    pub fn step(&self) -> u64 {
        self.step_mib << 20
    }
}

/// 1 PiB in MiB: more RAM than any host has, far from overflowing bytes.
const MAX_MIB: u64 = 1 << 30;
