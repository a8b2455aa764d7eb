//! What one device read this tick, as plain data, and its conversion to metric points. No NVML
//! here: the conversions (percent to ratio, mW to W, mJ to J, MHz to Hz, throttle bits to a
//! bounded reason set) are tested on their own.

use std::sync::Arc;

use super::events::XidCounts;
use super::health::Health;
use crate::model::{AttrKey, AttrValue, Attrs, MetricName, MetricPoint};

/// The device's condition this tick (`hw.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Ok,
    /// A query failed with an unexpected error; the rest was read.
    Degraded,
    /// Fell off the bus (NVML `GpuLost`): nothing else is reported for it.
    Failed,
}

/// NVML's memory info v2, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    pub total: u64,
    pub reserved: u64,
    pub free: u64,
    pub used: u64,
}

/// One compute process holding memory on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuProcess {
    pub pid: u32,
    pub used_bytes: u64,
    /// From `<proc_root>/<pid>/comm`; absent when the process is gone or not visible.
    pub name: Option<Arc<str>>,
}

/// Everything read from one device; `None` means NVML does not offer it here (NotSupported or
/// a symbol the library lacks), and the metric is then absent, never zero.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceReading {
    // The identity is read once per device and shared by every tick's reading and every
    // point's attributes without copying the text (issue 20).
    pub uuid: Arc<str>,
    pub name: Arc<str>,
    /// `nvmlDeviceGetSerial`; None where NotSupported.
    pub serial: Option<Arc<str>>,
    /// `nvmlSystemGetDriverVersion`, the same for every device.
    pub driver_version: Option<Arc<str>>,
    pub state: Option<DeviceState>,
    pub memory: Option<Memory>,
    /// Percent busy over the driver's sample period: (gpu, memory controller).
    pub utilization: Option<(u32, u32)>,
    pub temperature_c: Option<u32>,
    pub slowdown_c: Option<u32>,
    pub shutdown_c: Option<u32>,
    pub power_mw: Option<u32>,
    pub power_limit_mw: Option<u32>,
    pub energy_mj: Option<u64>,
    pub throttle_bits: Option<u64>,
    pub ecc_corrected: Option<u64>,
    pub ecc_uncorrected: Option<u64>,
    pub fan_percent: Option<u32>,
    pub clock_sm_mhz: Option<u32>,
    pub clock_mem_mhz: Option<u32>,
    pub processes: Option<Vec<GpuProcess>>,
    /// XID events since registration (empty where none came or events are unsupported).
    pub xids: XidCounts,
    pub health: Health,
}

/// The fixed set of `hw.gpu.throttle_reason` values and their NVML bits
/// (`nvmlClocksThrottleReason*`, renamed `nvmlClocksEventReason*` in newer headers). Every
/// reason is emitted each tick, 0 or 1, so a series never silently disappears.
pub const THROTTLE_REASONS: [(u64, &str); 9] = [
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// Each reason with 1 when its bit is set; bits outside the set are ignored.
pub fn throttle_flags(bits: u64) -> impl Iterator<Item = (&'static str, u32)> {
    THROTTLE_REASONS
        .iter()
        .map(move |(bit, name)| (*name, u32::from(bits & bit != 0)))
}

/// NVML percent (0..100, fans may exceed 100) to a ratio.
pub fn percent_to_ratio(pct: u32) -> f64 {
    f64::from(pct) / 100.0
}

/// Milliwatts to watts.
pub fn mw_to_w(mw: u32) -> f64 {
    f64::from(mw) / 1000.0
}

/// Millijoules to joules. Exact below 2^53 mJ (about 285 years at 1 kW).
pub fn mj_to_j(mj: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let j = mj as f64 / 1000.0;
    j
}

/// NVML's PCIe KB/s (1 KB = 1024 bytes, as nvidia-smi prints it) to bytes per second.
pub fn kib_to_bytes(kbps: u32) -> u64 {
    u64::from(kbps) * 1024
}

/// Megahertz to hertz.
pub fn mhz_to_hz(mhz: u32) -> u64 {
    u64::from(mhz) * 1_000_000
}

/// Used share of total memory; `None` for a zero total (never a made-up 0).
pub fn memory_utilization(m: &Memory) -> Option<f64> {
    if m.total == 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let share = m.used as f64 / m.total as f64;
    Some(share)
}

/// The vendor of every device NVML reports (`hw.vendor`).
pub const VENDOR: &str = "NVIDIA";

/// Appends this device's points. Every device point carries `hw.id` (UUID), `hw.type` = gpu,
/// `hw.vendor`, the model in `hw.model` and (as before, for existing dashboards) in `hw.name`,
/// and `hw.driver_version` and `hw.serial_number` where NVML gives them; processes carry
/// `hw.id`, `process.pid` and the executable name.
pub fn device_points(d: &DeviceReading, out: &mut Vec<MetricPoint>) {
    let mut base = Attrs::with_capacity(7)
        .with(AttrKey::HwId, d.uuid.clone())
        .with(AttrKey::HwType, "gpu")
        .with(AttrKey::HwVendor, VENDOR);
    // Unknown only for a device lost before it could be identified.
    if !d.name.is_empty() {
        base.set(AttrKey::HwName, d.name.clone());
        base.set(AttrKey::HwModel, d.name.clone());
    }
    if let Some(v) = &d.driver_version {
        base.set(AttrKey::HwDriverVersion, v.clone());
    }
    if let Some(s) = &d.serial {
        base.set(AttrKey::HwSerialNumber, s.clone());
    }
    let state = d.state.unwrap_or(DeviceState::Ok);
    for (name, s) in [
        ("ok", DeviceState::Ok),
        ("degraded", DeviceState::Degraded),
        ("failed", DeviceState::Failed),
    ] {
        let attrs = base.clone().with(AttrKey::HwState, name);
        out.push(MetricPoint::new(
            MetricName::HwStatus,
            attrs,
            u32::from(state == s),
        ));
    }
    let mut points = DevicePoints { base, out };
    // Before the early return: XID 79 comes with the device falling off the bus.
    points.xids(d);
    if state == DeviceState::Failed {
        return;
    }
    points.memory(d);
    points.thermal(d);
    points.power(d);
    points.errors_fan_clocks(d);
    points.health(&d.health);
    points.processes(d);
}

/// Appends one device's points, each with the device's attributes.
struct DevicePoints<'o> {
    base: Attrs,
    out: &'o mut Vec<MetricPoint>,
}

