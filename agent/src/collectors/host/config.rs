//! `[host]`: where the host collector reads the proc filesystem, and how much it reports.
//! `[host.disk]`, `[host.filesystem]` and `[host.network]` choose the devices, mounts and
//! interfaces; their default filters are node_exporter's (each default says which flag).

use std::path::PathBuf;
use std::time::Duration;

use regex_lite::Regex;
use serde::{Deserialize, Serialize};

use crate::fields::{FieldError, check_duration, under};

/// CPU, memory, swap, pressure, disks, filesystems, network.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    pub enabled: bool,
    /// Root of the proc filesystem (`/host/proc` in a container).
    pub proc_root: PathBuf,
    /// Where the host's `/` is visible (`/host` in a container), as node_exporter's
    /// `--path.rootfs`: filesystems are stat'ed below it, and reported by their own mount point.
    pub root_fs: PathBuf,
    /// Root of the sys filesystem (`/host/sys` in a container): the ZFS module's parameters.
    pub sys_root: PathBuf,
    /// Report `system.cpu.time` per logical CPU (`cpu.logical_number`) rather than for the
    /// whole host; `system.cpu.utilization` is the whole host's either way.
    pub per_cpu: bool,
    pub disk: DiskConfig,
    pub filesystem: FilesystemConfig,
    pub network: NetworkConfig,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            enabled: true,
            proc_root: PathBuf::from("/proc"),
            root_fs: PathBuf::from("/"),
            sys_root: PathBuf::from("/sys"),
            per_cpu: true,
            disk: DiskConfig::default(),
            filesystem: FilesystemConfig::default(),
            network: NetworkConfig::default(),
        }
    }
}

impl HostConfig {
    /// Checks relative to `[host]`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !self.root_fs.is_absolute() {
            errors.push(FieldError::new("root_fs", "must be an absolute path"));
        }
        let mut disk = Vec::new();
        check_regex(&mut disk, "device_exclude", &self.disk.device_exclude);
        errors.extend(under("disk", disk));
        let mut fs = Vec::new();
        check_regex(
            &mut fs,
            "fs_types_exclude",
            &self.filesystem.fs_types_exclude,
        );
        check_regex(
            &mut fs,
            "mount_points_exclude",
            &self.filesystem.mount_points_exclude,
        );
        // Below 10ms a healthy local disk can miss it; past 30s a dead NFS mount is noticed
        // too late to be worth a deadline.
        check_duration(
            &mut fs,
            "stat_timeout",
            self.filesystem.stat_timeout,
            Duration::from_millis(10),
            Duration::from_secs(30),
        );
        if !(1..=MAX_MOUNTS_LIMIT).contains(&self.filesystem.max_mounts) {
            fs.push(FieldError::new(
                "max_mounts",
                format!("must be between 1 and {MAX_MOUNTS_LIMIT}"),
            ));
        }
        errors.extend(under("filesystem", fs));
        let mut net = Vec::new();
        check_regex(&mut net, "device_exclude", &self.network.device_exclude);
        errors.extend(under("network", net));
        errors
    }
}

/// Upper bound of `max_mounts`: each mount whose stat hangs holds one thread.
pub const MAX_MOUNTS_LIMIT: usize = 100_000;

/// Block devices from `<proc_root>/diskstats`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    pub enabled: bool,
    /// Also report partitions (`sda1`, `nvme0n1p2`, `mmcblk0p1`); whole disks, md and dm
    /// devices are always reported.
    pub partitions: bool,
    /// Devices not reported (a regular expression over the name). Together with
    /// `partitions = false` this is node_exporter's default `--collector.diskstats.device-exclude`
    /// (`^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`), split in two.
    pub device_exclude: String,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            enabled: true,
            partitions: false,
            device_exclude: r"^(z?ram|loop|fd)\d+$".to_owned(),
        }
    }
}

/// Mounted filesystems from `<proc_root>/1/mountinfo` (`self/mountinfo` as a fallback), measured by statvfs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemConfig {
    pub enabled: bool,
    /// Filesystem types not reported: node_exporter's default
    /// `--collector.filesystem.fs-types-exclude` (filesystem_linux.go, v1.8), pseudo and
    /// read-only image filesystems. ZFS datasets are reported.
    pub fs_types_exclude: String,
    /// Mount points not reported: node_exporter's default
    /// `--collector.filesystem.mount-points-exclude` (upstream, not Debian's, which also
    /// drops /run, /mnt and /media).
    pub mount_points_exclude: String,
    /// Longest one statvfs may take. A mount whose stat is still outstanding (a dead NFS
    /// server) is reported stale and not stat'ed again until that call returns.
    #[serde(with = "humantime_serde")]
    pub stat_timeout: Duration,
    /// Mounts read from mountinfo at most (a host with thousands of container mounts).
    pub max_mounts: usize,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        FilesystemConfig {
            enabled: true,
            fs_types_exclude: "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|erofs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$".to_owned(),
            mount_points_exclude: "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)".to_owned(),
            stat_timeout: Duration::from_secs(1),
            max_mounts: 4096,
        }
    }
}

/// Interfaces from `<proc_root>/net/dev`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    pub enabled: bool,
    /// Interfaces not reported (a regular expression over the name): loopback, and the
    /// per-container ends that come and go with every pod (veth, Calico's cali, LXD's lxc).
    /// node_exporter's default `--collector.netdev.device-exclude` is empty (Debian's: `^lo$`).
    pub device_exclude: String,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            enabled: true,
            device_exclude: "^(lo|veth.*|cali.*|lxc.*)$".to_owned(),
        }
    }
}

/// Pushes an error naming `field` when `pattern` is not one regex-lite compiles; its one-line
/// reason says what (an unclosed group, `\p{..}` classes, look-around).
fn check_regex(errors: &mut Vec<FieldError>, field: &str, pattern: &str) {
    if let Err(e) = Regex::new(pattern) {
        errors.push(FieldError::new(
            field,
            format!("not a regular expression: {e}"),
        ));
    }
}

/// A validated filter: `None` for an empty pattern (nothing excluded).
pub fn compile(pattern: &str) -> Option<Regex> {
    if pattern.is_empty() {
        return None;
    }
    // The config was validated; a pattern that still fails excludes nothing rather than all.
    Regex::new(pattern).ok()
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
