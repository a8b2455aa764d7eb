//! The decision (pure): which `zfs_arc_max` leaves Ollama the host memory it needs, and whether
//! to move to it now.
//!
//! MemAvailable leaves the ARC out, and Ollama judges a load by it (ollama/ollama #5700). So the
//! ARC may be as large as leaves MemAvailable holding what Ollama still has to bring into RAM
//! plus the reserve: `size + MemAvailable - (missing + reserve)`, where `missing` is the host-RAM
//! part of the loaded models (size - size_vram from /api/ps: a CPU model or the spilled layers)
//! minus what Ollama's processes already hold resident. Counting the resident part out keeps the
//! value still once a model has loaded: its pages left MemAvailable, and they leave `missing`
//! too. Lowering `zfs_arc_max` makes the ARC evict down to it, so every byte the ARC gives up
//! shows up in MemAvailable, and the same formula gives the same value on the next tick while
//! the ARC shrinks: no ratchet.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::tuner::policy::memory::human;

/// OpenZFS refuses a `zfs_arc_max` under 64 MiB (MIN_ARC_MAX) or not above `c_min`.
pub const MIN_ARC_MAX: u64 = 64 << 20;

/// What Ollama holds or needs in host RAM, from its view this tick.
#[derive(Debug, Clone, PartialEq)]
pub enum OllamaNeed {
    /// Not answering (stopped): nothing of it to make room for.
    Down,
    /// Up, but `/api/ps` unanswered (a load blocks it on v0.32.4+): keep what is set.
    Unknown,
    Loaded {
        /// Σ (size - size_vram) over the loaded models.
        ram: u64,
        /// RSS of Ollama's server and runners, when its process was found.
        resident: u64,
        /// `name size/size_vram` per model with a host-RAM part, for the reason.
        models: Vec<String>,
    },
}

/// The host and ARC figures of the tick (arcstats and /proc/meminfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMemory {
    pub available: u64,
    pub arc_size: u64,
    pub arc_c_min: u64,
}

/// The limits the decision keeps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The `c_max` in force when the agent started (what it restores).
    pub boot: u64,
    pub floor: u64,
    pub min_max: u64,
    pub reserve: u64,
}

/// The `zfs_arc_max` wanted now and why, with the figures behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    pub max: u64,
    pub reason: String,
    #[serde(default)]
    pub figures: Figures,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub mem_available: u64,
    pub arc_size: u64,
    pub arc_c_min: u64,
    pub ollama_ram: u64,
    pub ollama_resident: u64,
    pub reserve: u64,
    pub lowest: u64,
    pub boot: u64,
}

/// The lowest value the agent may set: `c_min + floor`, the operator's bound, OpenZFS's own.
pub fn lowest(mem: &HostMemory, l: &Limits) -> u64 {
    (mem.arc_c_min + l.floor)
        .max(l.min_max)
        .max(MIN_ARC_MAX + 1)
}

/// The wanted `zfs_arc_max`; `None` when Ollama's need is unknown this tick (keep what is set).
pub fn want(mem: &HostMemory, need: &OllamaNeed, l: &Limits) -> Option<Want> {
    let low = lowest(mem, l);
    let mut figures = Figures {
        mem_available: mem.available,
        arc_size: mem.arc_size,
        arc_c_min: mem.arc_c_min,
        reserve: l.reserve,
        lowest: low,
        boot: l.boot,
        ..Figures::default()
    };
    let boot = |reason: String, figures: Figures| Want {
        max: l.boot,
        reason,
        figures,
    };
    let (ram, resident, models) = match need {
        OllamaNeed::Unknown => return None,
        OllamaNeed::Down => {
            return Some(boot(
                "Ollama is not answering: the boot value".to_owned(),
                figures,
            ));
        }
        OllamaNeed::Loaded {
            ram,
            resident,
            models,
        } => (*ram, *resident, models),
    };
    figures.ollama_ram = ram;
    figures.ollama_resident = resident;
    if ram == 0 {
        return Some(boot(
            "no Ollama model in host RAM: the boot value".to_owned(),
            figures,
        ));
    }
    let missing = ram - resident.min(ram);
    let wanted_available = missing + l.reserve;
    // The ARC size that leaves MemAvailable at `wanted_available` (negative: none would).
    let room = i128::from(mem.arc_size) + i128::from(mem.available) - i128::from(wanted_available);
    let need_text = format!(
        "Ollama holds {} in host RAM ({}), {} of it resident: {} still to load + reserve {} = {} \
         wanted available; MemAvailable {}, ARC {} (c_min {})",
        human_u(ram),
        models.join(", "),
        human_u(resident.min(ram)),
        human_u(missing),
        human_u(l.reserve),
        human_u(wanted_available),
        human_u(mem.available),
        human_u(mem.arc_size),
        human_u(mem.arc_c_min),
    );
    let (max, tail) = if room >= i128::from(l.boot) {
        (
            l.boot,
            format!("the ARC may grow to its boot maximum {}", human_u(l.boot)),
        )
    } else if room <= i128::from(low) {
        (
            low,
            format!(
                "the ARC may hold {} at most; kept at the lowest allowed {} (c_min + floor, \
                 operator min_max)",
                human_i(room),
                human_u(low)
            ),
        )
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let max = room as u64;
        (max, format!("the ARC may hold {} at most", human_u(max)))
    };
    Some(Want {
        max,
        reason: format!("{need_text}: {tail}"),
        figures,
    })
}

/// What to do with a wanted value, given the one in force and the last change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Change,
    Keep(String),
}

/// Hysteresis: move only by `step` or more (the return to the boot value excepted, so the boot
/// value comes back exactly), and at most once per `hold`.
pub fn verdict(
    want: u64,
    held: u64,
    boot: u64,
    step: u64,
    hold: Duration,
    since_change: Option<Duration>,
) -> Verdict {
    if want == held {
        return Verdict::Keep("no change".to_owned());
    }
    if want != boot && want.abs_diff(held) < step {
        return Verdict::Keep(format!(
            "moved {} only, under the {} step",
            human_u(want.abs_diff(held)),
            human_u(step)
        ));
    }
    match since_change {
        Some(since) if since < hold => Verdict::Keep(format!(
            "last change {}s ago, under the {}s hold",
            since.as_secs(),
            hold.as_secs()
        )),
        _ => Verdict::Change,
    }
}

#[allow(clippy::cast_precision_loss)]
fn human_u(b: u64) -> String {
    human(b as f64)
}

#[allow(clippy::cast_precision_loss)]
fn human_i(b: i128) -> String {
    human(b as f64)
}

#[cfg(test)]
mod tests;
