//! The tuner's policy: pure, from `PolicyInputs` and the operator's bounds to the OLLAMA_*
//! environment wanted now, each key with its reasons and the numbers behind them. The rules and
//! their arithmetic are documented in the README ("Tuning policy").

pub mod bounds;
pub mod decision;
pub mod fit;
pub mod inputs;
pub mod memory;

use std::collections::BTreeMap;

use crate::tuner::config::KeyBound;
use crate::tuner::policy::bounds::{Limits, all_limits, format_keep_alive};
use crate::tuner::policy::decision::{Decision, KeyDecision};
use crate::tuner::policy::fit::{Facts, f, slots_that_fit};
pub use crate::tuner::policy::fit::{PRESSURE_HIGH, VRAM_HIGH};
use crate::tuner::policy::inputs::PolicyInputs;
use crate::tuner::policy::memory::{Era, GIB, KvType, MARGIN_BYTES, human};

/// The context per slot: Ollama's own automatic choice can be huge (262144 on a >= 47 GiB
/// card, 16 GiB of f16 KV per slot for llama3.1:8b), so it is set explicitly.
fn context_tier(x: &Facts) -> (u64, String) {
    let g = x.largest_gpu();
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
            human(f(g)),
            match g {
                g if g >= 47 * GIB => 262_144,
                g if g >= 23 * GIB => 32768,
                _ => 4096,
            }
        )
    };
    (ctx, why)
}

fn vram_tier(x: &Facts) -> &'static str {
    match x.vram_total {
        0 => "cpu",
        t if t < 6 * GIB => "4gb",
        t if t < 16 * GIB => "8gb",
        _ => "16gb",
    }
}

fn put(
    d: &mut Decision,
    limits: &BTreeMap<&'static str, Limits>,
    key: &str,
    value: i64,
    show: impl Fn(i64) -> String,
    mut reasons: Vec<String>,
) -> i64 {
    let l = limits.get(key).copied().unwrap_or_default();
    let (v, why) = l.apply(key, value, &show);
    let constrained = why.is_some();
    reasons.extend(why);
    d.keys.insert(
        key.to_owned(),
        KeyDecision {
            value: show(v),
            reasons,
            constrained_by_operator: constrained,
        },
    );
    v
}

