//! The data every consumer reads: typed metric points and collector statuses, grouped in one
//! `Snapshot` per tick. No I/O here. A metric has exactly one name, unit and instrument kind,
//! defined once in `MetricName`, so the terminal view, JSON, rules and OTLP can never disagree.

use serde::{Serialize, Serializer};

/// How a metric is exported. Counters carry cumulative totals; gauges and up-down counters carry
/// the current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKind {
    Gauge,
    UpDownCounter,
    Counter,
}

macro_rules! metric_names {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, $unit:literal, $kind:ident; )*) => {
        /// Every metric hostwarden can emit. `as_str()` is the exported name (an OpenTelemetry
        /// semantic-convention name where one exists, a documented custom namespace otherwise).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum MetricName {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl MetricName {
            /// All names, in declaration order (the metrics reference is generated from this).
            pub const ALL: &'static [MetricName] = &[$(MetricName::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self { $(MetricName::$variant => $name,)* }
            }

            /// UCUM unit, as OpenTelemetry writes it (`By`, `s`, `Cel`, `1`, `{thread}`).
            pub const fn unit(self) -> &'static str {
                match self { $(MetricName::$variant => $unit,)* }
            }

            pub const fn kind(self) -> InstrumentKind {
                match self { $(MetricName::$variant => InstrumentKind::$kind,)* }
            }

            /// One-line description, used by OTLP and the metrics reference.
            pub fn description(self) -> &'static str {
                match self { $(MetricName::$variant => concat!($($doc),*).trim(),)* }
            }

            /// Looks a metric up by its exported name (rules name metrics this way).
            pub fn from_name(name: &str) -> Option<MetricName> {
                match name { $($name => Some(MetricName::$variant),)* _ => None }
            }
        }
    };
}

