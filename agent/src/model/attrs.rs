//! Attribute keys (a bounded set, like metric names) and a point's sorted attributes.

use serde::{Serialize, Serializer};

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
    CpuMode => "cpu.mode",
    SystemMemoryState => "system.memory.state",
    SystemPagingState => "system.paging.state",
    PressureStallType => "system.pressure.stall_type",
    HwId => "hw.id",
    HwName => "hw.name",
    HwType => "hw.type",
    HwVendor => "hw.vendor",
    HwModel => "hw.model",
    HwDriverVersion => "hw.driver_version",
    HwSerialNumber => "hw.serial_number",
    HwState => "hw.state",
    HwGpuTask => "hw.gpu.task",
    HwSensorLocation => "hw.sensor_location",
    HwLimitType => "hw.limit_type",
    HwGpuClock => "hw.gpu.clock",
    HwGpuThrottleReason => "hw.gpu.throttle_reason",
    HwGpuXid => "hw.gpu.xid",
    HwGpuEccCounter => "hw.gpu.ecc.counter",
    NetworkIoDirection => "network.io.direction",
    ErrorType => "error.type",
    ProcessPid => "process.pid",
    ProcessExecutableName => "process.executable.name",
    ZfsPoolName => "zfs.pool.name",
    ZfsPoolState => "zfs.pool.state",
    ZfsPoolHealthState => "zfs.pool.health",
    ZfsVdevName => "zfs.vdev.name",
    ZfsArcLimitType => "zfs.arc.limit_type",
    ZfsArcState => "zfs.arc.state",
    ZfsWaitType => "zfs.wait.type",
    ZfsScanFunction => "zfs.scan.function",
    ZfsScanState => "zfs.scan.state",
    DiskIoDirection => "disk.io.direction",
    SystemDevice => "system.device",
    SystemFilesystemState => "system.filesystem.state",
    SystemFilesystemMountpoint => "system.filesystem.mountpoint",
    SystemFilesystemType => "system.filesystem.type",
    SystemFilesystemMode => "system.filesystem.mode",
    NetworkInterfaceName => "network.interface.name",
    GenAiRequestModel => "gen_ai.request.model",
    OllamaMemoryLocation => "ollama.memory.location",
    OllamaRunnerModel => "ollama.runner.model",
    OllamaUnitLimitType => "ollama.unit.limit_type",
    SystemdUnit => "systemd.unit",
    AlertRule => "alert.rule",
    AlertSeverity => "alert.severity",
    HostwardenCollectorName => "hostwarden.collector.name",
    HostwardenTunerResult => "hostwarden.tuner.result",
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
