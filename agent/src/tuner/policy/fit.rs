//! The facts the policy reads (VRAM, spill, pressure, what is in force) and the slot
//! arithmetic: how many parallel slots of a given context fit in the VRAM left after weights,
//! compute and a margin, per Ollama era (MEMORY.md).

use crate::tuner::policy::inputs::{ModelInput, PolicyInputs};
use crate::tuner::policy::memory::{
    BATCH_SURCHARGE_BYTES, COMPUTE_BYTES, Era, KvType, MARGIN_BYTES, human, kv_bytes_per_token,
    single_slot_family,
};

/// VRAM use above this share of the total calls for fewer slots or a q8_0 KV cache.
pub const VRAM_HIGH: f64 = 0.9;
/// PSI memory full avg60 at or above this is memory pressure (the `memory_pressure` rule warns
/// at 0.1).
pub const PRESSURE_HIGH: f64 = 0.1;
/// The smallest context the policy shrinks to before giving up a slot.
pub const MIN_CONTEXT: u64 = 2048;

#[allow(clippy::cast_precision_loss)]
pub fn to_f64(v: u64) -> f64 {
    v as f64
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn floor(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.floor() as u64
    } else {
        0
    }
}

/// Memory a new allocation can get: MemAvailable plus the ZFS ARC the kernel can shrink (the
/// ARC is neither page cache nor in MemAvailable; judged by MemAvailable alone, a ZFS host
/// whose ARC has grown looks short of memory).
pub fn ram_available(i: &PolicyInputs) -> Option<u64> {
    i.ram_available
        .map(|a| a.saturating_add(i.ram_arc_reclaimable.unwrap_or(0)))
}

/// "12.1 GiB available of 64.0 GiB, of which 7.4 GiB ZFS ARC it can shrink".
pub fn describe_ram(i: &PolicyInputs) -> String {
    let avail = human(to_f64(ram_available(i).unwrap_or(0)));
    let total = i
        .ram_total
        .map_or_else(String::new, |t| format!(" of {}", human(to_f64(t))));
    match i.ram_arc_reclaimable {
        Some(arc) if arc > 0 => format!(
            "{avail} available{total}, of which {} ZFS ARC it can shrink",
            human(to_f64(arc))
        ),
        _ => format!("{avail} available{total}"),
    }
}

/// Facts every rule reads, computed once.
pub struct Facts<'a> {
    pub inputs: &'a PolicyInputs,
    pub era: Era,
    pub vram_total: u64,
    pub vram_used: u64,
    /// VRAM held by something other than Ollama's loaded models.
    pub vram_other: u64,
    pub spilling: Vec<&'a ModelInput>,
    pub ram_pressure: Option<String>,
    /// NUM_PARALLEL and KV type in force (unit environment, else Ollama's defaults).
    pub current_parallel: u64,
    pub current_kv: KvType,
}

impl<'a> Facts<'a> {
    pub fn new(i: &'a PolicyInputs) -> Facts<'a> {
        let vram_total: u64 = i.gpus.iter().map(|g| g.total).sum();
        let vram_used: u64 = i.gpus.iter().map(|g| g.used).sum();
        let ollama_vram: u64 = i.models.iter().map(|m| m.size_vram).sum();
        let ram_pressure = match (i.memory_pressure, i.ram_total, i.ram_available) {
            (Some(p), _, _) if p >= PRESSURE_HIGH => Some(format!(
                "memory pressure: tasks stalled on memory {:.0}% of the last minute (PSI full avg60, threshold {:.0}%)",
                p * 100.0,
                PRESSURE_HIGH * 100.0
            )),
            (_, Some(t), Some(_))
                if t > 0 && to_f64(ram_available(i).unwrap_or(0)) < to_f64(t) * 0.1 =>
            {
                Some(format!("host memory low: {} (under 10%)", describe_ram(i)))
            }
            _ => None,
        };
        Facts {
            inputs: i,
            era: Era::of(i.version),
            vram_total,
            vram_used,
            vram_other: vram_used.saturating_sub(ollama_vram),
            // A model partly in VRAM spills even when no GPU metrics arrive (NVML missing, a
            // non-NVIDIA GPU); a model wholly in RAM on a host without GPU does not.
            spilling: if vram_total > 0 || i.models.iter().any(|m| m.size_vram > 0) {
                i.models.iter().filter(|m| m.size_vram < m.size).collect()
            } else {
                Vec::new()
            },
            ram_pressure,
            current_parallel: i
                .current
                .get("OLLAMA_NUM_PARALLEL")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1)
                .max(1),
            current_kv: i
                .current
                .get("OLLAMA_KV_CACHE_TYPE")
                .and_then(|v| KvType::parse(v))
                .unwrap_or(KvType::F16),
        }
    }

