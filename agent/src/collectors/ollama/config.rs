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
    /// Deadline of each API call.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
}

impl Default for OllamaConfig {
    fn default() -> Self {
        OllamaConfig {
            enabled: true,
            url: "http://127.0.0.1:11434".to_owned(),
            unit: "ollama.service".to_owned(),
            probe_timeout: Duration::from_secs(2),
        }
    }
}

impl OllamaConfig {
    /// Checks relative to `[ollama]`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Err(e) = Api::new(&self.url, self.probe_timeout) {
            errors.push(FieldError::new("url", e.to_string()));
        }
        if self.probe_timeout.is_zero() {
            errors.push(FieldError::new("probe_timeout", "must be longer than 0s"));
        }
        // The unit's name goes into the drop-in's path and into D-Bus calls.
        if let Some(e) = unit_name_error(&self.unit) {
            errors.push(FieldError::new("unit", e));
        }
        errors
    }
}
