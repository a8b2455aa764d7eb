//! The blocking side: one pass over every device through nvml-wrapper, run on the blocking pool.
//! What a device cannot do is remembered, so a WSL2 host or an old driver costs nothing after
//! the first tick: NotSupported per device, a missing symbol for the whole library.

use std::collections::HashMap;
use std::sync::Arc;

use crate::sys::proc::ProcReader;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, TemperatureSensor, TemperatureThreshold,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

use super::events::{Xid, XidCounts, XidWatch};
use super::health::{self, Health};
use super::points::{DeviceReading, DeviceState, GpuProcess, Memory};
use crate::model::MetricName;

/// One NVML query; the set of queries a device or library cannot answer is kept as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Memory = 1 << 0,
    Utilization = 1 << 1,
    Temperature = 1 << 2,
    Slowdown = 1 << 3,
    Shutdown = 1 << 4,
    Power = 1 << 5,
    PowerLimit = 1 << 6,
    Energy = 1 << 7,
    Throttle = 1 << 8,
    EccCorrected = 1 << 9,
    EccUncorrected = 1 << 10,
    Fan = 1 << 11,
    ClockSm = 1 << 12,
    ClockMem = 1 << 13,
    Processes = 1 << 14,
    PcieReplays = 1 << 15,
    PcieThroughput = 1 << 16,
    Encoder = 1 << 17,
    Decoder = 1 << 18,
    EccAggregate = 1 << 19,
    RemappedRows = 1 << 20,
    RetiredPages = 1 << 21,
    RetiredPending = 1 << 22,
}

impl Field {
    /// The metrics the query feeds (names only in the `MetricName` registry).
    pub fn metrics(self) -> &'static [MetricName] {
        use MetricName as M;
        match self {
            Field::Memory => &[
                M::HwGpuMemoryUsage,
                M::HwGpuMemoryLimit,
                M::HwGpuMemoryFree,
                M::HwGpuMemoryReserved,
                M::HwGpuMemoryUtilization,
            ],
            Field::Utilization => &[M::HwGpuUtilization, M::HwGpuMemoryControllerUtilization],
            Field::Temperature => &[M::HwTemperature],
            Field::Slowdown | Field::Shutdown => &[M::HwTemperatureLimit],
            Field::Power => &[M::HwPower],
            Field::PowerLimit => &[M::HwGpuPowerLimit],
            Field::Energy => &[M::HwEnergy],
            Field::Throttle => &[M::HwGpuThrottled],
            Field::EccCorrected | Field::EccUncorrected => &[M::HwErrors],
            Field::Fan => &[M::HwFanSpeedRatio],
            Field::ClockSm | Field::ClockMem => &[M::HwGpuClockFrequency],
            Field::Processes => &[M::ProcessGpuMemoryUsage],
            Field::PcieReplays => &[M::HwGpuPcieReplays],
            Field::PcieThroughput => &[M::HwGpuPcieThroughput],
            Field::Encoder | Field::Decoder => &[M::HwGpuUtilization],
            Field::EccAggregate => &[M::HwErrors],
            Field::RemappedRows => &[
                M::HwGpuMemoryRemappedRows,
                M::HwGpuMemoryRemapPending,
                M::HwGpuMemoryRemapFailed,
            ],
            Field::RetiredPages => &[M::HwGpuMemoryRetiredPages],
            Field::RetiredPending => &[M::HwGpuMemoryRetiredPagesPending],
        }
    }

    /// The metrics for log lines and problems: one or two by name, a family as `prefix.*`.
    pub fn metric(self) -> String {
        let names: Vec<&str> = self.metrics().iter().map(|m| m.as_str()).collect();
        if names.len() > 2
            && let Some((prefix, _)) = names[0].rsplit_once('.')
            && names
                .iter()
                .all(|n| n.rsplit_once('.').is_some_and(|(p, _)| p == prefix))
        {
            return format!("{prefix}.*");
        }
        names.join(", ")
    }
}

/// A set of `Field`s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields(u32);

impl Fields {
    pub fn contains(self, f: Field) -> bool {
        self.0 & f as u32 != 0
    }
    pub fn insert(&mut self, f: Field) {
        self.0 |= f as u32;
    }
}

/// What is known about one device across ticks.
#[derive(Debug, Default)]
struct DeviceMemo {
    /// UUID, model name and serial, read once (they cannot change while the driver is loaded).
    identity: Option<Identity>,
    unsupported: Fields,
    /// Fell off the bus: never queried again (it needs a reset and a driver reload).
    lost: bool,
    /// XIDs seen since the event set was registered.
    xids: XidCounts,
    /// Registered for XID events, or known not to offer them: not asked again.
    xid_settled: bool,
}