/// The environment wanted now. Pure: same inputs, same decision.
pub fn decide(inputs: &PolicyInputs, bounds: &BTreeMap<String, KeyBound>) -> Decision {
    let x = Facts::new(inputs);
    let limits = all_limits(bounds);
    let mut d = Decision::default();
    let uint = |v: i64| v.to_string();
    let era_note = format!(
        "Ollama {} = era {}",
        inputs
            .version
            .map_or_else(|| "version unknown".to_owned(), |v| v.to_string()),
        x.era.describe()
    );
    let stress = x.vram_stress();

    // KV cache type (and flash attention, which a quantized cache needs).
    let fa_pin = limits.get("OLLAMA_FLASH_ATTENTION").and_then(|l| l.pin);
    let mut kv_reasons = vec![era_note.clone()];
    let mut kv = KvType::F16;
    let (ctx_tier, ctx_why) = context_tier(&x);
    let f16_fit = slots_that_fit(&x, KvType::F16, ctx_tier);
    if !Era::supports_kv_quantization(inputs.version) {
        kv_reasons.push("this Ollama predates OLLAMA_KV_CACHE_TYPE (0.5.0): f16".to_owned());
    } else if fa_pin == Some(0) {
        kv_reasons.push(
            "OLLAMA_FLASH_ATTENTION is pinned to 0 and a quantized KV cache needs it: f16"
                .to_owned(),
        );
    } else if let Some(why) = &stress {
        kv = KvType::Q8_0;
        kv_reasons.push(format!(
            "{why}: q8_0 halves the KV cache (1.0625 instead of 2 bytes per element)"
        ));
    } else if f16_fit.as_ref().is_some_and(|s| s.context < ctx_tier) {
        kv = KvType::Q8_0;
        kv_reasons.push(format!(
            "not even one f16 slot of {ctx_tier} tokens fits: q8_0"
        ));
    } else if x.has_gpu() {
        kv_reasons.push(format!(
            "VRAM {:.0}% used, no model spills: f16 keeps full precision",
            x.vram_util() * 100.0
        ));
    } else {
        kv_reasons.push("no GPU seen and no model spills: f16 keeps full precision".to_owned());
    }
    let kv_rank = put(
        &mut d,
        &limits,
        "OLLAMA_KV_CACHE_TYPE",
        kv as i64,
        |v| {
            KvType::ALL
                .get(usize::try_from(v).unwrap_or(0))
                .map_or("f16", |k| k.as_str())
                .to_owned()
        },
        kv_reasons,
    );
    kv = KvType::ALL
        .get(usize::try_from(kv_rank).unwrap_or(0))
        .copied()
        .unwrap_or(KvType::F16);
    if kv.quantized() || fa_pin.is_some() {
        let reasons = vec![format!(
            "OLLAMA_KV_CACHE_TYPE={} needs flash attention set explicitly (Ollama drops a quantized cache to f16 without it); written as 1, since any value but 0/false means on",
            kv.as_str()
        )];
        put(
            &mut d,
            &limits,
            "OLLAMA_FLASH_ATTENTION",
            1,
            |v| v.to_string(),
            reasons,
        );
    }

    // Context and parallel slots.
    let fit = slots_that_fit(&x, kv, ctx_tier);
    let mut ctx_reasons = vec![ctx_why];
    let context = match &fit {
        Some(s) if s.context < ctx_tier => {
            ctx_reasons.push(if s.fits {
                format!("shortened to {} tokens so that one slot fits in VRAM", s.context)
            } else {
                format!(
                    "shortened to {} tokens: not even one slot fits in VRAM, a shorter context spills less",
                    s.context
                )
            });
            s.context
        }
        _ => ctx_tier,
    };
    put(
        &mut d,
        &limits,
        "OLLAMA_CONTEXT_LENGTH",
        i64::try_from(context).unwrap_or(4096),
        uint,
        ctx_reasons,
    );

    let (slots, mut par_reasons) = match fit {
        Some(s) => (s.slots, s.reasons),
        None if !x.has_gpu() => (
            1,
            vec![if inputs.models.iter().any(|m| m.size_vram > 0) {
                "Ollama uses VRAM but no GPU metrics arrive (GPU collector off or NVML missing): one request at a time until VRAM can be seen".to_owned()
            } else {
                format!(
                    "no GPU: one request at a time; every slot would share the same {} CPU(s)",
                    inputs
                        .cpu_count
                        .map_or_else(|| "?".to_owned(), |n| n.to_string())
                )
            }],
        ),
        None => {
            let (n, tier) = match vram_tier(&x) {
                "4gb" => (1, "about 4 GB: one small model, one request at a time"),
                "8gb" => (2, "about 8 GB: an 8B model, 2 parallel requests"),
                _ => (4, "16 GB and more: 4 parallel requests"),
            };
            (
                n,
                vec![format!(
                    "no model metadata (nothing loaded, or /api/show unanswered); VRAM {} -> tier {tier}",
                    human(f(x.vram_total))
                )],
            )
        }
    };
    let mut slots = slots;
    if let Some(why) = &stress {
        let cap = if x.spilling.is_empty() {
            x.current_parallel
        } else {
            x.current_parallel.saturating_sub(1).max(1)
        };
        if slots > cap {
            par_reasons.push(format!(
                "{why}: no more than {cap} slots (now {})",
                x.current_parallel
            ));
            slots = cap;
        }
    }
    let (_, single) = x.slotted();
    if !single.is_empty() {
        let names: Vec<&str> = single.iter().map(|m| m.name.as_str()).collect();
        par_reasons.push(format!("{} run with one slot whatever this says (Ollama forces embedding models and some families to 1)", names.join(", ")));
    }
    let slots = put(
        &mut d,
        &limits,
        "OLLAMA_NUM_PARALLEL",
        i64::try_from(slots).unwrap_or(1),
        uint,
        par_reasons,
    );

    decide_models_and_keep_alive(&mut d, &limits, &x, stress.as_deref());
    put(
        &mut d,
        &limits,
        "OLLAMA_MAX_QUEUE",
        512,
        uint,
        vec![format!(
            "only requests that need a model load wait in this queue (sched.go); Ollama's default 512 is kept ({slots} slot(s) serve the loaded models)"
        )],
    );
    d
}