metric_names! {
    // --- host (semantic conventions) ---
    /// Share of CPU time not idle, whole host or one logical CPU (0..1).
    SystemCpuUtilization => "system.cpu.utilization", "1", Gauge;
    /// Number of logical CPUs.
    SystemCpuLogicalCount => "system.cpu.logical.count", "{cpu}", UpDownCounter;
    /// 1-minute load average.
    SystemCpuLoadAverage1m => "system.cpu.load_average.1m", "{thread}", Gauge;
    /// 5-minute load average.
    SystemCpuLoadAverage5m => "system.cpu.load_average.5m", "{thread}", Gauge;
    /// 15-minute load average.
    SystemCpuLoadAverage15m => "system.cpu.load_average.15m", "{thread}", Gauge;
    /// Memory in use by state (used, free, cached, buffers).
    SystemMemoryUsage => "system.memory.usage", "By", UpDownCounter;
    /// Total physical memory.
    SystemMemoryLimit => "system.memory.limit", "By", UpDownCounter;
    /// Used memory as a share of the limit (0..1).
    SystemMemoryUtilization => "system.memory.utilization", "1", Gauge;
    /// MemAvailable: what can be allocated without swapping.
    SystemMemoryLinuxAvailable => "system.memory.linux.available", "By", UpDownCounter;
    /// Swap by state (used, free).
    SystemPagingUsage => "system.paging.usage", "By", UpDownCounter;
    /// Used swap as a share of total swap (0..1).
    SystemPagingUtilization => "system.paging.utilization", "1", Gauge;
    /// CPU pressure: share of the last 10 s some task waited for a CPU (PSI avg10, 0..1).
    SystemCpuLinuxPressureAvg10 => "system.cpu.linux.pressure.avg10", "1", Gauge;
    /// CPU pressure: share of the last 60 s some task waited for a CPU (PSI avg60, 0..1).
    SystemCpuLinuxPressureAvg60 => "system.cpu.linux.pressure.avg60", "1", Gauge;
    /// CPU pressure: total stall time.
    SystemCpuLinuxPressureTotal => "system.cpu.linux.pressure.total", "s", Counter;
    /// Memory pressure (PSI avg10, 0..1).
    SystemMemoryLinuxPressureAvg10 => "system.memory.linux.pressure.avg10", "1", Gauge;
    /// Memory pressure (PSI avg60, 0..1).
    SystemMemoryLinuxPressureAvg60 => "system.memory.linux.pressure.avg60", "1", Gauge;
    /// Memory pressure: total stall time.
    SystemMemoryLinuxPressureTotal => "system.memory.linux.pressure.total", "s", Counter;
    /// I/O pressure (PSI avg10, 0..1).
    SystemIoLinuxPressureAvg10 => "system.io.linux.pressure.avg10", "1", Gauge;
    /// I/O pressure (PSI avg60, 0..1).
    SystemIoLinuxPressureAvg60 => "system.io.linux.pressure.avg60", "1", Gauge;
    /// I/O pressure: total stall time.
    SystemIoLinuxPressureTotal => "system.io.linux.pressure.total", "s", Counter;
    /// Processes killed by the kernel's OOM killer since boot (/proc/vmstat oom_kill).
    SystemMemoryLinuxOomKills => "system.memory.linux.oom_kills", "{kill}", Counter;

    // --- GPU (semantic conventions, hardware) ---
    /// GPU memory in use.
    HwGpuMemoryUsage => "hw.gpu.memory.usage", "By", UpDownCounter;
    /// GPU memory total.
    HwGpuMemoryLimit => "hw.gpu.memory.limit", "By", UpDownCounter;
    /// GPU memory used as a share of total (0..1).
    HwGpuMemoryUtilization => "hw.gpu.memory.utilization", "1", Gauge;
    /// GPU memory free (custom: NVML's free, which excludes reserved memory).
    HwGpuMemoryFree => "hw.gpu.memory.free", "By", UpDownCounter;
    /// GPU memory reserved by the driver and firmware (custom).
    HwGpuMemoryReserved => "hw.gpu.memory.reserved", "By", UpDownCounter;
    /// GPU busy share over the driver's sample period (0..1), by task.
    HwGpuUtilization => "hw.gpu.utilization", "1", Gauge;
    /// Memory-controller busy share (0..1) (custom).
    HwGpuMemoryControllerUtilization => "hw.gpu.memory_controller.utilization", "1", Gauge;
    /// Sensor temperature.
    HwTemperature => "hw.temperature", "Cel", Gauge;
    /// Temperature thresholds (slowdown = high.degraded, shutdown = high.critical).
    HwTemperatureLimit => "hw.temperature.limit", "Cel", Gauge;
    /// Power draw.
    HwPower => "hw.power", "W", Gauge;
    /// Enforced power limit (custom).
    HwGpuPowerLimit => "hw.gpu.power.limit", "W", Gauge;
    /// Energy consumed since the driver loaded.
    HwEnergy => "hw.energy", "J", Counter;
    /// ECC errors by type (corrected, uncorrected), volatile since the driver loaded.
    HwErrors => "hw.errors", "{error}", Counter;
    /// Fan speed as a share of its maximum (0..1).
    HwFanSpeedRatio => "hw.fan.speed_ratio", "1", Gauge;
    /// Current clock frequency by clock (sm, memory) (custom).
    HwGpuClockFrequency => "hw.gpu.clock.frequency", "Hz", Gauge;
    /// 1 while a throttle reason is active, per reason (custom).
    HwGpuThrottled => "hw.gpu.throttled", "1", Gauge;
    /// Device state: 1 for the current state (ok, degraded, failed).
    HwStatus => "hw.status", "1", UpDownCounter;
    /// GPU memory held by a process (custom).
    ProcessGpuMemoryUsage => "process.gpu.memory.usage", "By", UpDownCounter;

    // --- ZFS (custom zfs.pool.*, modelled on system.filesystem.* and system.disk.*) ---
    /// Pool space by state (used, free).
    ZfsPoolUsage => "zfs.pool.usage", "By", UpDownCounter;
    /// Pool size.
    ZfsPoolLimit => "zfs.pool.limit", "By", UpDownCounter;
    /// Allocated share of the pool (0..1).
    ZfsPoolUtilization => "zfs.pool.utilization", "1", Gauge;
    /// Free-space fragmentation (0..1).
    ZfsPoolFragmentation => "zfs.pool.fragmentation", "1", Gauge;
    /// Deduplication ratio (1 = none).
    ZfsPoolDedupRatio => "zfs.pool.dedup_ratio", "1", Gauge;
    /// 1 for the pool's current health (ONLINE, DEGRADED, FAULTED, ...).
    ZfsPoolHealth => "zfs.pool.health", "1", UpDownCounter;
    /// 1 for a vdev's current health.
    ZfsVdevHealth => "zfs.vdev.health", "1", UpDownCounter;
    /// Operations by direction, accumulated from `zpool iostat`'s per-interval rates.
    ZfsPoolOperations => "zfs.pool.operations", "{operation}", Counter;
    /// Bytes by direction, accumulated from `zpool iostat`'s per-interval rates.
    ZfsPoolIo => "zfs.pool.io", "By", Counter;
    /// Average wait per operation over the last iostat interval, by wait type and direction.
    ZfsPoolOperationLatency => "zfs.pool.operation.latency", "s", Gauge;
    /// Read, write and checksum errors summed over the pool's vdevs.
    ZfsPoolErrors => "zfs.pool.errors", "{error}", Counter;
    /// Progress of a running scrub or resilver (0..1).
    ZfsPoolScanProgress => "zfs.pool.scan.progress", "1", Gauge;

    // --- Ollama (custom ollama.*) ---
    /// 1 when Ollama answered the liveness probe.
    OllamaUp => "ollama.up", "1", Gauge;
    /// Liveness probe round-trip time.
    OllamaProbeDuration => "ollama.probe.duration", "s", Gauge;
    /// Models loaded now.
    OllamaModelsLoaded => "ollama.models.loaded", "{model}", UpDownCounter;
    /// A loaded model's memory by location (vram, ram: ram is spill to CPU).
    OllamaModelMemoryUsage => "ollama.model.memory.usage", "By", UpDownCounter;
    /// A loaded model's context length.
    OllamaModelContextLength => "ollama.model.context_length", "{token}", Gauge;
    /// 1 while the Ollama systemd unit is active.
    OllamaServiceActive => "ollama.service.active", "1", Gauge;
    /// The unit's restart count (systemd NRestarts).
    OllamaServiceRestarts => "ollama.service.restarts", "{restart}", Counter;
    /// Resident memory of Ollama's main process.
    OllamaProcessMemoryUsage => "ollama.process.memory.usage", "By", UpDownCounter;
    /// CPU time of Ollama's main process.
    OllamaProcessCpuTime => "ollama.process.cpu.time", "s", Counter;

    // --- hostwarden itself ---
    /// Alerts firing now, by rule and severity.
    HostwardenAlerts => "hostwarden.alerts", "{alert}", UpDownCounter;
    /// Time the collector took this tick.
    HostwardenCollectorDuration => "hostwarden.collector.duration", "s", Gauge;
    /// 1 when the collector succeeded this tick.
    HostwardenCollectorSuccess => "hostwarden.collector.success", "1", Gauge;
    /// Failed OTLP export attempts.
    HostwardenExportFailures => "hostwarden.export.failures", "{failure}", Counter;
    /// Events waiting in the outbox.
    HostwardenOutboxDepth => "hostwarden.outbox.depth", "{event}", UpDownCounter;
    /// Events dropped because the outbox was full.
    HostwardenOutboxDropped => "hostwarden.outbox.dropped", "{event}", Counter;
    /// Tuner actions by result (applied, rolled_back, skipped).
    HostwardenTunerActions => "hostwarden.tuner.actions", "{action}", Counter;
    /// The agent's own CPU time.
    ProcessCpuTime => "process.cpu.time", "s", Counter;
    /// The agent's own resident memory.
    ProcessMemoryUsage => "process.memory.usage", "By", UpDownCounter;
}

