//! Telling the outside world: OTLP metrics and alert log records.

pub mod config;
pub mod diagnosis;
pub(crate) mod http_client;
pub mod logs;
pub(crate) mod metrics;
pub mod otlp;
pub mod resource;
pub(crate) mod selfmetrics;
pub mod settings;
pub(crate) mod telemetry;
pub mod tls;
