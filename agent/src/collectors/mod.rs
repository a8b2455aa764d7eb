//! Collectors read one part of the host each tick. They run concurrently, each under its own
//! deadline, so a slow or broken one never delays or stops the others: its status says why.

pub mod gpu;
pub mod host;
pub mod ollama;
pub mod zfs;

use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use tokio::time::Instant;

use crate::model::{CollectorId, CollectorStatus, Health, MetricPoint, Snapshot};

/// What a collector read this tick.
#[derive(Debug, Default)]
pub struct Sample {
    pub points: Vec<MetricPoint>,
    /// Set when part of what it reads failed (a lost GPU, a restarting child process).
    pub degraded: Option<String>,
}

impl Sample {
    pub fn ok(points: Vec<MetricPoint>) -> Self {
        Sample {
            points,
            degraded: None,
        }
    }
}

/// Why a collector read nothing. The text is shown to operators as the collector's reason, so
/// it names what is missing (`libnvidia-ml.so.1 not found`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CollectError(pub String);

impl CollectError {
    pub fn new(reason: impl Into<String>) -> Self {
        CollectError(reason.into())
    }
}

#[async_trait]
pub trait Collector: Send {
    fn id(&self) -> CollectorId;
    /// Reads once. Must be cancel-safe: the runtime drops the future when the deadline passes.
    async fn collect(&mut self) -> Result<Sample, CollectError>;

    /// Takes a reloaded config in place, keeping what it learned (CPU counters, an open NVML
    /// handle, a running child). Returns false when it cannot, and the runtime rebuilds it.
    fn reconfigure(&mut self, _config: CollectorsConfig<'_>) -> bool {
        false
    }

    /// Called by `once` between its two collections: waits until what this collector measures
    /// over an interval of its own (ZFS pool I/O) has one interval in hand, so the second
    /// collection can report it; at most that interval plus `grace`. Most collectors measure
    /// nothing that way and return at once.
    async fn settle(&mut self, _grace: Duration) {}
}

/// Stands in the list for a collector the config turned off, so every consumer still sees the
/// collector and the reason it reports nothing.
pub struct Disabled {
    id: CollectorId,
}

#[async_trait]
impl Collector for Disabled {
    fn id(&self) -> CollectorId {
        self.id
    }
    async fn collect(&mut self) -> Result<Sample, CollectError> {
        Err(CollectError::new(format!(
            "disabled in config ([{}] enabled = false)",
            self.id
        )))
    }
}

/// Applies a reloaded config: each collector is reconfigured in place where it can be, and
/// rebuilt from the config otherwise (a disabled one becomes `Disabled` and back).
pub fn reconfigure(
    list: &mut [Box<dyn Collector>],
    config: CollectorsConfig<'_>,
    hooks: &ollama::OllamaHooks,
) {
    for c in list.iter_mut() {
        if !c.reconfigure(config) {
            *c = build(c.id(), config, hooks);
        }
    }
}

/// Every collector, in the order the views list them.
pub const ALL: [CollectorId; 4] = [
    CollectorId::Host,
    CollectorId::Gpu,
    CollectorId::Zfs,
    CollectorId::Ollama,
];

/// The sections of the config the collectors read; the config composes it
/// (`Config::collectors()`).
#[derive(Debug, Clone, Copy)]
pub struct CollectorsConfig<'a> {
    pub host: &'a host::HostConfig,
    pub gpu: &'a gpu::GpuConfig,
    pub zfs: &'a zfs::ZfsConfig,
    pub ollama: &'a ollama::OllamaConfig,
    /// The deadline each collection runs under (what the Ollama probes must fit in).
    pub deadline: std::time::Duration,
}

/// The one visible list of collectors.
pub fn from_config(config: CollectorsConfig<'_>) -> Vec<Box<dyn Collector>> {
    from_config_with(config, &ollama::OllamaHooks::default())
}

/// `from_config`, with the hooks the runtime gives the Ollama collector (where it publishes its
/// view for the tuner, and the systemd client).
pub fn from_config_with(
    config: CollectorsConfig<'_>,
    hooks: &ollama::OllamaHooks,
) -> Vec<Box<dyn Collector>> {
    ALL.iter().map(|id| build(*id, config, hooks)).collect()
}

/// Builds one collector. Constructors do no I/O: libraries are loaded and children started on
/// the first collection, under the collector's deadline.
fn build(
    id: CollectorId,
    config: CollectorsConfig<'_>,
    hooks: &ollama::OllamaHooks,
) -> Box<dyn Collector> {
    let enabled = match id {
        CollectorId::Host => config.host.enabled,
        CollectorId::Gpu => config.gpu.enabled,
        CollectorId::Zfs => config.zfs.enabled,
        CollectorId::Ollama => config.ollama.enabled,
    };
    if !enabled {
        return Box::new(Disabled { id });
    }
    match id {
        CollectorId::Host => Box::new(host::HostCollector::new(config.host)),
        CollectorId::Gpu => Box::new(gpu::GpuCollector::new(
            config.gpu,
            config.host.proc_root.clone(),
        )),
        CollectorId::Zfs => zfs_collector(config.zfs, &config.host.proc_root),
        CollectorId::Ollama => Box::new(
            ollama::OllamaCollector::new(
                config.ollama,
                config.ollama.probe_timeout_within(config.deadline),
                crate::sys::proc::ProcReader::new(&config.host.proc_root),
                hooks.clone(),
            )
            .with_cgroup_root(config.host.sys_root.join("fs/cgroup")),
        ),
    }
}