impl DevicePoints<'_> {
    fn push(&mut self, name: MetricName, attrs: Attrs, value: crate::model::Value) {
        self.out.push(MetricPoint::new(name, attrs, value));
    }

    /// The device's attributes and one more.
    fn with(&self, key: AttrKey, value: impl Into<AttrValue>) -> Attrs {
        self.base.clone().with(key, value)
    }

    /// Memory and utilisation.
    fn memory(&mut self, d: &DeviceReading) {
        let base = self.base.clone();
        if let Some(m) = d.memory {
            self.push(MetricName::HwGpuMemoryUsage, base.clone(), m.used.into());
            self.push(MetricName::HwGpuMemoryLimit, base.clone(), m.total.into());
            self.push(MetricName::HwGpuMemoryFree, base.clone(), m.free.into());
            self.push(
                MetricName::HwGpuMemoryReserved,
                base.clone(),
                m.reserved.into(),
            );
            if let Some(u) = memory_utilization(&m) {
                self.push(MetricName::HwGpuMemoryUtilization, base.clone(), u.into());
            }
        }
        if let Some((gpu, mem)) = d.utilization {
            let general = self.with(AttrKey::HwGpuTask, "general");
            self.push(
                MetricName::HwGpuUtilization,
                general,
                percent_to_ratio(gpu).into(),
            );
            self.push(
                MetricName::HwGpuMemoryControllerUtilization,
                base,
                percent_to_ratio(mem).into(),
            );
        }
    }

    /// Temperature and its limits.
    fn thermal(&mut self, d: &DeviceReading) {
        let sensor = self.with(AttrKey::HwSensorLocation, "gpu");
        if let Some(t) = d.temperature_c {
            self.push(MetricName::HwTemperature, sensor.clone(), t.into());
        }
        for (limit, kind) in [
            (d.slowdown_c, "high.degraded"),
            (d.shutdown_c, "high.critical"),
        ] {
            if let Some(t) = limit {
                let attrs = sensor.clone().with(AttrKey::HwLimitType, kind);
                self.push(MetricName::HwTemperatureLimit, attrs, t.into());
            }
        }
    }

    /// Power, its limit, and energy.
    fn power(&mut self, d: &DeviceReading) {
        let base = self.base.clone();
        if let Some(mw) = d.power_mw {
            self.push(MetricName::HwPower, base.clone(), mw_to_w(mw).into());
        }
        if let Some(mw) = d.power_limit_mw {
            self.push(
                MetricName::HwGpuPowerLimit,
                base.clone(),
                mw_to_w(mw).into(),
            );
        }
        if let Some(mj) = d.energy_mj {
            self.push(MetricName::HwEnergy, base, mj_to_j(mj).into());
        }
    }

    /// ECC errors, fan, clocks and throttle reasons.
    fn errors_fan_clocks(&mut self, d: &DeviceReading) {
        let (agg_c, agg_u) = d.health.ecc_aggregate.unzip();
        for (count, kind, counter) in [
            (d.ecc_corrected, "corrected", "volatile"),
            (d.ecc_uncorrected, "uncorrected", "volatile"),
            (agg_c, "corrected", "aggregate"),
            (agg_u, "uncorrected", "aggregate"),
        ] {
            if let Some(n) = count {
                let attrs = self
                    .with(AttrKey::ErrorType, kind)
                    .with(AttrKey::HwGpuEccCounter, counter);
                self.push(MetricName::HwErrors, attrs, n.into());
            }
        }
        if let Some(pct) = d.fan_percent {
            let base = self.base.clone();
            self.push(
                MetricName::HwFanSpeedRatio,
                base,
                percent_to_ratio(pct).into(),
            );
        }
        for (mhz, clock) in [(d.clock_sm_mhz, "sm"), (d.clock_mem_mhz, "memory")] {
            if let Some(mhz) = mhz {
                let attrs = self.with(AttrKey::HwGpuClock, clock);
                self.push(
                    MetricName::HwGpuClockFrequency,
                    attrs,
                    mhz_to_hz(mhz).into(),
                );
            }
        }
        if let Some(bits) = d.throttle_bits {
            for (reason, on) in throttle_flags(bits) {
                let attrs = self.with(AttrKey::HwGpuThrottleReason, reason);
                self.push(MetricName::HwGpuThrottled, attrs, on.into());
            }
        }
    }

    /// PCIe, codecs, remapped rows and retired pages.
    fn health(&mut self, h: &Health) {
        let base = self.base.clone();
        if let Some(n) = h.pcie_replays {
            self.push(MetricName::HwGpuPcieReplays, base.clone(), n.into());
        }
        if let Some((tx, rx)) = h.pcie_kbps {
            for (kbps, direction) in [(tx, "transmit"), (rx, "receive")] {
                let attrs = self.with(AttrKey::NetworkIoDirection, direction);
                self.push(
                    MetricName::HwGpuPcieThroughput,
                    attrs,
                    kib_to_bytes(kbps).into(),
                );
            }
        }
        for (pct, task) in [
            (h.encoder_percent, "encoder"),
            (h.decoder_percent, "decoder"),
        ] {
            if let Some(pct) = pct {
                let attrs = self.with(AttrKey::HwGpuTask, task);
                self.push(
                    MetricName::HwGpuUtilization,
                    attrs,
                    percent_to_ratio(pct).into(),
                );
            }
        }
        if let Some(r) = h.remapped {
            for (n, kind) in [(r.corrected, "corrected"), (r.uncorrected, "uncorrected")] {
                let attrs = self.with(AttrKey::ErrorType, kind);
                self.push(MetricName::HwGpuMemoryRemappedRows, attrs, n.into());
            }
            let pending = u32::from(r.pending);
            self.push(
                MetricName::HwGpuMemoryRemapPending,
                base.clone(),
                pending.into(),
            );
            let failed = u32::from(r.failure);
            self.push(
                MetricName::HwGpuMemoryRemapFailed,
                base.clone(),
                failed.into(),
            );
        }
        if let Some(p) = h.retired {
            for (n, kind) in [
                (p.multiple_single_bit, "multiple_single_bit"),
                (p.double_bit, "double_bit"),
            ] {
                let attrs = self.with(AttrKey::ErrorType, kind);
                self.push(MetricName::HwGpuMemoryRetiredPages, attrs, n.into());
            }
        }
        if let Some(pending) = h.retired_pending {
            let v = u32::from(pending);
            self.push(MetricName::HwGpuMemoryRetiredPagesPending, base, v.into());
        }
    }

    /// XID counts by XID number, and the last XID seen.
    fn xids(&mut self, d: &DeviceReading) {
        for &(xid, n) in &d.xids.counts {
            let attrs = self.base.clone().with(AttrKey::HwGpuXid, xid);
            self.push(MetricName::HwGpuXidErrors, attrs, n.into());
        }
        if let Some(xid) = d.xids.last {
            let base = self.base.clone();
            self.push(MetricName::HwGpuXidLast, base, xid.into());
        }
    }

    /// Memory per process, with `hw.id`, the PID and the executable name.
    fn processes(&mut self, d: &DeviceReading) {
        for p in d.processes.iter().flatten() {
            let mut attrs = Attrs::new()
                .with(AttrKey::HwId, d.uuid.clone())
                .with(AttrKey::ProcessPid, p.pid);
            if let Some(name) = &p.name {
                attrs.set(AttrKey::ProcessExecutableName, name.clone());
            }
            self.push(
                MetricName::ProcessGpuMemoryUsage,
                attrs,
                p.used_bytes.into(),
            );
        }
    }
}

#[cfg(test)]
mod tests;
