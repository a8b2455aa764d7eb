//! NVIDIA GPUs through NVML (nvml-wrapper): memory, utilisation, temperature and its limits,
//! power, energy, throttle reasons, ECC errors, fan, clocks, per-process memory and XID error
//! events, with the
//! OpenTelemetry hardware conventions (`hw.*`). Without the `nvml` feature a stand-in reports
//! why it reads nothing.

#[cfg(feature = "nvml")]
mod backoff;
#[cfg(feature = "nvml")]
mod collector;
mod config;
#[cfg(feature = "nvml")]
mod events;
#[cfg(feature = "nvml")]
mod health;
#[cfg(feature = "nvml")]
mod load;
#[cfg(feature = "nvml")]
mod points;
#[cfg(feature = "nvml")]
mod read;
#[cfg(not(feature = "nvml"))]
mod stub;

#[cfg(feature = "nvml")]
pub use collector::GpuCollector;
pub use config::GpuConfig;
#[cfg(feature = "nvml")]
pub use points::THROTTLE_REASONS;
#[cfg(not(feature = "nvml"))]
pub use stub::GpuCollector;