#[cfg(feature = "zfs")]
fn zfs_collector(config: &zfs::ZfsConfig, proc_root: &std::path::Path) -> Box<dyn Collector> {
    Box::new(zfs::ZfsCollector::new(config, proc_root))
}

/// Built without the `zfs` feature: the collector stays in the list and says why it reads
/// nothing.
#[cfg(not(feature = "zfs"))]
fn zfs_collector(_config: &zfs::ZfsConfig, _proc_root: &std::path::Path) -> Box<dyn Collector> {
    struct NotBuilt;
    #[async_trait]
    impl Collector for NotBuilt {
        fn id(&self) -> CollectorId {
            CollectorId::Zfs
        }
        async fn collect(&mut self) -> Result<Sample, CollectError> {
            Err(CollectError::new(
                "built without ZFS support (cargo feature `zfs`); [zfs] enabled = true has no effect",
            ))
        }
    }
    Box::new(NotBuilt)
}

/// Runs every collector concurrently under `deadline` and assembles the tick's snapshot.
pub async fn collect_all(
    collectors: &mut [Box<dyn Collector>],
    deadline: Duration,
    timestamp_ms: u64,
) -> Snapshot {
    let runs = collectors.iter_mut().map(|c| async move {
        let id = c.id();
        let started = Instant::now();
        let result = tokio::time::timeout(deadline, c.collect()).await;
        (id, started.elapsed(), result)
    });
    let mut snapshot = Snapshot {
        timestamp_ms,
        ..Snapshot::default()
    };
    for (id, took, result) in join_all(runs).await {
        let (health, reason, points) = match result {
            Ok(Ok(sample)) => match sample.degraded {
                None => (Health::Ok, None, sample.points),
                Some(why) => (Health::Degraded, Some(why), sample.points),
            },
            Ok(Err(e)) => (Health::Unavailable, Some(e.0), Vec::new()),
            Err(_) => (
                Health::Unavailable,
                Some(format!(
                    "deadline of {} passed; other collectors were not delayed",
                    humantime::format_duration(deadline)
                )),
                Vec::new(),
            ),
        };
        snapshot.collectors.push(CollectorStatus {
            collector: id,
            health,
            reason,
            duration_seconds: took.as_secs_f64(),
            points: points.len(),
        });
        snapshot.points.extend(points);
    }
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attrs, MetricName};

    struct Fixed(CollectorId, Result<Sample, CollectError>);
    struct Hangs;

    #[async_trait]
    impl Collector for Fixed {
        fn id(&self) -> CollectorId {
            self.0
        }
        async fn collect(&mut self) -> Result<Sample, CollectError> {
            match &self.1 {
                Ok(s) => Ok(Sample {
                    points: s.points.clone(),
                    degraded: s.degraded.clone(),
                }),
                Err(e) => Err(e.clone()),
            }
        }
    }

    #[async_trait]
    impl Collector for Hangs {
        fn id(&self) -> CollectorId {
            CollectorId::Zfs
        }
        async fn collect(&mut self) -> Result<Sample, CollectError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_or_failing_collector_does_not_stop_the_others() {
        let point = MetricPoint::new(MetricName::SystemCpuLogicalCount, Attrs::new(), 4u32);
        let mut list: Vec<Box<dyn Collector>> = vec![
            Box::new(Fixed(
                CollectorId::Host,
                Ok(Sample::ok(vec![point.clone()])),
            )),
            Box::new(Hangs),
            Box::new(Fixed(
                CollectorId::Gpu,
                Err(CollectError::new("libnvidia-ml.so.1 not found")),
            )),
        ];
        let snap = collect_all(&mut list, Duration::from_secs(2), 7).await;
        assert_eq!(snap.points, vec![point]);
        assert_eq!(snap.status(CollectorId::Host).unwrap().health, Health::Ok);
        let zfs = snap.status(CollectorId::Zfs).unwrap();
        assert_eq!(zfs.health, Health::Unavailable);
        assert!(
            zfs.reason
                .as_deref()
                .unwrap()
                .contains("deadline of 2s passed")
        );
        let gpu = snap.status(CollectorId::Gpu).unwrap();
        assert_eq!(gpu.reason.as_deref(), Some("libnvidia-ml.so.1 not found"));
    }
}