fn decide_models_and_keep_alive(
    d: &mut Decision,
    limits: &BTreeMap<&'static str, Limits>,
    x: &Facts,
    stress: Option<&str>,
) {
    let gpus = u64::try_from(x.inputs.gpus.len()).unwrap_or(1).max(1);
    let largest = x.inputs.models.iter().map(|m| m.size).max();
    let (models, why) = match (stress, largest) {
        _ if !x.spilling.is_empty() => (
            1,
            format!(
                "{}: another model would push more to CPU",
                stress.unwrap_or("a model spills")
            ),
        ),
        (_, Some(size)) if x.has_gpu() => {
            let room = x.vram_total.saturating_sub(x.vram_other + MARGIN_BYTES);
            let n = (room / size.max(1)).clamp(1, 3 * gpus);
            (
                n,
                format!(
                    "{n} model(s) of {} (the largest loaded) fit in {} of VRAM (Ollama's auto limit is {} = 3 per GPU)",
                    human(f(size)),
                    human(f(room)),
                    3 * gpus
                ),
            )
        }
        (_, Some(size)) => {
            let ram = x.inputs.ram_total.unwrap_or(0) / 2;
            let n = (ram / size.max(1)).clamp(1, 3);
            (
                n,
                format!(
                    "no GPU: {n} model(s) of {} fit in half the host memory ({})",
                    human(f(size)),
                    human(f(ram))
                ),
            )
        }
        (_, None) => match vram_tier(x) {
            "16gb" => (
                3 * gpus,
                format!(
                    "nothing loaded; {} of VRAM: Ollama's default of 3 per GPU",
                    human(f(x.vram_total))
                ),
            ),
            t => (
                1,
                format!(
                    "nothing loaded; {} ({t} tier): one model at a time",
                    if x.has_gpu() {
                        human(f(x.vram_total))
                    } else {
                        "no GPU".to_owned()
                    }
                ),
            ),
        },
    };
    put(
        d,
        limits,
        "OLLAMA_MAX_LOADED_MODELS",
        i64::try_from(models).unwrap_or(1),
        |v| v.to_string(),
        vec![why],
    );

    let (base, tier) = match vram_tier(x) {
        "cpu" | "4gb" => (300, "up to about 4 GB of VRAM (or none): 5m"),
        "8gb" => (600, "about 8 GB of VRAM: 10m"),
        _ => (900, "16 GB of VRAM and more: 15m"),
    };
    let mut reasons = vec![format!("tier: {tier}")];
    let ka = if let Some(p) = &x.ram_pressure {
        reasons.push(format!("{p}: 2m, so idle models free their memory sooner"));
        120
    } else if !x.spilling.is_empty() {
        reasons.push(format!("{}: 2m", stress.unwrap_or("a model spills")));
        120
    } else if x.has_gpu()
        && x.vram_util() < 0.5
        && x.inputs
            .ram_total
            .zip(x.inputs.ram_available)
            .is_some_and(|(t, a)| f(a) >= f(t) * 0.5)
    {
        reasons.push(format!(
            "ample headroom (VRAM {:.0}% used, host memory over half available): 30m spares reloads",
            x.vram_util() * 100.0
        ));
        1800
    } else {
        base
    };
    put(
        d,
        limits,
        "OLLAMA_KEEP_ALIVE",
        ka,
        format_keep_alive,
        reasons,
    );
}

#[cfg(test)]
mod tests;
