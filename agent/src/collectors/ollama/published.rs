//! `OllamaView`: everything the collector learned this tick, kept for the tuner's policy so it
//! never queries Ollama a second time.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::time::Instant;

use super::process::MainProcess;
use crate::sys::ollama::{Architecture, PsModel};
use crate::sys::systemd::UnitStatus;

/// A model in `/api/ps`, with its architecture when `/api/show` gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelView {
    pub ps: PsModel,
    pub arch: Option<Architecture>,
}

/// What is known about the unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UnitWatch {
    /// No systemd client: the tuner can only advise.
    NotWatched {
        reason: String,
    },
    Status(UnitStatus),
    /// The client exists but could not tell (unit missing, bus down).
    Error {
        reason: String,
    },
}

/// One tick's view of Ollama.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OllamaView {
    pub url: String,
    /// Ollama answered `HEAD /`.
    pub up: bool,
    /// Round trip of `HEAD /`, when it answered.
    pub probe_seconds: Option<f64>,
    /// Why it is down or partly unread.
    pub problems: Vec<String>,
    pub version: Option<String>,
    /// `/api/ps`; `None` when it did not answer (on v0.32.4+ a model load blocks it).
    pub models: Option<Vec<ModelView>>,
    pub unit: UnitWatch,
    pub process: Option<MainProcess>,
    /// When the view was taken.
    #[serde(skip)]
    pub at: Instant,
}

impl OllamaView {
    /// The tuner may only advise: nobody watches the unit.
    pub fn advice_only(&self) -> bool {
        !matches!(self.unit, UnitWatch::Status(_))
    }
}

/// Where the collector publishes its latest view and the runtime (the tuner) reads it. Cloning
/// shares the cell. The lock is held only to swap an `Arc`, never across an await.
#[derive(Debug, Clone, Default)]
pub struct OllamaViewCell(Arc<Mutex<Option<Arc<OllamaView>>>>);

impl OllamaViewCell {
    pub fn publish(&self, view: OllamaView) {
        match self.0.lock() {
            Ok(mut slot) => *slot = Some(Arc::new(view)),
            Err(poisoned) => *poisoned.into_inner() = Some(Arc::new(view)),
        }
    }

    /// The last published view (`None` before the first tick, or with Ollama disabled).
    pub fn latest(&self) -> Option<Arc<OllamaView>> {
        match self.0.lock() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
