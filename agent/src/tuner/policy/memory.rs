//! How Ollama spends memory, as the policy needs it (Ollama's own estimate: weights, KV cache
//! per token and slot, graph overhead):
//! KV bytes per token = Σ_layers head_count_kv × (key_length + value_length) × bytes/element,
//! every parallel slot holds the full context, and what Ollama admits depends on its era.

use serde::Serialize;

use crate::sys::ollama::Architecture;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
/// Compute buffers with the default 512 batch (MEMORY.md worked example: ~0.5 GiB).
pub const COMPUTE_BYTES: u64 = 512 * MIB;
/// llama.cpp `--fit` keeps 1024 MiB per device free (LLAMA_ARG_FIT_TARGET default).
pub const MARGIN_BYTES: u64 = 1024 * MIB;
/// v0.33 adds this batch surcharge to a prediction whose context (ctx × slots) exceeds 4096.
pub const BATCH_SURCHARGE_BYTES: u64 = 768 * MIB;

/// KV cache element types every Ollama era accepts (<= v0.24 knows only these three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum KvType {
    F16,
    Q8_0,
    Q4_0,
}

impl KvType {
    pub const ALL: [KvType; 3] = [KvType::F16, KvType::Q8_0, KvType::Q4_0];

    pub fn as_str(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
            KvType::Q4_0 => "q4_0",
        }
    }

    pub fn parse(s: &str) -> Option<KvType> {
        KvType::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Bytes per element as llama.cpp allocates them: f16 2, q8_0 34/32, q4_0 18/32.
    pub fn bytes_per_element(self) -> f64 {
        match self {
            KvType::F16 => 2.0,
            KvType::Q8_0 => 34.0 / 32.0,
            KvType::Q4_0 => 18.0 / 32.0,
        }
    }

    pub fn quantized(self) -> bool {
        self != KvType::F16
    }
}

/// KV bytes one token costs in one slot.
pub fn kv_bytes_per_token(a: &Architecture, kv: KvType) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let elements = (a.kv_heads_all_layers * (a.key_length + a.value_length)) as f64;
    elements * kv.bytes_per_element()
}

/// An Ollama release, compared numerically (`0.12.10 < 0.12.11`); pre-release tags ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Version(pub u64, pub u64, pub u64);

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let core = s.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
        Some(Version(
            it.next()??,
            it.next().flatten().unwrap_or(0),
            it.next().flatten().unwrap_or(0),
        ))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Ollama's three memory algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Era {
    /// <= 0.12.10: llm/memory.go estimate; its graph term grows with ctx × slots.
    Legacy,
    /// 0.12.11 – 0.24.x: layouts from measured per-layer memory.
    Layout,
    /// 0.30 and later: llama-server `--fit`; a second model is admitted only if file + f16 KV +
    /// batch surcharge fit in 80 % of the free VRAM.
    Fit,
}

impl Era {
    /// Unknown versions (dev builds report 0.0.0) are taken as the current era.
    pub fn of(v: Option<Version>) -> Era {
        match v {
            Some(v) if v != Version(0, 0, 0) && v <= Version(0, 12, 10) => Era::Legacy,
            Some(v) if v != Version(0, 0, 0) && v < Version(0, 30, 0) => Era::Layout,
            _ => Era::Fit,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Era::Legacy => "<= 0.12.10 (llm/memory.go estimate)",
            Era::Layout => "0.12.11-0.24 (measured layouts)",
            Era::Fit => ">= 0.30 (llama-server --fit, 80 % admission rule)",
        }
    }

    /// The legacy estimate adds a graph that grows with ctx × slots; counting each slot's KV
    /// 1.5 times reproduces MEMORY.md's legacy row (24 GB, ctx 4096 f16: 23 slots, not 35).
    pub fn kv_weight(self) -> f64 {
        if self == Era::Legacy { 1.5 } else { 1.0 }
    }

    /// Ollama ignores a quantized KV type unless flash attention is on; before 0.5.0 it did
    /// not exist.
    pub fn supports_kv_quantization(v: Option<Version>) -> bool {
        v.is_none_or(|v| v == Version(0, 0, 0) || v >= Version(0, 5, 0))
    }
}

/// Families Ollama forces to one slot (sched.go 497-510 at v0.33; fewer in older releases).
pub fn single_slot_family(family: &str, era: Era) -> bool {
    const NOW: [&str; 11] = [
        "mllama",
        "qwen3vl",
        "qwen3vlmoe",
        "qwen35",
        "qwen35moe",
        "qwen3next",
        "lfm2",
        "lfm2moe",
        "nemotron_h",
        "nemotron_h_moe",
        "nemotron_h_omni",
    ];
    match era {
        Era::Legacy => ["mllama", "qwen3vl", "qwen3vlmoe"].contains(&family),
        _ => NOW.contains(&family),
    }
}

/// Binary units for reasons: `4.6 GiB`, `512 MiB`.
pub fn human(bytes: f64) -> String {
    if bytes.abs() >= GIB as f64 {
        format!("{:.1} GiB", bytes / GIB as f64)
    } else {
        format!("{:.0} MiB", bytes / MIB as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::ollama::llama31;

    #[test]
    fn memory_md_kv_table() {
        // MEMORY.md: 128 KiB/token f16; per slot at ctx 4096: 512 / 272 / 144 MiB.
        let a = llama31();
        assert_eq!(kv_bytes_per_token(&a, KvType::F16), 131_072.0);
        for (kv, mib) in [
            (KvType::F16, 512.0),
            (KvType::Q8_0, 272.0),
            (KvType::Q4_0, 144.0),
        ] {
            assert_eq!(kv_bytes_per_token(&a, kv) * 4096.0 / MIB as f64, mib);
        }
    }

    #[test]
    fn eras_and_versions() {
        let v = |s| Version::parse(s);
        assert_eq!(v("0.33.0-rc2"), Some(Version(0, 33, 0)));
        assert_eq!(Era::of(v("0.12.10")), Era::Legacy);
        assert_eq!(Era::of(v("0.12.11")), Era::Layout);
        assert_eq!(Era::of(v("0.24.3")), Era::Layout);
        assert_eq!(Era::of(v("0.30.11")), Era::Fit);
        assert_eq!(Era::of(v("0.0.0")), Era::Fit);
        assert_eq!(Era::of(None), Era::Fit);
        assert_eq!(v("garbage"), None);
        assert!(!Era::supports_kv_quantization(v("0.4.7")));
    }
}