/// The XID event set and what is known about it.
#[derive(Debug, Default)]
struct XidState {
    watch: Option<XidWatch>,
    /// No events on this library or platform: never tried again.
    unavailable: bool,
    /// Reused each pass, so that draining allocates nothing.
    drained: Vec<Xid>,
}

/// What names a device; the serial is absent where NVML answers NotSupported (GeForce boards).
#[derive(Debug, Clone, Default)]
struct Identity {
    uuid: Arc<str>,
    name: Arc<str>,
    serial: Option<Arc<str>>,
}

/// State the blocking reader keeps between ticks.
#[derive(Debug, Default)]
pub struct ReaderState {
    devices: Vec<DeviceMemo>,
    /// Queries whose symbol the library lacks (an older driver): skipped on every device.
    missing: Fields,
    /// Process names by PID, kept while the PID stays on a GPU (a CUDA context does not
    /// survive exec, so the name cannot change underneath), with the pass that last saw it.
    names: HashMap<u32, (Option<Arc<str>>, u64)>,
    pass: u64,
    /// The driver version (`hw.driver_version`), read on the first pass: it cannot change
    /// while this NVML instance is loaded.
    driver: Option<Option<Arc<str>>>,
    xid: XidState,
}

impl ReaderState {
    /// Names every process from `<proc_root>/<pid>/comm`, reading each PID once while it lives.
    fn name_processes(&mut self, reading: &mut DeviceReading, proc: &ProcReader) {
        let pass = self.pass;
        for p in reading.processes.iter_mut().flatten() {
            let entry = self
                .names
                .entry(p.pid)
                .or_insert_with(|| (proc.process_name(p.pid).map(Arc::from), pass));
            entry.1 = pass;
            p.name.clone_from(&entry.0);
        }
    }
}

/// Something the async side should log once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    SymbolMissing {
        field: Field,
        error: String,
    },
    DeviceLost {
        index: u32,
        uuid: Option<String>,
    },
    /// An XID error event (each is logged: an operator reads them beside the alert).
    Xid {
        index: u32,
        xid: u32,
    },
    /// No XID events on this host (said once).
    XidUnavailable {
        error: String,
    },
    /// Device `index` refused registration for XID events (said once; it is skipped).
    XidDeviceSkipped {
        index: u32,
        error: String,
    },
}

/// One pass over every device.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub devices: Vec<DeviceReading>,
    /// Why the collector is degraded this tick (lost GPUs, failed queries), if it is.
    pub problems: Vec<String>,
    pub events: Vec<Event>,
}

/// Per-pass options.
pub struct ReadOptions<'a> {
    pub processes: bool,
    /// `[host] proc_root`, where process names are read.
    pub proc: &'a ProcReader,
}

/// Reads every device. Fails only when the device count cannot be read.
pub fn read_all(
    nvml: &Arc<Nvml>,
    state: &mut ReaderState,
    opts: &ReadOptions<'_>,
) -> Result<ReadOutcome, String> {
    let count = nvml
        .device_count()
        .map_err(|e| format!("cannot count GPUs: {e}"))?;
    let count_usize = usize::try_from(count).unwrap_or(usize::MAX);
    state.devices.resize_with(count_usize, DeviceMemo::default);
    let mut out = ReadOutcome {
        devices: Vec::with_capacity(count_usize),
        ..ReadOutcome::default()
    };
    state.pass += 1;
    let driver = state
        .driver
        .get_or_insert_with(|| nvml.sys_driver_version().ok().map(Arc::from))
        .clone();
    poll_xids(nvml, state, &mut out);
    for index in 0..count {
        let memo = &mut state.devices[index as usize];
        if let Some(mut reading) = read_device(
            nvml,
            index,
            memo,
            &mut state.missing,
            opts,
            &mut out,
            state.xid.watch.as_mut(),
        ) {
            reading.driver_version.clone_from(&driver);
            reading.xids.clone_from(&state.devices[index as usize].xids);
            state.name_processes(&mut reading, opts.proc);
            out.devices.push(reading);
        }
    }
    let pass = state.pass;
    state.names.retain(|_, (_, seen)| *seen == pass);
    Ok(out)
}

