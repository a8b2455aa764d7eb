//! `[host]`: where the host collector reads the proc filesystem, and how much it reports.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// CPU, memory, swap, pressure.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    pub enabled: bool,
    /// Root of the proc filesystem (`/host/proc` in a container).
    pub proc_root: PathBuf,
    /// Root of the sys filesystem (`/host/sys` in a container): the ZFS module's parameters.
    pub sys_root: PathBuf,
    /// Report utilisation per logical CPU as well as for the whole host.
    pub per_cpu: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            enabled: true,
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            per_cpu: true,
        }
    }
}
