//! What `[tuner.resources]` wants on a tick: fixed values as written, `"50%"` of the host's RAM,
//! and `"auto"` derived from the host and from what Ollama holds and the tuner planned. Pure:
//! the host's figures and Ollama's need are passed in.
//!
//! Memory `auto`: the ceiling is MemTotal minus `reserve` minus the part of the ZFS ARC the
//! kernel will not give back (up to `c_min`); the ARC above `c_min` counts as free, since the ARC
//! shrinks for Ollama when the unit asks for memory (it is not in MemAvailable, so a host that
//! trusted MemAvailable would leave it out twice). `memory_max` is that ceiling, and
//! `memory_high` is [`HIGH_FRACTION`] of the `memory_max` in force (fixed or derived), never
//! below Ollama's need. When Ollama's loaded models and the KV cache the tuner planned do not fit
//! under the ceiling, neither is set: a limit that starves the models would only get Ollama
//! OOM-killed, and the reason says so.
//!
//! CPU `auto`: `cpu_quota` is (logical CPUs − 1) × 100 %, `allowed_cpus` every CPU but CPU 0, so
//! the agent, sshd and the rest keep a core. On a one-CPU host there is no core to keep: left
//! alone, with that reason.

use std::collections::BTreeMap;

use super::config::{ResourcesConfig, Value, Want};
use super::limits::Limits;
use crate::tuner::policy::memory::human;

/// `memory_high` as a share of `memory_max`: above it the kernel reclaims from Ollama (page
/// cache first) before the hard limit would OOM-kill it.
pub const HIGH_FRACTION: f64 = 0.9;

/// The host's figures a derivation reads (from the tick's snapshot).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFacts {
    /// MemTotal.
    pub mem_total: Option<u64>,
    /// The ARC's size and `c_min`; both 0 without ZFS.
    pub arc_size: u64,
    pub arc_min: u64,
    pub cpus: Option<u64>,
}

/// What Ollama needs inside its memory cgroup (VRAM is not charged to it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OllamaNeed {
    /// Loaded models' bytes outside VRAM (`size - size_vram` of `/api/ps`).
    pub models_ram: u64,
    /// The KV cache the tuner's plan puts in RAM (models with nothing in VRAM): bytes per token
    /// × planned context × planned slots. Counted on top of `models_ram`, which already holds
    /// today's KV: the double count errs on the side of room.
    pub planned_kv_ram: u64,
    /// How the figures were reached.
    pub why: String,
}

impl OllamaNeed {
    pub fn total(&self) -> u64 {
        self.models_ram.saturating_add(self.planned_kv_ram)
    }
}

/// The limits wanted now, and each key's reasons (also for keys left alone).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wanted {
    pub limits: Limits,
    pub reasons: BTreeMap<String, Vec<String>>,
}

#[allow(clippy::cast_precision_loss)]
fn h(b: u64) -> String {
    human(b as f64)
}