/// Creates the XID event set on the first pass, then takes what is pending without waiting,
/// crediting each XID to its device. Devices register as the pass reaches them.
fn poll_xids(nvml: &Arc<Nvml>, state: &mut ReaderState, out: &mut ReadOutcome) {
    let x = &mut state.xid;
    if x.unavailable {
        return;
    }
    if x.watch.is_none() {
        match XidWatch::create(nvml) {
            Ok(watch) => x.watch = Some(watch),
            Err(error) => {
                x.unavailable = true;
                out.events.push(Event::XidUnavailable { error });
                return;
            }
        }
    }
    let Some(watch) = &x.watch else {
        return;
    };
    if let Some(problem) = watch.drain(&mut x.drained) {
        out.problems.push(problem);
    }
    for Xid { index, xid } in state.xid.drained.drain(..) {
        if let Some(memo) = state.devices.get_mut(index as usize) {
            memo.xids.record(xid);
        }
        out.events.push(Event::Xid { index, xid });
    }
}

/// Registers a device for XID events once, with the handle this pass already holds (a lookup
/// of its own would cost a call per device).
fn register_xids(
    watch: Option<&mut XidWatch>,
    dev: &nvml_wrapper::Device<'_>,
    index: u32,
    memo: &mut DeviceMemo,
    out: &mut ReadOutcome,
) {
    let Some(watch) = watch else {
        return;
    };
    if memo.xid_settled {
        return;
    }
    memo.xid_settled = true;
    if let Err(e) = watch.register(dev) {
        out.events.push(Event::XidDeviceSkipped {
            index,
            error: e.to_string(),
        });
    }
}

/// Reads one device; `None` when it cannot even be identified this tick (already noted).
fn read_device(
    nvml: &Nvml,
    index: u32,
    memo: &mut DeviceMemo,
    missing: &mut Fields,
    opts: &ReadOptions<'_>,
    out: &mut ReadOutcome,
    xid_watch: Option<&mut XidWatch>,
) -> Option<DeviceReading> {
    if memo.lost {
        return Some(lost_reading(index, memo, out));
    }
    let identified = nvml.device_by_index(index).and_then(|dev| {
        if memo.identity.is_none() {
            memo.identity = Some(Identity {
                uuid: dev.uuid()?.into(),
                name: dev.name()?.into(),
                // Absent when NotSupported (consumer boards) or unreadable: never a made-up one.
                serial: dev.serial().ok().map(Arc::from),
            });
        }
        Ok(dev)
    });
    let dev = match identified {
        Ok(dev) => dev,
        Err(NvmlError::GpuLost) => {
            memo.lost = true;
            out.events.push(Event::DeviceLost {
                index,
                uuid: memo.identity.as_ref().map(|i| i.uuid.to_string()),
            });
            return Some(lost_reading(index, memo, out));
        }
        Err(e) => {
            out.problems
                .push(format!("GPU {index}: cannot identify the device: {e}"));
            return None;
        }
    };
    register_xids(xid_watch, &dev, index, memo, out);
    let Identity { uuid, name, serial } = memo.identity.clone().unwrap_or_default();
    let mut q = Query {
        index,
        uuid: &uuid,
        memo,
        missing,
        out,
        degraded: false,
    };
    let mut r = DeviceReading {
        uuid: uuid.clone(),
        name,
        serial,
        ..DeviceReading::default()
    };
    let lost = read_fields(&dev, &mut q, &mut r, opts).is_err();
    let degraded = q.degraded;
    if lost {
        memo.lost = true;
        out.events.push(Event::DeviceLost {
            index,
            uuid: Some(uuid.to_string()),
        });
        return Some(lost_reading(index, memo, out));
    }
    r.state = Some(if degraded {
        DeviceState::Degraded
    } else {
        DeviceState::Ok
    });
    Some(r)
}

/// The reading of a lost device, and the problem that names it.
fn lost_reading(index: u32, memo: &DeviceMemo, out: &mut ReadOutcome) -> DeviceReading {
    let Identity { uuid, name, serial } = memo.identity.clone().unwrap_or_else(|| Identity {
        uuid: format!("gpu-index-{index}").into(),
        ..Identity::default()
    });
    out.problems.push(format!(
        "GPU {index} ({uuid}) lost: fell off the bus (NVML GpuLost); other GPUs keep reporting"
    ));
    DeviceReading {
        uuid,
        name,
        serial,
        state: Some(DeviceState::Failed),
        ..DeviceReading::default()
    }
}

/// The device lost mid-pass.
struct Lost;

/// Context of one device's queries: decides what a query's error means.
struct Query<'a> {
    index: u32,
    uuid: &'a str,
    memo: &'a mut DeviceMemo,
    missing: &'a mut Fields,
    out: &'a mut ReadOutcome,
    degraded: bool,
}

