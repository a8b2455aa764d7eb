//! One function per tuned key: each decides its value from the facts, with the reasons in
//! words, and records it through the `KeyWriter` (which applies the operator's bounds).

use super::bounds::format_keep_alive;
use super::fit::{Facts, SlotFit, context_that_fits, describe_ram, ram_available, to_f64};
use super::memory::{Era, KvType, MARGIN_BYTES, human};
use super::{KeyWriter, VramTier};

fn uint(v: i64) -> String {
    v.to_string()
}

/// `OLLAMA_KV_CACHE_TYPE`: f16 unless VRAM is short and this Ollama can quantize. Returns the
/// type in force after the operator's bounds.
pub(super) fn kv_cache_type(
    keys: &mut KeyWriter,
    facts: &Facts,
    stress: Option<&str>,
    ctx_tier: u64,
) -> KvType {
    let inputs = facts.inputs;
    // The version straight into the sentence, not through a string of its own.
    let era_note = match inputs.version {
        Some(v) => format!("Ollama {v} = era {}", facts.era.describe()),
        None => format!("Ollama version unknown = era {}", facts.era.describe()),
    };
    let mut reasons = vec![era_note];
    let mut kv = KvType::F16;
    // Only the context matters here: the trial at f16 needs no reasons.
    let f16_context = context_that_fits(facts, KvType::F16, ctx_tier);
    if !Era::supports_kv_quantization(inputs.version) {
        reasons.push("this Ollama predates OLLAMA_KV_CACHE_TYPE (0.5.0): f16".to_owned());
    } else if keys.pin("OLLAMA_FLASH_ATTENTION") == Some(0) {
        reasons.push(
            "OLLAMA_FLASH_ATTENTION is pinned to 0 and a quantized KV cache needs it: f16"
                .to_owned(),
        );
    } else if let Some(why) = stress {
        kv = KvType::Q8_0;
        reasons.push(format!(
            "{why}: q8_0 halves the KV cache (1.0625 instead of 2 bytes per element)"
        ));
    } else if f16_context.is_some_and(|c| c < ctx_tier) {
        kv = KvType::Q8_0;
        reasons.push(format!(
            "not even one f16 slot of {ctx_tier} tokens fits: q8_0"
        ));
    } else if facts.has_gpu() {
        reasons.push(format!(
            "VRAM {:.0}% used, no model spills: f16 keeps full precision",
            facts.vram_util() * 100.0
        ));
    } else {
        reasons.push("no GPU seen and no model spills: f16 keeps full precision".to_owned());
    }
    let rank = keys.set(
        "OLLAMA_KV_CACHE_TYPE",
        kv as i64,
        |v| {
            KvType::ALL
                .get(usize::try_from(v).unwrap_or(0))
                .map_or("f16", |k| k.as_str())
                .to_owned()
        },
        reasons,
    );
    KvType::ALL
        .get(usize::try_from(rank).unwrap_or(0))
        .copied()
        .unwrap_or(KvType::F16)
}

/// `OLLAMA_FLASH_ATTENTION`: set explicitly when the KV cache is quantized or the operator
/// pinned it; otherwise left to Ollama.
pub(super) fn flash_attention(keys: &mut KeyWriter, kv: KvType) {
    if kv.quantized() || keys.pin("OLLAMA_FLASH_ATTENTION").is_some() {
        let reasons = vec![format!(
            "OLLAMA_KV_CACHE_TYPE={} needs flash attention set explicitly (Ollama drops a quantized cache to f16 without it); written as 1, since any value but 0/false means on",
            kv.as_str()
        )];
        keys.set("OLLAMA_FLASH_ATTENTION", 1, uint, reasons);
    }
}

