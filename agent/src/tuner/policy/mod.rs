//! The tuner's policy: pure, from `PolicyInputs` and the operator's bounds to the OLLAMA_*
//! environment wanted now, each key with its reasons and the numbers behind them. The rules and
//! their arithmetic are documented in docs/tuner.md.

pub(crate) mod bounds;
pub mod decision;
pub(crate) mod fit;
pub(crate) mod inputs;
mod keys;
pub(crate) mod memory;

use std::collections::BTreeMap;

use bounds::{Limits, limits};
use decision::{Decision, KeyDecision};
use fit::{Facts, slots_that_fit, to_f64};
pub use fit::{PRESSURE_HIGH, VRAM_HIGH};
use inputs::PolicyInputs;
use memory::{GIB, human};

use crate::tuner::config::KeyBound;

/// The context per slot: Ollama's own automatic choice can be huge (262144 on a >= 47 GiB
/// card, 16 GiB of f16 KV per slot for llama3.1:8b), so it is set explicitly.
fn context_tier(facts: &Facts) -> (u64, String) {
    let g = facts.largest_gpu();
    let ctx = match g {
        0 => 4096,
        g if g >= 23 * GIB => 32768,
        g if g >= 12 * GIB => 8192,
        _ => 4096,
    };
    let why = if g == 0 {
        "no GPU metrics: 4096 tokens (Ollama's own default without a large GPU)".to_owned()
    } else {
        format!(
            "largest GPU {}: {ctx} tokens per slot (Ollama's automatic default would be {})",
            human(to_f64(g)),
            match g {
                g if g >= 47 * GIB => 262_144,
                g if g >= 23 * GIB => 32768,
                _ => 4096,
            }
        )
    };
    (ctx, why)
}

/// The host's class by total VRAM, where no model metadata gives finer numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VramTier {
    Cpu,
    Gb4,
    Gb8,
    Gb16,
}

impl VramTier {
    fn of(facts: &Facts) -> VramTier {
        match facts.vram_total {
            0 => VramTier::Cpu,
            t if t < 6 * GIB => VramTier::Gb4,
            t if t < 16 * GIB => VramTier::Gb8,
            _ => VramTier::Gb16,
        }
    }

    /// As the reasons name it.
    fn label(self) -> &'static str {
        match self {
            VramTier::Cpu => "cpu",
            VramTier::Gb4 => "4gb",
            VramTier::Gb8 => "8gb",
            VramTier::Gb16 => "16gb",
        }
    }
}

/// Collects each key's decision, applying the operator's pins and bounds as it goes.
struct KeyWriter<'b> {
    decision: Decision,
    bounds: &'b BTreeMap<String, KeyBound>,
}

impl KeyWriter<'_> {
    /// The operator's limits on `key`, normalised when asked rather than into a map per tick
    /// (invalid bounds were refused at load; here they count as absent).
    fn limits(&self, key: &str) -> Limits {
        self.bounds
            .get(key)
            .and_then(|b| limits(key, b).ok())
            .unwrap_or_default()
    }

    /// The operator's pin of `key`, if any.
    fn pin(&self, key: &str) -> Option<i64> {
        self.limits(key).pin
    }

    /// Records `value` for `key` (after the operator's bounds) with `reasons`; returns the
    /// value in force.
    fn set(
        &mut self,
        key: &str,
        value: i64,
        show: impl Fn(i64) -> String,
        mut reasons: Vec<String>,
    ) -> i64 {
        let l = self.limits(key);
        let (v, why) = l.apply(key, value, &show);
        let constrained = why.is_some();
        reasons.extend(why);
        self.decision.keys.insert(
            key.to_owned(),
            KeyDecision {
                value: show(v),
                reasons,
                constrained_by_operator: constrained,
            },
        );
        v
    }
}

/// The environment wanted now, one key at a time. Pure: same inputs, same decision.
pub fn decide(inputs: &PolicyInputs, bounds: &BTreeMap<String, KeyBound>) -> Decision {
    let facts = Facts::new(inputs);
    let mut keys = KeyWriter {
        decision: Decision::default(),
        bounds,
    };
    let stress = facts.vram_stress();
    let (ctx_tier, ctx_why) = context_tier(&facts);
    let kv = keys::kv_cache_type(&mut keys, &facts, stress.as_deref(), ctx_tier);
    keys::flash_attention(&mut keys, kv);
    let fit = slots_that_fit(&facts, kv, ctx_tier);
    keys::context_length(&mut keys, fit.as_ref(), ctx_tier, ctx_why);
    let slots = keys::num_parallel(&mut keys, &facts, fit, stress.as_deref());
    keys::max_loaded_models(&mut keys, &facts, stress.as_deref());
    keys::keep_alive(&mut keys, &facts, stress.as_deref());
    keys::max_queue(&mut keys, slots);
    keys.decision
}

#[cfg(test)]
mod tests;