impl Query<'_> {
    /// Runs `call` unless the field is known to be unavailable. NotSupported and a missing
    /// symbol make the metric absent (and are remembered); GpuLost stops the device; anything
    /// else degrades the device for this tick.
    fn get<T>(
        &mut self,
        field: Field,
        call: impl FnOnce() -> Result<T, NvmlError>,
    ) -> Result<Option<T>, Lost> {
        if self.missing.contains(field) || self.memo.unsupported.contains(field) {
            return Ok(None);
        }
        match call() {
            Ok(v) => Ok(Some(v)),
            Err(NvmlError::NotSupported) => {
                self.memo.unsupported.insert(field);
                Ok(None)
            }
            Err(NvmlError::FailedToLoadSymbol(error)) => {
                self.missing.insert(field);
                self.out.events.push(Event::SymbolMissing { field, error });
                Ok(None)
            }
            Err(NvmlError::GpuLost) => Err(Lost),
            Err(e) => {
                self.degraded = true;
                self.out.problems.push(format!(
                    "GPU {} ({}): reading {} failed: {e}",
                    self.index,
                    self.uuid,
                    field.metric()
                ));
                Ok(None)
            }
        }
    }
}

fn read_fields(
    dev: &nvml_wrapper::Device<'_>,
    q: &mut Query<'_>,
    r: &mut DeviceReading,
    opts: &ReadOptions<'_>,
) -> Result<(), Lost> {
    r.memory = q.get(Field::Memory, || dev.memory_info())?.map(|m| Memory {
        total: m.total,
        reserved: m.reserved,
        free: m.free,
        used: m.used,
    });
    r.utilization = q
        .get(Field::Utilization, || dev.utilization_rates())?
        .map(|u| (u.gpu, u.memory));
    r.temperature_c = q.get(Field::Temperature, || {
        dev.temperature(TemperatureSensor::Gpu)
    })?;
    r.slowdown_c = q.get(Field::Slowdown, || {
        dev.temperature_threshold(TemperatureThreshold::Slowdown)
    })?;
    r.shutdown_c = q.get(Field::Shutdown, || {
        dev.temperature_threshold(TemperatureThreshold::Shutdown)
    })?;
    r.power_mw = q.get(Field::Power, || dev.power_usage())?;
    r.power_limit_mw = q.get(Field::PowerLimit, || dev.enforced_power_limit())?;
    r.energy_mj = q.get(Field::Energy, || dev.total_energy_consumption())?;
    r.throttle_bits = q
        .get(Field::Throttle, || dev.current_throttle_reasons())?
        .map(|t| t.bits());
    r.ecc_corrected = q.get(Field::EccCorrected, || {
        dev.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
    })?;
    r.ecc_uncorrected = q.get(Field::EccUncorrected, || {
        dev.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
    })?;
    // Fan 0: a board's fans follow one policy, and one series per GPU keeps cardinality fixed.
    r.fan_percent = q.get(Field::Fan, || dev.fan_speed(0))?;
    r.clock_sm_mhz = q.get(Field::ClockSm, || dev.clock_info(Clock::SM))?;
    r.clock_mem_mhz = q.get(Field::ClockMem, || dev.clock_info(Clock::Memory))?;
    read_health(dev, q, &mut r.health)?;
    if opts.processes {
        r.processes = q
            .get(Field::Processes, || dev.running_compute_processes())?
            .map(|list| {
                list.into_iter()
                    .filter_map(|p| match p.used_gpu_memory {
                        UsedGpuMemory::Used(bytes) => Some(GpuProcess {
                            pid: p.pid,
                            used_bytes: bytes,
                            name: None, // named by `ReaderState::name_processes`
                        }),
                        UsedGpuMemory::Unavailable => None,
                    })
                    .collect()
            });
    }
    Ok(())
}

/// PCIe, memory health, codecs and lifetime ECC (health.rs).
fn read_health(
    dev: &nvml_wrapper::Device<'_>,
    q: &mut Query<'_>,
    h: &mut Health,
) -> Result<(), Lost> {
    h.pcie_replays = q.get(Field::PcieReplays, || dev.pcie_replay_counter())?;
    h.pcie_kbps = q.get(Field::PcieThroughput, || health::pcie_throughput(dev))?;
    h.encoder_percent = q
        .get(Field::Encoder, || dev.encoder_utilization())?
        .map(|u| u.utilization);
    h.decoder_percent = q
        .get(Field::Decoder, || dev.decoder_utilization())?
        .map(|u| u.utilization);
    h.ecc_aggregate = q.get(Field::EccAggregate, || health::ecc_aggregate(dev))?;
    h.remapped = q.get(Field::RemappedRows, || health::remapped_rows(dev))?;
    h.retired = q.get(Field::RetiredPages, || health::retired_pages(dev))?;
    h.retired_pending = q.get(Field::RetiredPending, || dev.are_pages_pending_retired())?;
    Ok(())
}

#[cfg(test)]
mod tests;
