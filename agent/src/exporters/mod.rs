//! Telling the outside world: OTLP metrics and alert log records.

pub mod config;
pub mod logs;
pub(crate) mod metrics;
pub mod otlp;
pub mod resource;
pub(crate) mod selfmetrics;
pub mod settings;
pub(crate) mod telemetry;
