//! The configuration: one TOML file, every key documented in `config/hostwarden.toml` (which is
//! also what `print-default-config` prints). Types parse rather than validate: a value that
//! deserializes is a usable value; cross-field checks live in `validate()`.

mod defaults;
mod load;
mod reload;

pub use defaults::default_rules;
pub use load::{ConfigError, load_file, load_or_default, parse_str};
pub use reload::{ReloadEvent, ReloadSource, watch_config};

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::collectors::CollectorsConfig;
pub use crate::collectors::gpu::GpuConfig;
pub use crate::collectors::host::HostConfig;
pub use crate::collectors::ollama::OllamaConfig;
pub use crate::collectors::zfs::ZfsConfig;
pub use crate::exporters::alertmanager::config::AlertmanagerConfig;
pub use crate::exporters::config::OtlpConfig;
pub use crate::exporters::prometheus::config::PrometheusConfig;
use crate::fields::check_absolute_dir;
pub use crate::fields::{FieldError, NonEmptyString, Ratio, under};

/// Most alert events the outbox may hold: ten times the default, some 70 MB at the largest
/// event (a 1 KiB summary), where a million events cost 664 MB.
pub const MAX_OUTBOX_CAPACITY: usize = 100_000;
pub use crate::rules::AlertingConfig;
pub use crate::rules::config::RuleConfig;
pub use crate::tuner::config::{KeyBound, TunerConfig, TunerMode};

/// Where the agent looks when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/hostwarden/hostwarden.toml";

/// The text of `config/hostwarden.toml`: the full default config with a comment on every key.
pub const DEFAULT_TEXT: &str = include_str!("../../../config/hostwarden.toml");

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub agent: AgentConfig,
    pub host: HostConfig,
    pub gpu: GpuConfig,
    pub zfs: ZfsConfig,
    pub ollama: OllamaConfig,
    pub tuner: TunerConfig,
    pub export: ExportConfig,
    pub rules: Vec<RuleConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            agent: AgentConfig::default(),
            host: HostConfig::default(),
            gpu: GpuConfig::default(),
            zfs: ZfsConfig::default(),
            ollama: OllamaConfig::default(),
            tuner: TunerConfig::default(),
            export: ExportConfig::default(),
            rules: default_rules(),
        }
    }
}

impl Config {
    /// Every section's checks, each error's path prefixed with its section (each component
    /// reports paths relative to its own section), plus the checks across sections.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors: Vec<FieldError> = under("agent", self.agent.validate()).collect();
        errors.extend(under("host", self.host.validate()));
        errors.extend(under("gpu", self.gpu.validate()));
        errors.extend(under("zfs", self.zfs.validate()));
        errors.extend(under(
            "ollama",
            self.ollama.validate(self.collector_deadline()),
        ));
        errors.extend(under("export", self.export.validate()));
        errors.extend(under("tuner", self.tuner.validate()));
        errors.extend(under(
            "rules",
            crate::rules::config::validate_rules(&self.rules),
        ));
        errors
    }

    /// The sections the collectors are built from.
    pub fn collectors(&self) -> CollectorsConfig<'_> {
        CollectorsConfig {
            host: &self.host,
            gpu: &self.gpu,
            zfs: &self.zfs,
            ollama: &self.ollama,
            deadline: self.collector_deadline(),
        }
    }

    /// What the rules' alerting needs: the rules, and where its state and outbox live.
    pub fn alerting(&self) -> AlertingConfig<'_> {
        AlertingConfig {
            rules: &self.rules,
            state_dir: &self.agent.state_dir,
            outbox_capacity: self.agent.outbox_capacity,
        }
    }

    /// The deadline every collector runs under this tick.
    pub fn collector_deadline(&self) -> Duration {
        self.agent
            .collector_deadline
            .unwrap_or_else(|| self.agent.interval.mul_f64(0.8))
    }
}

/// The agent's own behaviour.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Time between two ticks.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Longest a single collector may take; unset means 80% of `interval`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub collector_deadline: Option<Duration>,
    /// Rule state, learned baselines, the outbox and the tuner's audit journal live here.
    pub state_dir: PathBuf,
    /// Unix socket that `hostwarden status` reads.
    pub status_socket: PathBuf,
    /// Alert events kept for sinks that could not take them (oldest dropped beyond this).
    pub outbox_capacity: usize,
}

impl AgentConfig {
    /// Checks relative to `[agent]`.
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        // Below 100ms a tick costs more than it tells; above an hour the agent is not
        // monitoring (and "1000000h" overflows the ticker).
        if self.interval < Duration::from_millis(100) {
            errors.push(FieldError::new("interval", "must be at least 100ms"));
        } else if self.interval > Duration::from_secs(3600) {
            errors.push(FieldError::new("interval", "must be at most 1h"));
        }
        if let Some(deadline) = self.collector_deadline {
            if deadline.is_zero() {
                errors.push(FieldError::new(
                    "collector_deadline",
                    "must be longer than 0s (no collector could answer)",
                ));
            } else if deadline >= self.interval {
                errors.push(FieldError::new(
                    "collector_deadline",
                    "must be shorter than agent.interval (a collector may not delay the next tick)",
                ));
            }
        }
        check_absolute_dir(&mut errors, "state_dir", &self.state_dir);
        if !(1..=MAX_OUTBOX_CAPACITY).contains(&self.outbox_capacity) {
            errors.push(FieldError::new(
                "outbox_capacity",
                format!("must be between 1 and {MAX_OUTBOX_CAPACITY}"),
            ));
        }
        errors
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            interval: Duration::from_secs(5),
            collector_deadline: None,
            state_dir: PathBuf::from("/var/lib/hostwarden"),
            status_socket: PathBuf::from("/run/hostwarden/status.sock"),
            outbox_capacity: 10_000,
        }
    }
}

/// Where telemetry goes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    pub otlp: OtlpConfig,
    pub prometheus: PrometheusConfig,
    pub alertmanager: AlertmanagerConfig,
}

impl ExportConfig {
    /// Checks relative to `[export]`.
    fn validate(&self) -> Vec<FieldError> {
        let mut errors: Vec<FieldError> = under("otlp", self.otlp.validate()).collect();
        errors.extend(under("prometheus", self.prometheus.validate()));
        errors.extend(under("alertmanager", self.alertmanager.validate()));
        errors
    }
}

#[cfg(test)]
mod tests;
