//! Alert rules: pure state machines given `now` and a snapshot (`engine`), and the daemon's
//! wrapper that persists their state and feeds the sinks (`alerting`).

pub mod alerting;
pub mod baseline;
pub mod config;
pub mod engine;
pub mod event;
pub mod matcher;
pub mod outbox;
pub mod persist;
pub mod rule;
pub mod state;
pub mod summary;
pub mod validate;
pub mod window;

pub use alerting::{Alerting, AlertingConfig};
pub use engine::Engine;
pub use rule::ActiveAlert;
