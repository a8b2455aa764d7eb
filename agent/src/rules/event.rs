//! Alert events: what a rule transition tells every sink (log, terminal, OTLP, status).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The state a series entered. `inactive` is never an event: a pending series that stops
/// matching simply resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One transition of one rule on one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Sequence number, increasing over the agent's life (kept across restarts with the
    /// outbox), so a sink can tell a retry from a new event.
    pub id: u64,
    pub rule: String,
    pub metric: String,
    pub severity: Severity,
    pub state: AlertState,
    /// The series' attributes (exported names).
    pub attributes: BTreeMap<String, String>,
    pub value: f64,
    /// The threshold crossed (a ratio when the rule is relative to a baseline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The learned baseline the threshold was applied to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// Unix ms when the condition began to hold (pending since; kept while firing and in the
    /// resolved event, like Prometheus's ActiveAt).
    pub since_ms: u64,
    /// Unix ms of the transition.
    pub at_ms: u64,
    /// A sentence an operator reads.
    pub summary: String,
}