impl Serialize for MetricName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

macro_rules! attr_keys {
    ($( $variant:ident => $name:literal, )*) => {
        /// Attribute keys: a closed set, so no collector can invent a label.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AttrKey { $( $variant, )* }

        impl AttrKey {
            /// All keys, in declaration order.
            pub const ALL: &'static [AttrKey] = &[$(AttrKey::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self { $(AttrKey::$variant => $name,)* }
            }
            pub fn from_name(name: &str) -> Option<AttrKey> {
                match name { $($name => Some(AttrKey::$variant),)* _ => None }
            }
        }
    };
}

attr_keys! {
    CpuLogicalNumber => "cpu.logical_number",
    SystemMemoryState => "system.memory.state",
    SystemPagingState => "system.paging.state",
    PressureStallType => "system.pressure.stall_type",
    HwId => "hw.id",
    HwName => "hw.name",
    HwType => "hw.type",
    HwVendor => "hw.vendor",
    HwState => "hw.state",
    HwGpuTask => "hw.gpu.task",
    HwSensorLocation => "hw.sensor_location",
    HwLimitType => "hw.limit_type",
    HwGpuClock => "hw.gpu.clock",
    HwGpuThrottleReason => "hw.gpu.throttle_reason",
    ErrorType => "error.type",
    ProcessPid => "process.pid",
    ProcessExecutableName => "process.executable.name",
    ZfsPoolName => "zfs.pool.name",
    ZfsPoolState => "zfs.pool.state",
    ZfsPoolHealthState => "zfs.pool.health",
    ZfsVdevName => "zfs.vdev.name",
    ZfsWaitType => "zfs.wait.type",
    ZfsScanFunction => "zfs.scan.function",
    DiskIoDirection => "disk.io.direction",
    GenAiRequestModel => "gen_ai.request.model",
    OllamaMemoryLocation => "ollama.memory.location",
    SystemdUnit => "systemd.unit",
    AlertRule => "alert.rule",
    AlertSeverity => "alert.severity",
    Collector => "collector",
    Result => "result",
}

