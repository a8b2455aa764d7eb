//! What the policy decides from: the tick's snapshot (GPUs, host memory, pressure, CPUs) and the
//! Ollama collector's view (models, architecture, version, the environment in force).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::collectors::ollama::{OllamaView, UnitWatch};
use crate::model::{AttrKey, AttrValue, MetricName, MetricPoint, Snapshot, Text};
use crate::sys::ollama::Architecture;
use crate::tuner::policy::memory::Version;

/// One GPU's memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuMemory {
    pub id: Text,
    pub total: u64,
    pub used: u64,
}

/// A loaded model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInput {
    pub name: String,
    pub family: String,
    /// Bytes Ollama reports for it (weights + KV + compute).
    pub size: u64,
    pub size_vram: u64,
    /// Context per slot it was loaded with (`/api/ps` context_length).
    pub context: Option<u64>,
    pub arch: Option<Architecture>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyInputs {
    pub gpus: Vec<GpuMemory>,
    pub models: Vec<ModelInput>,
    pub ram_total: Option<u64>,
    /// MemAvailable: the kernel's estimate, which leaves out the ZFS ARC.
    pub ram_available: Option<u64>,
    /// The ZFS ARC above c_min (zfs.arc.reclaimable): the kernel takes it back under pressure.
    pub ram_arc_reclaimable: Option<u64>,
    /// PSI memory `full` avg60 (0..1): share of time all tasks stalled on memory.
    pub memory_pressure: Option<f64>,
    pub cpu_count: Option<u64>,
    pub version: Option<Version>,
    /// OLLAMA_* variables in force (the unit's Environment), when systemd is watched.
    pub current: BTreeMap<String, String>,
}

fn int(v: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = v.max(0.0) as u64;
    n
}

/// The GPU's id as the policy keeps it: a clone of the attribute's text shares it (issue 20:
/// copying 8 GPU ids twice per tick was a third of the tuner's allocations).
fn gpu_id(p: &MetricPoint) -> Text {
    match p.attributes.get(AttrKey::HwId) {
        Some(AttrValue::Str(t)) => t.clone(),
        Some(v @ AttrValue::Int(_)) => v.as_text().into(),
        None => Text::Static(""),
    }
}

/// Each GPU's memory, by id, leaving out GPUs without a total. A vector searched by id, not a
/// map: a host has a handful of GPUs, and this runs every tick.
fn gpu_memory(s: &Snapshot) -> Vec<GpuMemory> {
    let mut gpus: Vec<GpuMemory> =
        Vec::with_capacity(s.points_named(MetricName::HwGpuMemoryLimit).count());
    for (name, is_total) in [
        (MetricName::HwGpuMemoryLimit, true),
        (MetricName::HwGpuMemoryUsage, false),
    ] {
        for p in s.points_named(name) {
            let id = gpu_id(p);
            let i = match gpus.iter().position(|g| g.id == id) {
                Some(i) => i,
                None => {
                    gpus.push(GpuMemory {
                        id,
                        total: 0,
                        used: 0,
                    });
                    gpus.len() - 1
                }
            };
            if is_total {
                gpus[i].total = int(p.value.as_f64());
            } else {
                gpus[i].used = int(p.value.as_f64());
            }
        }
    }
    gpus.retain(|g| g.total > 0);
    // In id order, as the policy has always listed them.
    gpus.sort_by(|a, b| a.id.cmp(&b.id));
    gpus
}

impl PolicyInputs {
    pub fn from_snapshot(s: &Snapshot, view: Option<&OllamaView>) -> PolicyInputs {
        let one = |name| s.points_named(name).next().map(|p| p.value.as_f64());
        let mut inputs = PolicyInputs {
            gpus: gpu_memory(s),
            ram_total: one(MetricName::SystemMemoryLimit).map(int),
            ram_available: one(MetricName::SystemMemoryLinuxAvailable).map(int),
            ram_arc_reclaimable: one(MetricName::ZfsArcReclaimable).map(int),
            memory_pressure: s
                .find(
                    MetricName::SystemMemoryLinuxPressure1m,
                    &[(AttrKey::PressureStallType, "full")],
                )
                .map(|p| p.value.as_f64()),
            cpu_count: one(MetricName::SystemCpuLogicalCount).map(int),
            ..PolicyInputs::default()
        };
        if let Some(v) = view {
            inputs.version = v.version.as_deref().and_then(Version::parse);
            inputs.models = v
                .models
                .iter()
                .flatten()
                .map(|m| ModelInput {
                    name: m.ps.name.clone(),
                    family: m
                        .arch
                        .as_ref()
                        .map_or_else(|| m.ps.details.family.clone(), |a| a.arch.clone()),
                    size: m.ps.size,
                    size_vram: m.ps.size_vram,
                    context: m.ps.context_length,
                    arch: m.arch.clone(),
                })
                .collect();
            if let UnitWatch::Status(u) = &v.unit {
                inputs.current = u
                    .environment
                    .iter()
                    .filter_map(|kv| kv.split_once('='))
                    .filter(|(k, _)| k.starts_with("OLLAMA_"))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
            }
        }
        inputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attrs;

    #[test]
    fn reads_gpus_memory_and_pressure_from_the_snapshot() {
        let gpu = |id: &'static str| Attrs::new().with(AttrKey::HwId, id);
        let snap = Snapshot {
            points: vec![
                MetricPoint::new(MetricName::HwGpuMemoryLimit, gpu("GPU-a"), 24u64 << 30),
                MetricPoint::new(MetricName::HwGpuMemoryUsage, gpu("GPU-a"), 5u64 << 30),
                MetricPoint::new(MetricName::HwGpuMemoryLimit, gpu("GPU-b"), 8u64 << 30),
                MetricPoint::new(MetricName::SystemMemoryLimit, Attrs::new(), 64u64 << 30),
                MetricPoint::new(
                    MetricName::SystemMemoryLinuxAvailable,
                    Attrs::new(),
                    32u64 << 30,
                ),
                MetricPoint::new(MetricName::ZfsArcReclaimable, Attrs::new(), 7u64 << 30),
                MetricPoint::new(
                    MetricName::SystemMemoryLinuxPressure1m,
                    Attrs::new().with(AttrKey::PressureStallType, "some"),
                    0.5,
                ),
                MetricPoint::new(
                    MetricName::SystemMemoryLinuxPressure1m,
                    Attrs::new().with(AttrKey::PressureStallType, "full"),
                    0.02,
                ),
                MetricPoint::new(MetricName::SystemCpuLogicalCount, Attrs::new(), 16u32),
            ],
            ..Snapshot::default()
        };
        let i = PolicyInputs::from_snapshot(&snap, None);
        assert_eq!(
            i.gpus,
            vec![
                GpuMemory {
                    id: "GPU-a".into(),
                    total: 24 << 30,
                    used: 5 << 30
                },
                GpuMemory {
                    id: "GPU-b".into(),
                    total: 8 << 30,
                    used: 0
                },
            ]
        );
        assert_eq!(
            (i.ram_total, i.ram_available, i.ram_arc_reclaimable),
            (Some(64 << 30), Some(32 << 30), Some(7 << 30))
        );
        assert_eq!(i.memory_pressure, Some(0.02));
        assert_eq!(i.cpu_count, Some(16));
        assert!(i.models.is_empty() && i.version.is_none());
    }
}
