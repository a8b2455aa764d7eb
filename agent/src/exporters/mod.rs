//! Telling the outside world: OTLP metrics and alert log records, a Prometheus endpoint, and
//! alerts posted to Alertmanager.

pub mod alertmanager;
pub mod config;
pub mod diagnosis;
pub(crate) mod http_client;
pub mod identity;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod prometheus;
pub mod resource;
pub(crate) mod selfmetrics;
pub mod settings;
pub(crate) mod telemetry;
pub mod tls;
