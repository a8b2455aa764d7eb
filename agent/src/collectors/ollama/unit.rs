//! The seam through which the systemd client (agent/src/actuators/systemd*.rs) tells the
//! collector about Ollama's unit. The collector never talks D-Bus itself: without a source it
//! reports the API part and says the unit is not watched (advice-only).

use async_trait::async_trait;
use serde::Serialize;

/// What systemd says about the unit now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitStatus {
    /// `ActiveState`: active, reloading, inactive, failed, activating, deactivating.
    pub active_state: String,
    /// `SubState`: running, dead, auto-restart, ...
    pub sub_state: String,
    /// `MainPID`; 0 when the unit has no running main process.
    pub main_pid: u32,
    /// `NRestarts`: automatic restarts since the unit was last started by hand.
    pub n_restarts: u32,
    /// The `Environment` in force, as `KEY=VALUE` strings (drop-ins included).
    pub environment: Vec<String>,
}

impl UnitStatus {
    pub fn is_active(&self) -> bool {
        self.active_state == "active"
    }

    /// One variable of the unit's environment (the last assignment wins, as in systemd).
    pub fn env(&self, key: &str) -> Option<&str> {
        self.environment
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

/// Gives the status of a unit. Implemented by the tuner's systemd client; tests use their own.
#[async_trait]
pub trait UnitStatusSource: Send + Sync {
    /// Errors are the source's own, as text an operator can act on
    /// ("unit ollama.service not loaded", "cannot reach the system bus: ...").
    async fn unit_status(&self, unit: &str) -> Result<UnitStatus, String>;
}
