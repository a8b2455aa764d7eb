//! The configuration: one TOML file, every key documented in `config/hostwarden.toml` (which is
//! also what `print-default-config` prints). Types parse rather than validate: a value that
//! deserializes is a usable value; cross-field checks live in `validate()`.

mod load;
mod reload;
mod types;

pub use load::{ConfigError, FieldError, load_file, load_or_default, parse_str};
pub use reload::{ReloadEvent, ReloadSource, watch_config};
pub use types::{NonEmptyString, Ratio};

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::actuators::config::{KeyBound, TunerConfig, TunerMode};
pub use crate::rules::config::RuleConfig;

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
            rules: crate::rules::defaults::default_rules(),
        }
    }
}

impl Config {
    /// Cross-field checks; every problem is reported with the path of the field it concerns.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.agent.interval < Duration::from_millis(100) {
            errors.push(FieldError::new("agent.interval", "must be at least 100ms"));
        }
        if let Some(deadline) = self.agent.collector_deadline
            && deadline > self.agent.interval
        {
            errors.push(FieldError::new(
                "agent.collector_deadline",
                "must not exceed agent.interval (a collector may not delay the next tick)",
            ));
        }
        if self.zfs.iostat_interval < Duration::from_secs(1) {
            errors.push(FieldError::new(
                "zfs.iostat_interval",
                "must be at least 1s (zpool iostat takes whole seconds)",
            ));
        }
        errors.extend(self.ollama.validate());
        errors.extend(self.export.validate());
        errors.extend(self.tuner.validate());
        errors.extend(crate::rules::config::validate_rules(&self.rules));
        errors
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

/// CPU, memory, swap, pressure.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    pub enabled: bool,
    /// Root of the proc filesystem (`/host/proc` in a container).
    pub proc_root: PathBuf,
    /// Report utilisation per logical CPU as well as for the whole host.
    pub per_cpu: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            enabled: true,
            proc_root: PathBuf::from("/proc"),
            per_cpu: true,
        }
    }
}

/// NVIDIA GPUs through NVML.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    pub enabled: bool,
    /// Path of libnvidia-ml; unset tries `libnvidia-ml.so.1`, then the WSL2 location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvml_library: Option<PathBuf>,
    /// Report GPU memory per process (joined to /proc for the process name).
    pub processes: bool,
    /// First retry after NVML failed to load; doubles up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            enabled: true,
            nvml_library: None,
            processes: true,
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(600),
        }
    }
}

/// ZFS pools through the `zpool` command.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZfsConfig {
    pub enabled: bool,
    /// The `zpool` program (a name looked up in PATH, or a path).
    pub zpool_command: PathBuf,
    /// Interval of the long-lived `zpool iostat` child.
    #[serde(with = "humantime_serde")]
    pub iostat_interval: Duration,
    /// How often the one-shot `zpool list` and `zpool status` run (capacity, health, errors,
    /// scan). Between runs their last result is reported again; a pool that appears in or
    /// leaves the iostat stream triggers a run at once. `0s`: every tick.
    #[serde(with = "humantime_serde")]
    pub pool_interval: Duration,
    /// Deadline of every one-shot `zpool` call, and the longest the first tick waits for the
    /// iostat child's first report.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
}

impl Default for ZfsConfig {
    fn default() -> Self {
        ZfsConfig {
            enabled: true,
            zpool_command: PathBuf::from("zpool"),
            iostat_interval: Duration::from_secs(5),
            pool_interval: Duration::from_secs(10),
            command_timeout: Duration::from_secs(3),
        }
    }
}

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
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Err(e) = crate::collectors::ollama::api::Api::new(&self.url, self.probe_timeout) {
            errors.push(FieldError::new("ollama.url", e.to_string()));
        }
        if self.probe_timeout.is_zero() {
            errors.push(FieldError::new(
                "ollama.probe_timeout",
                "must be longer than 0s",
            ));
        }
        errors
    }
}

/// Where telemetry goes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    pub otlp: crate::exporters::config::OtlpConfig,
}

impl ExportConfig {
    fn validate(&self) -> Vec<FieldError> {
        self.otlp.validate()
    }
}

#[cfg(test)]
mod tests;
