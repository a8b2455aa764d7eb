//! The figures `auto` derives from, gathered from what the tick already has: the host's RAM,
//! ARC and CPU count from the snapshot, Ollama's loaded models from the collector's view, and
//! the KV cache from the policy's decision (its context, slots and KV type). Pure.

use super::auto::{HostFacts, OllamaNeed};
use crate::collectors::ollama::ModelView;
use crate::model::{AttrKey, MetricName, Snapshot};
use crate::tuner::policy::decision::Decision;
use crate::tuner::policy::memory::{KvType, human, kv_bytes_per_token};

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn bytes(v: f64) -> u64 {
    v.max(0.0) as u64
}

/// MemTotal, the ARC's size and `c_min`, and the logical CPUs of this tick.
pub fn host_facts(snap: &Snapshot) -> HostFacts {
    let first = |n| snap.points_named(n).next().map(|p| bytes(p.value.as_f64()));
    HostFacts {
        mem_total: first(MetricName::SystemMemoryLimit),
        arc_size: first(MetricName::ZfsArcSize).unwrap_or(0),
        arc_min: snap
            .points_named(MetricName::ZfsArcLimit)
            .find(|p| {
                p.attributes
                    .get(AttrKey::ZfsArcLimitType)
                    .is_some_and(|v| v.as_text() == "min")
            })
            .map_or(0, |p| bytes(p.value.as_f64())),
        cpus: first(MetricName::SystemCpuLogicalCount),
    }
}

/// What Ollama needs in its memory cgroup: its models' bytes outside VRAM, plus the KV cache
/// the plan gives each model with nothing in VRAM (its cache lives in RAM too). `decision` is
/// the policy's plan; without one, Ollama's own context and one slot.
pub fn ollama_need(models: &[ModelView], decision: Option<&Decision>) -> OllamaNeed {
    let env = decision.map(Decision::env).unwrap_or_default();
    let num = |k: &str| env.get(k).and_then(|v| v.parse::<u64>().ok());
    let slots = num("OLLAMA_NUM_PARALLEL").unwrap_or(1);
    let kv = env
        .get("OLLAMA_KV_CACHE_TYPE")
        .and_then(|v| KvType::parse(v))
        .unwrap_or(KvType::F16);
    let mut need = OllamaNeed::default();
    let mut parts = Vec::new();
    for m in models {
        need.models_ram += m.ps.size_ram();
        let mut part = format!("{} {} in RAM", m.ps.name, human(m.ps.size_ram() as f64));
        if m.ps.size_vram == 0
            && let Some(arch) = &m.arch
        {
            let ctx = num("OLLAMA_CONTEXT_LENGTH")
                .or(m.ps.context_length)
                .unwrap_or(4096);
            let kv_bytes = bytes(kv_bytes_per_token(arch, kv) * ctx as f64 * slots as f64);
            need.planned_kv_ram += kv_bytes;
            part.push_str(&format!(
                " + planned KV {} ({ctx} tokens × {slots} slots at {})",
                human(kv_bytes as f64),
                kv.as_str()
            ));
        }
        parts.push(part);
    }
    need.why = if parts.is_empty() {
        "no model loaded".to_owned()
    } else {
        parts.join(", ")
    };
    need
}