impl Serialize for AttrKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An attribute value: a string from a bounded source (device UUID, pool name, fixed enum
/// strings) or an integer (CPU number, PID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum AttrValue {
    Int(i64),
    Str(String),
}

impl AttrValue {
    pub fn as_text(&self) -> String {
        match self {
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Str(s) => s.clone(),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}
impl From<i64> for AttrValue {
    fn from(i: i64) -> Self {
        AttrValue::Int(i)
    }
}
impl From<u32> for AttrValue {
    fn from(i: u32) -> Self {
        AttrValue::Int(i64::from(i))
    }
}

/// A point's attributes, kept sorted by key so two points of one series compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attrs(Vec<(AttrKey, AttrValue)>);

impl Attrs {
    pub fn new() -> Self {
        Attrs(Vec::new())
    }

    /// Adds or replaces one attribute (builder style).
    pub fn with(mut self, key: AttrKey, value: impl Into<AttrValue>) -> Self {
        self.set(key, value);
        self
    }

    pub fn set(&mut self, key: AttrKey, value: impl Into<AttrValue>) {
        let value = value.into();
        match self.0.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    pub fn get(&self, key: AttrKey) -> Option<&AttrValue> {
        self.0
            .binary_search_by_key(&key, |(k, _)| *k)
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(AttrKey, AttrValue)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Attrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_str(), v)?;
        }
        map.end()
    }
}

/// A point's value: integers stay exact (bytes, counts); ratios and seconds are floats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Float(f64),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            // Precision loss only past 2^53, far beyond any byte count we read.
            #[allow(clippy::cast_precision_loss)]
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
        }
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<u64> for Value {
    fn from(u: u64) -> Self {
        Value::Int(i64::try_from(u).unwrap_or(i64::MAX))
    }
}
impl From<u32> for Value {
    fn from(u: u32) -> Self {
        Value::Int(i64::from(u))
    }
}

