//! The Ollama tuner: from each tick's snapshot and Ollama view to the OLLAMA_* environment
//! wanted now, and, in `apply` mode, to a systemd drop-in and a verified restart. The tree is
//! the three layers an actuation passes through:
//!
//! - `policy/`: pure. What to set and why (inputs, memory arithmetic, slot fit, bounds).
//! - `gate/`: pure. Whether a wanted change may restart Ollama now (settle, cooldown, daily
//!   cap, window, rollback backoff) and whether Ollama is idle enough.
//! - `apply/`: effects. The drop-in on disk, reload and restart through systemd, verification,
//!   rollback, the audit journal and reconcile-at-start.
//!
//! `driver` is the tuner as the runtime sees it (`on_tick`); `observe` is the advice shown in
//! observe mode; `config` is the `[tuner]` section.

pub mod apply;
pub mod arc;
pub mod config;
pub mod driver;
pub(crate) mod gate;
pub mod observe;
pub mod policy;
pub mod resources;