/// Resolves every configured key. `need` is `None` when Ollama's loaded models are unknown
/// (its `/api/ps` did not answer): memory `auto` then holds off.
pub fn resolve(cfg: &ResourcesConfig, host: &HostFacts, need: Option<&OllamaNeed>) -> Wanted {
    let mut w = Wanted::default();
    let wanted = cfg.wanted();
    let ceiling = memory_ceiling(cfg.reserve_bytes(), host, need);
    for (key, want) in &wanted {
        let got: Result<(Value, String), String> = match (*key, want) {
            (_, Want::Fixed(v)) => Ok((v.clone(), "fixed in [tuner.resources]".to_owned())),
            (_, Want::RamPercent(p)) => match host.mem_total {
                Some(t) => Ok((
                    Value::Bytes(t / 100 * p),
                    format!("{p}% of MemTotal {}", h(t)),
                )),
                None => Err(format!(
                    "{p}% of RAM: MemTotal unknown (host collector off?)"
                )),
            },
            ("memory_max", Want::Auto) => ceiling.clone().map(|(b, why)| (Value::Bytes(b), why)),
            ("memory_high", Want::Auto) => {
                let max = wanted.iter().find_map(|(k, v)| match (*k, v) {
                    ("memory_max", Want::Fixed(Value::Bytes(b))) => Some(Ok((*b, "fixed".into()))),
                    ("memory_max", Want::RamPercent(p)) => host
                        .mem_total
                        .map(|t| Ok((t / 100 * p, format!("{p}% of RAM")))),
                    _ => None,
                });
                max.unwrap_or_else(|| ceiling.clone())
                    .map(|(max, why)| high_of(max, &why, need))
            }
            ("cpu_quota", Want::Auto) => cpus_to_keep(host).map(|n| {
                (
                    Value::UsecPerSec((n - 1) * 1_000_000),
                    format!(
                        "{n} logical CPUs: {}% leaves one core to the host",
                        (n - 1) * 100
                    ),
                )
            }),
            ("allowed_cpus", Want::Auto) => cpus_to_keep(host).map(|n| {
                let cpus: Vec<u32> = (1..u32::try_from(n).unwrap_or(u32::MAX)).collect();
                (
                    Value::Cpus(cpus),
                    format!("{n} logical CPUs: 1-{} leaves CPU 0 to the host", n - 1),
                )
            }),
            (k, Want::Auto) => Err(format!("{k} has no automatic value")),
        };
        let reasons = w.reasons.entry((*key).to_owned()).or_default();
        match got {
            Ok((v, why)) => {
                reasons.push(why);
                w.limits.insert((*key).to_owned(), v);
            }
            Err(why) => reasons.push(format!("left alone: {why}")),
        }
    }
    w
}

/// CPUs when at least two: one is kept for the host.
fn cpus_to_keep(host: &HostFacts) -> Result<u64, String> {
    match host.cpus {
        Some(n) if n >= 2 => Ok(n),
        Some(n) => Err(format!("{n} logical CPU: no core to keep for the host")),
        None => Err("the logical CPU count is unknown (host collector off?)".to_owned()),
    }
}

/// `memory_max` for `auto`, with its reason, or why there is none.
fn memory_ceiling(
    reserve: u64,
    host: &HostFacts,
    need: Option<&OllamaNeed>,
) -> Result<(u64, String), String> {
    let total = host
        .mem_total
        .ok_or("MemTotal unknown (host collector off?)")?;
    let need = need.ok_or("Ollama's loaded models are unknown (/api/ps did not answer)")?;
    // The ARC up to c_min stays; above it the kernel takes it back when the unit needs memory.
    let pinned_arc = host.arc_size.min(host.arc_min);
    let ceiling = total.saturating_sub(reserve).saturating_sub(pinned_arc);
    let arc = if host.arc_size > 0 {
        format!(
            ", ARC {} of which {} above c_min counts as free",
            h(host.arc_size),
            h(host.arc_size - pinned_arc)
        )
    } else {
        String::new()
    };
    let base = format!(
        "MemTotal {} minus reserve {}{arc}: {}",
        h(total),
        h(reserve),
        h(ceiling)
    );
    if need.total() > ceiling {
        return Err(format!(
            "{base} would starve Ollama, which needs {} ({}); no limit set",
            h(need.total()),
            need.why
        ));
    }
    Ok((
        ceiling,
        format!("{base}; Ollama needs {} ({})", h(need.total()), need.why),
    ))
}

/// `memory_high` below `max`: [`HIGH_FRACTION`] of it, never under Ollama's need.
fn high_of(max: u64, why_max: &str, need: Option<&OllamaNeed>) -> (Value, String) {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let share = (max as f64 * HIGH_FRACTION) as u64;
    // A page multiple, as the kernel keeps it.
    let share = share / 4096 * 4096;
    let need = need.map_or(0, OllamaNeed::total);
    let high = share.max(need).min(max);
    let why = if high == share {
        format!(
            "{:.0}% of memory_max {} ({why_max})",
            HIGH_FRACTION * 100.0,
            h(max)
        )
    } else {
        format!(
            "Ollama's need {}, above {:.0}% of memory_max {}",
            h(need),
            HIGH_FRACTION * 100.0,
            h(max)
        )
    };
    (Value::Bytes(high), why)
}

#[cfg(test)]
#[path = "auto_tests.rs"]
mod tests;