/// One observation of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPoint {
    pub name: MetricName,
    pub unit: &'static str,
    pub attributes: Attrs,
    pub value: Value,
}

impl MetricPoint {
    pub fn new(name: MetricName, attributes: Attrs, value: impl Into<Value>) -> Self {
        MetricPoint {
            name,
            unit: name.unit(),
            attributes,
            value: value.into(),
        }
    }
}

/// Which collector produced a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectorId {
    Host,
    Gpu,
    Zfs,
    Ollama,
}

impl CollectorId {
    pub const fn as_str(self) -> &'static str {
        match self {
            CollectorId::Host => "host",
            CollectorId::Gpu => "gpu",
            CollectorId::Zfs => "zfs",
            CollectorId::Ollama => "ollama",
        }
    }
}

impl std::fmt::Display for CollectorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A collector's condition this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Everything it reads, it read.
    Ok,
    /// It read something, but not everything (a lost GPU, a restarting iostat child).
    Degraded,
    /// It read nothing (no driver, no binary, disabled, deadline passed).
    Unavailable,
}

/// What one collector reported for one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorStatus {
    pub collector: CollectorId,
    pub health: Health,
    /// Why it is not `ok`, in words an operator can act on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wall time the collection took, in seconds.
    pub duration_seconds: f64,
    /// Number of points it contributed.
    pub points: usize,
}

/// Everything one tick saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Unix time of the tick, in milliseconds.
    pub timestamp_ms: u64,
    pub collectors: Vec<CollectorStatus>,
    pub points: Vec<MetricPoint>,
}

impl Snapshot {
    /// Points of one metric.
    pub fn points_named(&self, name: MetricName) -> impl Iterator<Item = &MetricPoint> {
        self.points.iter().filter(move |p| p.name == name)
    }

    /// The first point of a metric whose attributes include all of `with`.
    pub fn find(&self, name: MetricName, with: &[(AttrKey, &str)]) -> Option<&MetricPoint> {
        self.points_named(name).find(|p| {
            with.iter()
                .all(|(k, v)| p.attributes.get(*k).is_some_and(|a| a.as_text() == *v))
        })
    }

    pub fn status(&self, id: CollectorId) -> Option<&CollectorStatus> {
        self.collectors.iter().find(|c| c.collector == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for n in MetricName::ALL {
            assert!(seen.insert(n.as_str()), "duplicate name {}", n.as_str());
            assert_eq!(MetricName::from_name(n.as_str()), Some(*n));
            assert!(
                !n.description().is_empty(),
                "{} has no description",
                n.as_str()
            );
        }
        assert_eq!(MetricName::from_name("no.such.metric"), None);
    }

    #[test]
    fn attrs_are_sorted_and_replace() {
        let a = Attrs::new()
            .with(AttrKey::ZfsPoolName, "tank")
            .with(AttrKey::CpuLogicalNumber, 3u32)
            .with(AttrKey::ZfsPoolName, "rpool");
        let keys: Vec<_> = a.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec![AttrKey::CpuLogicalNumber, AttrKey::ZfsPoolName]);
        assert_eq!(a.get(AttrKey::ZfsPoolName), Some(&AttrValue::from("rpool")));
    }

    #[test]
    fn point_serializes_with_name_unit_and_exact_integers() {
        let p = MetricPoint::new(
            MetricName::SystemMemoryUsage,
            Attrs::new().with(AttrKey::SystemMemoryState, "used"),
            1_234_567_890_123u64,
        );
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"name":"system.memory.usage","unit":"By","attributes":{"system.memory.state":"used"},"value":1234567890123}"#
        );
    }
}
