//! `[gpu]`: NVML's location, per-process memory, and the retry schedule while NVML is missing.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fields::{FieldError, check_duration};

/// NVIDIA GPUs through NVML.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    pub enabled: bool,
    /// Path of libnvidia-ml; unset tries `libnvidia-ml.so.1`, then the WSL2 location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvml_library: Option<PathBuf>,
    /// Report GPU memory per process (joined to /proc for the process name).
    pub processes: bool,
    /// First retry after NVML failed to load; doubles up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            enabled: true,
            nvml_library: None,
            processes: true,
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(600),
        }
    }
}

impl GpuConfig {
    /// Checks relative to `[gpu]`: a zero retry would spin on a missing driver.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let (min, day) = (Duration::from_millis(100), Duration::from_secs(86_400));
        check_duration(&mut errors, "retry_min", self.retry_min, min, day);
        check_duration(&mut errors, "retry_max", self.retry_max, min, day);
        if self.retry_min > self.retry_max {
            errors.push(FieldError::new(
                "retry_max",
                "must not be shorter than retry_min",
            ));
        }
        errors
    }
}
