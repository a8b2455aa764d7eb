//! ZFS pools through OpenZFS's own `zpool` command (docs/dependencies.md says why not libzetta).
//!
//! Every `pool_interval`: `zpool list -Hp -v -o ...` (capacity, health, vdev health) and
//! `zpool status` (`-j --json-int` on OpenZFS 2.3+, text before) as one-shot calls under
//! `command_timeout`; between runs their last result is reported again, because a fork and
//! exec of zpool costs more than the rest of a tick together. The pool state is read each tick
//! from the kernel's kstat where it exists (kstat.rs), without a fork. IOPS, bandwidth and latency come
//! every tick from one long-lived `zpool iostat` child (iostat.rs), whose pool set also triggers
//! an early run when a pool is imported or exported.
//! No `zpool` or no kernel module makes the collector `unavailable` with the reason, logged once
//! per change, never once per tick.
//!
//! `[zfs]` (`config`) is always built, so a config naming ZFS reads the same with the `zfs`
//! feature off; the collector itself needs the feature.

#[cfg(feature = "zfs")]
mod collector;
#[cfg(feature = "zfs")]
pub(crate) mod command;
mod config;
#[cfg(feature = "zfs")]
pub mod iostat;
#[cfg(feature = "zfs")]
pub mod kstat;
#[cfg(feature = "zfs")]
pub mod metrics;
#[cfg(feature = "zfs")]
pub mod parse;
#[cfg(feature = "zfs")]
pub mod scan;
#[cfg(feature = "zfs")]
pub mod status;
#[cfg(test)]
#[cfg(feature = "zfs")]
mod tests;

#[cfg(feature = "zfs")]
pub use collector::ZfsCollector;
pub use config::ZfsConfig;
