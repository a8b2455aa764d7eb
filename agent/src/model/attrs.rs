//! Attribute keys (a bounded set, like metric names) and a point's sorted attributes.

use std::sync::Arc;

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
    Str(Text),
}

/// An attribute's text. Points are rebuilt every tick and their attributes cloned per point
/// (a mount's device, mount point and type go on eight points), so a clone must not copy the
/// text: fixed strings are borrowed for the program's life and the rest shared (issue 20:
/// attribute clones were about 70 % of the allocations of a host tick).
#[derive(Clone)]
pub enum Text {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Text {
    pub fn as_str(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Shared(s) => s,
        }
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

// Equality, order and hash are the text's, whichever way it is held.
impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Text {}
impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Text {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}
impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}
impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}
impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
impl From<&'static str> for Text {
    fn from(s: &'static str) -> Text {
        Text::Static(s)
    }
}
impl From<String> for Text {
    fn from(s: String) -> Text {
        Text::Shared(s.into())
    }
}
impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl AttrValue {
    pub fn as_text(&self) -> String {
        match self {
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Str(s) => s.as_str().to_owned(),
        }
    }

    /// Calls `f` with the text `as_text` gives, without allocating it: an integer is written
    /// on the stack. The rules compare every point's attributes every tick (issue 20).
    pub fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        use std::io::Write;
        match self {
            AttrValue::Str(s) => f(s),
            AttrValue::Int(i) => {
                // i64::MIN, the longest, is 20 characters.
                let mut buf = [0u8; 20];
                let mut rest = &mut buf[..];
                let written = write!(rest, "{i}").is_ok();
                let left = rest.len();
                let len = buf.len() - left;
                match std::str::from_utf8(&buf[..len]) {
                    Ok(text) if written => f(text),
                    _ => f(&i.to_string()),
                }
            }
        }
    }
}

/// Fixed strings ("used", "user", "read") are borrowed: no allocation per point.
impl From<&'static str> for AttrValue {
    fn from(s: &'static str) -> Self {
        AttrValue::Str(Text::Static(s))
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(Text::Shared(Arc::from(s)))
    }
}
impl From<Arc<str>> for AttrValue {
    fn from(s: Arc<str>) -> Self {
        AttrValue::Str(Text::Shared(s))
    }
}
impl From<&Arc<str>> for AttrValue {
    fn from(s: &Arc<str>) -> Self {
        AttrValue::Str(Text::Shared(Arc::clone(s)))
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
#[derive(Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attrs(Vec<(AttrKey, AttrValue)>);

/// A clone is nearly always extended by one attribute (a device's identity plus a limit type,
/// a CPU number plus a mode), so it is made with room for one more: the point then costs one
/// allocation, not an allocation and a reallocation (issue 20: 70 reallocations a tick with
/// every collector). An empty set stays unallocated.
impl Clone for Attrs {
    fn clone(&self) -> Self {
        if self.0.is_empty() {
            return Attrs::new();
        }
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.extend(self.0.iter().cloned());
        Attrs(v)
    }
}

impl Attrs {
    pub fn new() -> Self {
        Attrs(Vec::new())
    }

    /// Room for `n` attributes before the first reallocation: for a set built up key by key
    /// past the four a first insertion makes room for (a GPU's identity has seven).
    pub fn with_capacity(n: usize) -> Self {
        Attrs(Vec::with_capacity(n))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_text_gives_the_text_as_text_gives() {
        for v in [
            AttrValue::Int(0),
            AttrValue::Int(-7),
            AttrValue::Int(i64::MIN),
            AttrValue::Int(i64::MAX),
            AttrValue::from("static"),
            AttrValue::from("shared".to_owned()),
        ] {
            assert_eq!(v.with_text(str::to_owned), v.as_text());
        }
    }

    #[test]
    fn a_clone_equals_the_original_and_has_room_for_one_more() {
        assert_eq!(Attrs::new().clone().0.capacity(), 0);
        let a = Attrs::new()
            .with(AttrKey::HwId, "GPU-1")
            .with(AttrKey::CpuMode, "user");
        let b = a.clone();
        assert_eq!(a, b);
        assert!(b.0.capacity() > b.0.len());
        assert_eq!(b.with(AttrKey::HwType, "gpu").iter().count(), 3);
    }
}
