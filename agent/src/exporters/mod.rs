//! Telling the outside world: OTLP metrics and alert log records.

pub mod config;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod resource;
pub mod selfmetrics;
pub mod settings;
pub mod telemetry;