/// `OLLAMA_CONTEXT_LENGTH`: the tier's context, shortened until one slot fits.
pub(super) fn context_length(
    keys: &mut KeyWriter,
    fit: Option<&SlotFit>,
    ctx_tier: u64,
    ctx_why: String,
) {
    let mut reasons = vec![ctx_why];
    let context = match fit {
        Some(s) if s.context < ctx_tier => {
            reasons.push(if s.fits {
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
    keys.set(
        "OLLAMA_CONTEXT_LENGTH",
        i64::try_from(context).unwrap_or(4096),
        uint,
        reasons,
    );
}

/// `OLLAMA_NUM_PARALLEL`: the slots that fit, capped under VRAM stress. Returns the value in
/// force.
pub(super) fn num_parallel(
    keys: &mut KeyWriter,
    facts: &Facts,
    fit: Option<SlotFit>,
    stress: Option<&str>,
) -> i64 {
    let (mut slots, mut reasons) = match fit {
        Some(s) => (s.slots, s.reasons),
        None => slots_without_metadata(facts),
    };
    if let Some(why) = stress {
        let cap = if facts.spilling.is_empty() {
            facts.current_parallel
        } else {
            facts.current_parallel.saturating_sub(1).max(1)
        };
        if slots > cap {
            reasons.push(format!(
                "{why}: no more than {cap} slots (now {})",
                facts.current_parallel
            ));
            slots = cap;
        }
    }
    let (_, single) = facts.slotted();
    if !single.is_empty() {
        let names: Vec<&str> = single.iter().map(|m| m.name.as_str()).collect();
        reasons.push(format!("{} run with one slot whatever this says (Ollama forces embedding models and some families to 1)", names.join(", ")));
    }
    keys.set(
        "OLLAMA_NUM_PARALLEL",
        i64::try_from(slots).unwrap_or(1),
        uint,
        reasons,
    )
}

/// Slots when no model's architecture is known: one without a GPU, else by VRAM tier.
fn slots_without_metadata(facts: &Facts) -> (u64, Vec<String>) {
    let inputs = facts.inputs;
    if !facts.has_gpu() {
        let why = if inputs.models.iter().any(|m| m.size_vram > 0) {
            "Ollama uses VRAM but no GPU metrics arrive (GPU collector off or NVML missing): one request at a time until VRAM can be seen".to_owned()
        } else {
            format!(
                "no GPU: one request at a time; every slot would share the same {} CPU(s)",
                inputs
                    .cpu_count
                    .map_or_else(|| "?".to_owned(), |n| n.to_string())
            )
        };
        return (1, vec![why]);
    }
    let (n, tier) = match VramTier::of(facts) {
        VramTier::Gb4 => (1, "about 4 GB: one small model, one request at a time"),
        VramTier::Gb8 => (2, "about 8 GB: an 8B model, 2 parallel requests"),
        VramTier::Cpu | VramTier::Gb16 => (4, "16 GB and more: 4 parallel requests"),
    };
    (
        n,
        vec![format!(
            "no model metadata (nothing loaded, or /api/show unanswered); VRAM {} -> tier {tier}",
            human(to_f64(facts.vram_total))
        )],
    )
}

/// `OLLAMA_MAX_LOADED_MODELS`: as many of the largest loaded model as fit, one when a model
/// spills.
pub(super) fn max_loaded_models(keys: &mut KeyWriter, facts: &Facts, stress: Option<&str>) {
    let gpus = u64::try_from(facts.inputs.gpus.len()).unwrap_or(1).max(1);
    let largest = facts.inputs.models.iter().map(|m| m.size).max();
    let (models, why) = match largest {
        _ if !facts.spilling.is_empty() => (
            1,
            format!(
                "{}: another model would push more to CPU",
                stress.unwrap_or("a model spills")
            ),
        ),
        Some(size) if facts.has_gpu() => {
            let room = facts
                .vram_total
                .saturating_sub(facts.vram_other + MARGIN_BYTES);
            let n = (room / size.max(1)).clamp(1, 3 * gpus);
            (
                n,
                format!(
                    "{n} model(s) of {} (the largest loaded) fit in {} of VRAM (Ollama's auto limit is {} = 3 per GPU)",
                    human(to_f64(size)),
                    human(to_f64(room)),
                    3 * gpus
                ),
            )
        }
        Some(size) => {
            let ram = facts.inputs.ram_total.unwrap_or(0) / 2;
            let n = (ram / size.max(1)).clamp(1, 3);
            (
                n,
                format!(
                    "no GPU: {n} model(s) of {} fit in half the host memory ({})",
                    human(to_f64(size)),
                    human(to_f64(ram))
                ),
            )
        }
        None => models_when_nothing_is_loaded(facts, gpus),
    };
    keys.set(
        "OLLAMA_MAX_LOADED_MODELS",
        i64::try_from(models).unwrap_or(1),
        uint,
        vec![why],
    );
}

fn models_when_nothing_is_loaded(facts: &Facts, gpus: u64) -> (u64, String) {
    match VramTier::of(facts) {
        VramTier::Gb16 => (
            3 * gpus,
            format!(
                "nothing loaded; {} of VRAM: Ollama's default of 3 per GPU",
                human(to_f64(facts.vram_total))
            ),
        ),
        t => (
            1,
            format!(
                "nothing loaded; {} ({} tier): one model at a time",
                if facts.has_gpu() {
                    human(to_f64(facts.vram_total))
                } else {
                    "no GPU".to_owned()
                },
                t.label()
            ),
        ),
    }
}

/// `OLLAMA_KEEP_ALIVE`: by VRAM tier; shorter under memory pressure or spill, longer with
/// ample headroom.
pub(super) fn keep_alive(keys: &mut KeyWriter, facts: &Facts, stress: Option<&str>) {
    let (base, tier) = match VramTier::of(facts) {
        VramTier::Cpu | VramTier::Gb4 => (300, "up to about 4 GB of VRAM (or none): 5m"),
        VramTier::Gb8 => (600, "about 8 GB of VRAM: 10m"),
        VramTier::Gb16 => (900, "16 GB of VRAM and more: 15m"),
    };
    let mut reasons = vec![format!("tier: {tier}")];
    let ka = if let Some(p) = &facts.ram_pressure {
        reasons.push(format!("{p}: 2m, so idle models free their memory sooner"));
        120
    } else if !facts.spilling.is_empty() {
        reasons.push(format!("{}: 2m", stress.unwrap_or("a model spills")));
        120
    } else if facts.has_gpu()
        && facts.vram_util() < 0.5
        && facts
            .inputs
            .ram_total
            .zip(ram_available(facts.inputs))
            .is_some_and(|(t, a)| to_f64(a) >= to_f64(t) * 0.5)
    {
        reasons.push(format!(
            "ample headroom (VRAM {:.0}% used, host memory over half available: {}): 30m spares reloads",
            facts.vram_util() * 100.0,
            describe_ram(facts.inputs)
        ));
        1800
    } else {
        base
    };
    keys.set("OLLAMA_KEEP_ALIVE", ka, format_keep_alive, reasons);
}

/// `OLLAMA_MAX_QUEUE`: Ollama's default, with why it stays.
pub(super) fn max_queue(keys: &mut KeyWriter, slots: i64) {
    keys.set(
        "OLLAMA_MAX_QUEUE",
        512,
        uint,
        vec![format!(
            "only requests that need a model load wait in this queue (sched.go); Ollama's default 512 is kept ({slots} slot(s) serve the loaded models)"
        )],
    );
}
