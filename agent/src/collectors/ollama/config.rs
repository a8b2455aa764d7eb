//! `[ollama]`: where Ollama's API answers, its systemd unit, and the deadline of each call.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fields::{FieldError, unit_name_error};
use crate::sys::ollama::Api;

/// The Ollama server: HTTP API and systemd unit.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OllamaConfig {
    pub enabled: bool,
    /// Base URL of Ollama's API (plain http; Ollama serves no TLS itself).
    pub url: String,
    /// Its systemd unit.
    pub unit: String,
    /// Deadline of each API call; unset means `DEFAULT_PROBE_TIMEOUT`, or half the collector
    /// deadline when that is shorter.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub probe_timeout: Option<Duration>,
}

/// A local Ollama answers `HEAD /` in milliseconds; one that has not in 2 s is in trouble.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Default for OllamaConfig {
    fn default() -> Self {
        OllamaConfig {
            enabled: true,
            url: "http://127.0.0.1:11434".to_owned(),
            unit: "ollama.service".to_owned(),
            probe_timeout: None,
        }
    }
}

impl OllamaConfig {
    /// Each API call's deadline when the calls run under a collector `deadline`: what is set,
    /// else the default cut to half the deadline, so that a hung Ollama times out inside the
    /// tick and still yields `ollama.up = 0` for `ollama_down`. `Duration::MAX` for calls that
    /// run under no deadline (the tuner's).
    pub fn probe_timeout_within(&self, deadline: Duration) -> Duration {
        self.probe_timeout
            .unwrap_or_else(|| DEFAULT_PROBE_TIMEOUT.min(deadline / 2))
    }

    /// Checks relative to `[ollama]`; `collector_deadline` is the agent's, which an explicit
    /// `probe_timeout` must stay under.
    pub fn validate(&self, collector_deadline: Duration) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Err(e) = Api::new(&self.url, DEFAULT_PROBE_TIMEOUT) {
            errors.push(FieldError::new("url", e.to_string()));
        }
        match self.probe_timeout {
            Some(t) if t.is_zero() => {
                errors.push(FieldError::new("probe_timeout", "must be longer than 0s"));
            }
            // Cut off by the collector's deadline first, a hung Ollama would leave no
            // `ollama.up` at all, and `ollama_down` could never fire.
            Some(t) if self.enabled && t >= collector_deadline => {
                errors.push(FieldError::new(
                    "probe_timeout",
                    format!(
                        "must be shorter than the collector deadline ({}; agent.collector_deadline, \
                         or 80% of agent.interval), or a hung Ollama is never reported down",
                        humantime::format_duration(collector_deadline)
                    ),
                ));
            }
            _ => {}
        }
        // The unit's name goes into the drop-in's path and into D-Bus calls.
        if let Some(e) = unit_name_error(&self.unit) {
            errors.push(FieldError::new("unit", e));
        }
        errors
    }
}