    pub fn has_gpu(&self) -> bool {
        self.vram_total > 0
    }

    pub fn vram_util(&self) -> f64 {
        if self.vram_total == 0 {
            0.0
        } else {
            to_f64(self.vram_used) / to_f64(self.vram_total)
        }
    }

    /// VRAM above 90 % or a model spilling to CPU.
    pub fn vram_stress(&self) -> Option<String> {
        if let Some(m) = self.spilling.first() {
            return Some(format!(
                "{} spills to CPU: {} of {} in VRAM, {} in RAM",
                m.name,
                human(to_f64(m.size_vram)),
                human(to_f64(m.size)),
                human(to_f64(m.size - m.size_vram))
            ));
        }
        (self.has_gpu() && self.vram_util() > VRAM_HIGH).then(|| {
            format!(
                "VRAM {:.0}% used ({} of {}), above {:.0}%",
                self.vram_util() * 100.0,
                human(to_f64(self.vram_used)),
                human(to_f64(self.vram_total)),
                VRAM_HIGH * 100.0
            )
        })
    }

    /// The largest GPU, for Ollama's VRAM tiers.
    pub fn largest_gpu(&self) -> u64 {
        self.inputs.gpus.iter().map(|g| g.total).max().unwrap_or(0)
    }

    /// True when `m` takes NUM_PARALLEL slots; false when Ollama forces it to one.
    pub fn takes_slots(&self, m: &ModelInput) -> bool {
        !m.arch.as_ref().is_some_and(|a| a.embedding_only)
            && !single_slot_family(&m.family, self.era)
    }

    /// Models that take NUM_PARALLEL slots, and those Ollama forces to one.
    pub fn slotted(&self) -> (Vec<&'a ModelInput>, Vec<&'a ModelInput>) {
        self.inputs.models.iter().partition(|m| self.takes_slots(m))
    }

    /// Weights of a loaded model: its reported size minus the KV it holds now and the compute
    /// buffers (at least half its size, in case the current settings are unknown).
    pub fn weights(&self, m: &ModelInput) -> u64 {
        let kv_now = match (&m.arch, m.context) {
            (Some(a), Some(ctx)) => {
                // Asked without collecting the slotted models: this runs for every model
                // each time the slot arithmetic is set up or a model's admission is judged.
                let slotted = self.inputs.models.iter();
                let slots = if slotted
                    .filter(|s| self.takes_slots(s))
                    .any(|s| s.name == m.name)
                {
                    self.current_parallel
                } else {
                    1
                };
                floor(kv_bytes_per_token(a, self.current_kv) * to_f64(ctx) * to_f64(slots))
            }
            _ => 0,
        };
        m.size
            .saturating_sub(kv_now)
            .saturating_sub(COMPUTE_BYTES)
            .max(m.size / 2)
    }
}

/// Slots that fit, with the arithmetic in words; `None` when a model has no metadata.
pub struct SlotFit {
    pub slots: u64,
    pub context: u64,
    pub reasons: Vec<String>,
    /// False when not even one slot fits at the smallest context (the weights alone exceed
    /// the budget): one slot is still the least Ollama runs, and the rest spills to CPU.
    pub fits: bool,
}

