//! Alert rules: pure state machines given `now` and a snapshot (`engine`), and the daemon's
//! wrapper that persists their state and feeds the sinks (`alerting`).

pub(crate) mod alerting;
pub(crate) mod baseline;
pub(crate) mod config;
pub(crate) mod engine;
pub mod event;
pub(crate) mod matcher;
pub mod outbox;
pub(crate) mod persist;
pub(crate) mod rule;
pub(crate) mod state;
pub(crate) mod summary;
pub(crate) mod validate;
pub(crate) mod window;

pub use alerting::{Alerting, AlertingConfig};
pub use engine::Engine;
pub use rule::ActiveAlert;
