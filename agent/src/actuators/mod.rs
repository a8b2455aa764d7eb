//! Acting on the host: the Ollama tuner's policy, drop-in rendering and systemd client.

pub mod apply;
pub mod bounds;
pub mod config;
pub mod decision;
pub mod dropin;
pub mod fit;
pub mod gating;
pub mod idle;
pub mod inputs;
pub mod journal;
pub mod memory;
pub mod observe;
pub mod policy;
pub mod probe;
pub mod reconcile;
pub mod systemd;
pub mod tuner;