/// KV bytes per token of `m` at `kv`.
fn per_token(m: &ModelInput, kv: KvType) -> f64 {
    m.arch.as_ref().map_or(0.0, |a| kv_bytes_per_token(a, kv))
}

/// The context `m` really gets: Ollama caps num_ctx at the model's trained context.
fn trained(m: &ModelInput, context: u64) -> u64 {
    m.arch.as_ref().map_or(context, |a| {
        if a.context_length > 0 {
            context.min(a.context_length)
        } else {
            context
        }
    })
}

/// The VRAM left for the KV cache at one context, and what one parallel slot costs.
struct KvBudget {
    /// VRAM for slots after weights, compute, margin, other processes and single-slot models.
    budget: f64,
    /// KV of the single-slot models (taken off the budget).
    single_kv: f64,
    /// KV of one slot across the multi-slot models, weighted for the era's estimate.
    per_slot: f64,
}

/// What fits for the models loaded now, at one KV type.
struct SlotArithmetic<'f, 'a> {
    facts: &'f Facts<'a>,
    kv: KvType,
    multi: Vec<&'a ModelInput>,
    single: Vec<&'a ModelInput>,
    weights: u64,
    compute: u64,
}

impl<'f, 'a> SlotArithmetic<'f, 'a> {
    fn budget_at(&self, context: u64) -> KvBudget {
        let kv_of = |models: &[&ModelInput]| -> f64 {
            models
                .iter()
                .map(|m| per_token(m, self.kv) * to_f64(trained(m, context)))
                .sum()
        };
        let single_kv = kv_of(&self.single);
        let per_slot = kv_of(&self.multi) * self.facts.era.kv_weight();
        let fixed = self.weights + self.compute + MARGIN_BYTES + self.facts.vram_other;
        KvBudget {
            budget: to_f64(self.facts.vram_total) - to_f64(fixed) - single_kv,
            single_kv,
            per_slot,
        }
    }

    /// The budget's arithmetic in words.
    fn budget_reason(&self, b: &KvBudget) -> String {
        let facts = self.facts;
        format!(
            "KV budget {} = VRAM {} - weights {} - compute {} - margin {}{}{}",
            human(b.budget.max(0.0)),
            human(to_f64(facts.vram_total)),
            human(to_f64(self.weights)),
            human(to_f64(self.compute)),
            human(to_f64(MARGIN_BYTES)),
            if facts.vram_other > 0 {
                format!(
                    " - {} used by other processes",
                    human(to_f64(facts.vram_other))
                )
            } else {
                String::new()
            },
            if b.single_kv > 0.0 {
                format!(" - {} for single-slot models", human(b.single_kv))
            } else {
                String::new()
            },
        )
    }

    /// What one slot costs, model by model.
    fn slot_cost_reason(&self, b: &KvBudget, context: u64, slots: u64) -> String {
        let detail: Vec<String> = self
            .multi
            .iter()
            .map(|m| {
                format!(
                    "{} {} B/token x {} tokens",
                    m.name,
                    per_token(m, self.kv),
                    trained(m, context)
                )
            })
            .collect();
        format!(
            "one slot costs {} of {} KV ({}){}; {} slots fit",
            human(b.per_slot),
            self.kv.as_str(),
            detail.join(" + "),
            if self.facts.era.kv_weight() > 1.0 {
                ", counted 1.5x for the legacy graph estimate"
            } else {
                ""
            },
            slots
        )
    }

