//! Is Ollama idle enough to restart? Its API has no busy flag (`/api/ps` lists loaded models and
//! their expiry, not requests in flight), so this judges from what `/api/ps`'s `expires_at` can
//! tell (a runner's expiry is set when its last request *finishes*; it stands still while a request runs, advances when one finishes,
//! and sits in the past while a request outlives the keep-alive), together with the GPU's
//! utilisation and the Ollama process's CPU. Pure; the reason is logged and journaled.

use std::time::Duration;

use crate::sys::ollama::PsModel;
#[cfg(test)]
use crate::sys::ollama::rfc3339_ms;

/// GPU busy share at or above which Ollama is judged busy.
pub const GPU_BUSY: f64 = 0.10;
/// Ollama CPU use (cores) at or above which it is judged busy.
pub const CPU_BUSY: f64 = 0.10;

/// One poll of `/api/ps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsObservation {
    pub at_ms: u64,
    /// `None` when /api/ps did not answer in time: since v0.32.4 it blocks during a model load.
    pub models: Option<Vec<LoadedModel>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModel {
    pub name: String,
    pub expires_at_ms: i64,
}

/// The expiries the idle judgement reads from `/api/ps`. A model whose `expires_at` cannot be
/// read is kept with expiry 0 (in the past), which judges it busy: the safe side.
pub fn loaded_models(models: &[PsModel]) -> Vec<LoadedModel> {
    models
        .iter()
        .map(|m| LoadedModel {
            name: m.name.clone(),
            expires_at_ms: m.expires_at_ms().unwrap_or(0),
        })
        .collect()
}

/// Reads an `/api/ps` body into the expiries; `None` when it is not one. The tests feed the
/// captured bodies through it; the tuner gets its models from `Api::ps_within`.
#[cfg(test)]
fn parse_ps(body: &[u8]) -> Option<Vec<LoadedModel>> {
    crate::sys::ollama::parse_ps(body)
        .ok()
        .map(|m| loaded_models(&m))
}

fn ago(ms: i64) -> String {
    humantime::format_duration(Duration::from_secs(u64::try_from(ms / 1000).unwrap_or(0)))
        .to_string()
}

/// Busy by the machine's counters, before the API is asked: the GPU or Ollama's CPU.
fn machine_busy(gpu_utilization: Option<f64>, ollama_cpu_cores: Option<f64>) -> Option<String> {
    if let Some(u) = gpu_utilization
        && u >= GPU_BUSY
    {
        return Some(format!(
            "GPU {:.0}% busy (idle below {:.0}%)",
            u * 100.0,
            GPU_BUSY * 100.0
        ));
    }
    if let Some(c) = ollama_cpu_cores
        && c >= CPU_BUSY
    {
        return Some(format!(
            "Ollama uses {c:.2} CPU cores (idle below {CPU_BUSY:.2})"
        ));
    }
    None
}

/// Judges idleness from the last two polls and the machine's counters. Returns the verdict and
/// the reason in words, both sides of it.
pub fn judge_idle(
    prev: Option<&PsObservation>,
    cur: Option<&PsObservation>,
    gpu_utilization: Option<f64>,
    ollama_cpu_cores: Option<f64>,
) -> (bool, String) {
    if let Some(busy) = machine_busy(gpu_utilization, ollama_cpu_cores) {
        return (false, busy);
    }
    let Some(cur) = cur else {
        return (false, "no /api/ps poll yet".to_owned());
    };
    let Some(models) = &cur.models else {
        return (
            false,
            "/api/ps did not answer in time: a model load is likely running".to_owned(),
        );
    };
    let quiet = format!(
        "GPU {}, Ollama CPU {}",
        gpu_utilization.map_or("unknown".to_owned(), |u| format!("{:.0}%", u * 100.0)),
        ollama_cpu_cores.map_or("unknown".to_owned(), |c| format!("{c:.2} cores"))
    );
    if models.is_empty() {
        return (true, format!("no model loaded; {quiet}"));
    }
    let now = i64::try_from(cur.at_ms).unwrap_or(i64::MAX);
    if let Some(m) = models.iter().find(|m| m.expires_at_ms < now) {
        return (
            false,
            format!(
                "{}: expires_at is in the past: a request outlives the keep-alive, or it is unloading",
                m.name
            ),
        );
    }
    let Some(prev) = prev.and_then(|p| p.models.as_ref()) else {
        return (
            false,
            "one /api/ps poll so far: need two to see expires_at stand still".to_owned(),
        );
    };
    for m in models {
        match prev.iter().find(|p| p.name == m.name) {
            None => return (false, format!("{} was just loaded", m.name)),
            Some(p) if p.expires_at_ms != m.expires_at_ms => {
                return (
                    false,
                    format!(
                        "{}: expires_at moved between polls: requests are finishing (or the first ones after a load still run)",
                        m.name
                    ),
                );
            }
            Some(_) => {}
        }
    }
    let latest = models.iter().map(|m| m.expires_at_ms).min().unwrap_or(now);
    (
        true,
        format!(
            "{} model(s) loaded, expires_at unchanged between polls (next expiry in {}); {quiet}",
            models.len(),
            ago(latest - now)
        ),
    )
}

#[cfg(test)]
mod tests;
