//! What the tuner's policy decides: the OLLAMA_* environment wanted now, with reasons.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One key's decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDecision {
    /// The value as it will be written to the unit (`"2"`, `"10m"`, `"q8_0"`).
    pub value: String,
    /// Sentences with the numbers behind them ("KV cache for 8192 tokens of llama3.1:8b is
    /// 1.0 GiB at f16; 6.2 GiB VRAM free after weights leaves room for 4 slots").
    pub reasons: Vec<String>,
    /// Pinned by the operator or clamped by a bound.
    pub constrained_by_operator: bool,
}

/// The environment the policy wants for the Ollama unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub keys: BTreeMap<String, KeyDecision>,
}

impl Decision {
    /// Just the variables, as they would go into the drop-in.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.keys
            .iter()
            .map(|(k, d)| (k.clone(), d.value.clone()))
            .collect()
    }
}