    /// v0.30+: a model loaded next to another is admitted only if its file + f16 KV for all
    /// slots + batch surcharge <= 80 % of the VRAM free for it. Returns the slots admitted.
    fn admitted_next_to_others(
        &self,
        context: u64,
        mut slots: u64,
        mut reasons: Option<&mut Vec<String>>,
    ) -> u64 {
        let facts = self.facts;
        if facts.era != Era::Fit || facts.inputs.models.len() <= 1 {
            return slots;
        }
        for m in &self.multi {
            let others: u64 = facts
                .inputs
                .models
                .iter()
                .filter(|o| o.name != m.name)
                .map(|o| o.size)
                .sum();
            let free = to_f64(facts.vram_total.saturating_sub(others + facts.vram_other));
            let f16_slot = per_token(m, KvType::F16) * to_f64(trained(m, context));
            let room = 0.8 * free - to_f64(facts.weights(m)) - to_f64(BATCH_SURCHARGE_BYTES);
            let admitted = if f16_slot > 0.0 {
                floor(room / f16_slot)
            } else {
                slots
            };
            if admitted < slots {
                if let Some(reasons) = reasons.as_deref_mut() {
                    reasons.push(format!(
                        "Ollama >= 0.30 admits {} next to the other models only with {} slots (80% of {} free, f16 KV estimate {} per slot)",
                        m.name, admitted, human(free), human(f16_slot)
                    ));
                }
                slots = admitted;
            }
        }
        slots
    }

    /// The arithmetic for the models loaded now; `None` without a GPU or without every
    /// model's metadata.
    fn new(facts: &'f Facts<'a>, kv: KvType) -> Option<SlotArithmetic<'f, 'a>> {
        let models = &facts.inputs.models;
        if !facts.has_gpu() || models.is_empty() || models.iter().any(|m| m.arch.is_none()) {
            return None;
        }
        let (multi, single) = facts.slotted();
        Some(SlotArithmetic {
            facts,
            kv,
            multi,
            single,
            weights: models.iter().map(|m| facts.weights(m)).sum(),
            compute: COMPUTE_BYTES * u64::try_from(models.len()).unwrap_or(1),
        })
    }

    /// The slots admitted at `context` (0 when not one fits), with the arithmetic in words
    /// pushed to `reasons` when given: the words are only wanted for the context decided on.
    fn slots_at(&self, context: u64, mut reasons: Option<&mut Vec<String>>) -> u64 {
        let b = self.budget_at(context);
        let slots = if b.per_slot > 0.0 {
            floor(b.budget / b.per_slot)
        } else {
            1
        };
        if let Some(reasons) = reasons.as_deref_mut() {
            reasons.push(self.budget_reason(&b));
            if b.per_slot > 0.0 {
                reasons.push(self.slot_cost_reason(&b, context, slots));
            }
        }
        self.admitted_next_to_others(context, slots, reasons)
    }

    /// `context`, halved down to `MIN_CONTEXT` until one slot fits.
    fn context_that_fits(&self, mut context: u64) -> u64 {
        while self.slots_at(context, None) == 0 && context > MIN_CONTEXT {
            context = (context / 2).max(MIN_CONTEXT);
        }
        context
    }
}

/// The context at which one slot of `kv` fits, as `slots_that_fit` finds it, without the
/// reasons (issue 20: the f16 trial ran every tick and formatted words nobody read).
pub fn context_that_fits(facts: &Facts, kv: KvType, context: u64) -> Option<u64> {
    SlotArithmetic::new(facts, kv).map(|fit| fit.context_that_fits(context))
}

/// How many parallel slots of `context` tokens fit at `kv`, halving the context (down to
/// `MIN_CONTEXT`) until one does; `None` without a GPU or without every model's metadata.
pub fn slots_that_fit(facts: &Facts, kv: KvType, context: u64) -> Option<SlotFit> {
    let fit = SlotArithmetic::new(facts, kv)?;
    let context = fit.context_that_fits(context);
    let mut reasons = Vec::new();
    let slots = fit.slots_at(context, Some(&mut reasons));
    if slots == 0 {
        reasons.push(format!(
            "not one slot fits even at {context} tokens: 1 slot, the rest spills to CPU"
        ));
    }
    Some(SlotFit {
        slots: slots.max(1),
        context,
        reasons,
        fits: slots >= 1,
    })
}
