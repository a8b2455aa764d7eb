//! `[tuner]`: how the Ollama tuner decides and applies. Part of the product's interface.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fields::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunerMode {
    /// Recommend, log and export; never touch the unit.
    Observe,
    /// Write the drop-in and restart Ollama when a change is due.
    Apply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartWhen {
    Idle,
    Now,
    RestartWindow,
}

/// Pin a key to a value, or bound what the policy may choose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBound {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<toml::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TunerConfig {
    pub mode: TunerMode,
    /// `system`, `session`, or a D-Bus address (`unix:path=/run/...`).
    pub bus: String,
    /// The drop-in goes to `<dropin_dir>/<unit>.d/60-hostwarden.conf`.
    pub dropin_dir: PathBuf,
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    pub max_restarts_per_day: u32,
    pub restart_when: RestartWhen,
    /// `HH:MM-HH:MM` local time, with `restart_when = "window"`.
    pub window: String,
    #[serde(with = "humantime_serde")]
    pub verify_timeout: Duration,
    /// Per-key pins and bounds, keyed by the OLLAMA_* variable name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ollama: BTreeMap<String, KeyBound>,
    /// `[tuner.zfs_arc]`: lowering the ZFS ARC's limit to make room for Ollama.
    pub zfs_arc: crate::tuner::arc::config::ZfsArcConfig,
    /// `[tuner.resources]`: the unit's cgroup limits, set live through systemd.
    pub resources: crate::tuner::resources::config::ResourcesConfig,
}

impl Default for TunerConfig {
    fn default() -> Self {
        let mut ollama = BTreeMap::new();
        ollama.insert(
            "OLLAMA_NUM_PARALLEL".to_owned(),
            KeyBound {
                min: Some(toml::Value::Integer(1)),
                max: Some(toml::Value::Integer(8)),
                pin: None,
            },
        );
        TunerConfig {
            mode: TunerMode::Observe,
            bus: "system".to_owned(),
            dropin_dir: PathBuf::from("/etc/systemd/system"),
            settle: Duration::from_secs(600),
            cooldown: Duration::from_secs(1800),
            max_restarts_per_day: 4,
            restart_when: RestartWhen::Idle,
            window: "03:00-05:00".to_owned(),
            verify_timeout: Duration::from_secs(60),
            ollama,
            zfs_arc: crate::tuner::arc::config::ZfsArcConfig::default(),
            resources: crate::tuner::resources::config::ResourcesConfig::default(),
        }
    }
}

impl TunerConfig {
    /// Checks relative to `[tuner]`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        // The drop-in is written below it, as root.
        crate::fields::check_absolute_dir(&mut errors, "dropin_dir", &self.dropin_dir);
        if self.verify_timeout.is_zero() {
            errors.push(FieldError::new("verify_timeout", "must be longer than 0s"));
        }
        if let Err(e) = crate::tuner::gate::RestartWindow::parse(&self.window) {
            errors.push(FieldError::new("window", e));
        }
        if self.bus.trim().is_empty() {
            errors.push(FieldError::new(
                "bus",
                "must be \"system\", \"session\" or a D-Bus address",
            ));
        }
        errors.extend(crate::fields::under(
            "ollama",
            crate::tuner::policy::bounds::validate(&self.ollama),
        ));
        errors.extend(crate::fields::under("zfs_arc", self.zfs_arc.validate()));
        errors.extend(crate::fields::under("resources", self.resources.validate()));
        errors
    }
}
