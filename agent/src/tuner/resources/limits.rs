//! Limits as systemd takes them: the property names and values of `SetUnitProperties`, the
//! lines of our resources drop-in, and the comparison with what systemd reports over D-Bus and
//! what the kernel's cgroup files hold. Pure.

use std::collections::BTreeMap;

use super::config::{INFINITY, Value};
use crate::sys::cgroup::CgroupReading;
use crate::sys::systemd::{PropValue, UnitLimits};

/// Our resources drop-in, beside `60-hostwarden.conf` (it sorts just before it, so an operator's
/// later file still wins, and is reported like an environment key).
pub const RESOURCES_DROPIN: &str = "60-hostwarden-resources.conf";

/// Config key (`memory_max`) -> the value to set.
pub type Limits = BTreeMap<String, Value>;

/// The D-Bus property of a config key.
pub fn property(key: &str) -> &'static str {
    match key {
        "memory_high" => "MemoryHigh",
        "memory_max" => "MemoryMax",
        "cpu_quota" => "CPUQuotaPerSecUSec",
        "allowed_cpus" => "AllowedCPUs",
        "cpu_weight" => "CPUWeight",
        _ => "TasksMax",
    }
}

/// CPU numbers -> the `ay` bitmask systemd takes (CPU 0 the lowest bit of byte 0).
pub fn mask(cpus: &[u32]) -> Vec<u8> {
    let len = cpus.iter().max().map_or(0, |m| *m as usize / 8 + 1);
    let mut bytes = vec![0u8; len];
    for c in cpus {
        bytes[*c as usize / 8] |= 1 << (c % 8);
    }
    bytes
}

fn unmask(bytes: &[u8]) -> Vec<u32> {
    let mut cpus = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        for bit in 0..8 {
            if b & (1 << bit) != 0 {
                cpus.push(u32::try_from(i * 8 + bit).unwrap_or(u32::MAX));
            }
        }
    }
    cpus
}

pub fn prop_value(v: &Value) -> PropValue {
    match v {
        Value::Bytes(n) | Value::UsecPerSec(n) | Value::Count(n) => PropValue::U64(*n),
        Value::Cpus(c) => PropValue::Mask(mask(c)),
    }
}

/// The `SetUnitProperties` arguments.
pub fn properties(limits: &Limits) -> Vec<(String, PropValue)> {
    limits
        .iter()
        .map(|(k, v)| (property(k).to_owned(), prop_value(v)))
        .collect()
}

/// A value in systemd's unit-file syntax (and for logs).
pub fn unit_syntax(v: &Value) -> String {
    match v {
        Value::Bytes(INFINITY) | Value::Count(INFINITY) => "infinity".to_owned(),
        Value::UsecPerSec(INFINITY) => String::new(),
        Value::Bytes(n) if n % (1 << 20) == 0 => format!("{}M", n >> 20),
        Value::Bytes(n) | Value::Count(n) => n.to_string(),
        Value::UsecPerSec(n) => format!("{}%", n / 10_000),
        Value::Cpus(c) => c.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
    }
}

/// The unit-file directives of the config keys, in `config::KEYS` order: what an operator's
/// drop-in sets to take a limit over.
pub const DIRECTIVES: [&str; 6] = [
    "MemoryHigh",
    "MemoryMax",
    "CPUQuota",
    "AllowedCPUs",
    "CPUWeight",
    "TasksMax",
];

/// The config key of a unit-file directive (`MemoryMax` -> `memory_max`).
pub fn key_of(directive: &str) -> Option<&'static str> {
    let i = DIRECTIVES.iter().position(|d| *d == directive)?;
    Some(super::config::KEYS[i])
}

/// The unit-file directive of a config key.
pub fn directive(key: &str) -> &'static str {
    match key {
        "cpu_quota" => "CPUQuota",
        k => property(k),
    }
}

/// Our drop-in: the same limits, so a reload or a reboot keeps what was set live.
pub fn render(limits: &Limits) -> String {
    let mut out = String::from(
        "# Written by hostwarden's Ollama tuner ([tuner.resources]). Do not edit: it rewrites or\n\
         # removes this file. The audit journal in hostwarden's state_dir says why.\n[Service]\n",
    );
    for (k, v) in limits {
        out.push_str(&format!("{}={}\n", directive(k), unit_syntax(v)));
    }
    out
}

/// `memory_max=512M cpu_quota=150%` for logs and the journal.
pub fn show(limits: &Limits) -> String {
    limits
        .iter()
        .map(|(k, v)| match (k.as_str(), v) {
            ("cpu_quota", Value::UsecPerSec(INFINITY)) => format!("{k}=infinity"),
            _ => format!("{k}={}", unit_syntax(v)),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What systemd holds now for `key`.
pub fn from_dbus(l: &UnitLimits, key: &str) -> Value {
    match key {
        "memory_high" => Value::Bytes(l.memory_high),
        "memory_max" => Value::Bytes(l.memory_max),
        "cpu_quota" => Value::UsecPerSec(l.cpu_quota_per_sec_usec),
        "allowed_cpus" => Value::Cpus(unmask(&l.allowed_cpus)),
        "cpu_weight" => Value::Count(l.cpu_weight),
        _ => Value::Count(l.tasks_max),
    }
}

/// Every key's value systemd holds now.
pub fn all_from_dbus(l: &UnitLimits) -> Limits {
    super::config::KEYS
        .iter()
        .map(|k| ((*k).to_owned(), from_dbus(l, k)))
        .collect()
}

/// Limits as `key -> unit-file value`, the shape the gate compares (`Env`).
pub fn as_env(l: &Limits) -> crate::tuner::apply::dropin::Env {
    l.iter().map(|(k, v)| (k.clone(), unit_syntax(v))).collect()
}

/// The keys whose D-Bus value differs from `want`, as `key: want X, systemd has Y`.
pub fn dbus_mismatches(l: &UnitLimits, want: &Limits) -> Vec<String> {
    want.iter()
        .filter_map(|(k, v)| {
            let has = from_dbus(l, k);
            (has != *v).then(|| format!("{k}: wanted {v:?}, systemd has {has:?}"))
        })
        .collect()
}

/// The keys whose cgroup file disagrees with `want` (keys the layout has no file for, such as
/// MemoryHigh on v1, AllowedCPUs without the cpuset controller, are not judged here).
pub fn cgroup_mismatches(r: &CgroupReading, want: &Limits) -> Vec<String> {
    let page = 4096;
    want.iter()
        .filter_map(|(k, v)| {
            let ok = match (k.as_str(), v) {
                ("memory_high", Value::Bytes(b)) => r.memory_high.is_none_or(|f| f == *b),
                // v1 rounds the limit down to a page.
                ("memory_max", Value::Bytes(b)) => r
                    .memory_max
                    .is_none_or(|f| f == *b || (*b != INFINITY && f == b / page * page)),
                ("cpu_quota", Value::UsecPerSec(q)) => {
                    r.cpu_quota_per_sec_usec.is_none_or(|f| f == *q)
                }
                ("cpu_weight", Value::Count(w)) => {
                    r.cpu_weight.is_none_or(|f| f == *w)
                        && r.cpu_shares.is_none_or(|s| s == (w * 1024 / 100).max(2))
                }
                ("tasks_max", Value::Count(n)) => r.tasks_max.is_none_or(|f| f == *n),
                _ => true,
            };
            (!ok).then(|| format!("{k}: wanted {v:?}, the cgroup holds {r:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_unit_file_lines_and_masks() {
        let l: Limits = [
            ("memory_high".to_owned(), Value::Bytes(512 << 20)),
            ("memory_max".to_owned(), Value::Bytes(INFINITY)),
            ("cpu_quota".to_owned(), Value::UsecPerSec(1_500_000)),
            ("tasks_max".to_owned(), Value::Count(64)),
        ]
        .into();
        let text = render(&l);
        assert!(text.contains("\nMemoryHigh=512M\n"), "{text}");
        assert!(text.contains("\nMemoryMax=infinity\n"), "{text}");
        assert!(text.contains("\nCPUQuota=150%\n"), "{text}");
        assert!(text.contains("\nTasksMax=64\n"), "{text}");
        assert_eq!(mask(&[0, 1, 9]), [0b11, 0b10]);
        assert_eq!(key_of("CPUQuota"), Some("cpu_quota"));
        assert_eq!(key_of("TasksMax").map(directive), Some("TasksMax"));
        assert_eq!(key_of("MemoryLimit"), None);
        assert_eq!(unmask(&mask(&[3, 8, 15])), [3, 8, 15]);
        assert_eq!(
            properties(&l)[0],
            ("CPUQuotaPerSecUSec".to_owned(), PropValue::U64(1_500_000))
        );
    }

    #[test]
    fn judges_v1_files_by_systemd_mapping() {
        let want: Limits = [
            ("memory_max".to_owned(), Value::Bytes(100 << 20)),
            ("cpu_weight".to_owned(), Value::Count(200)),
            ("memory_high".to_owned(), Value::Bytes(80 << 20)),
        ]
        .into();
        let v1 = CgroupReading {
            memory_max: Some(100 << 20),
            cpu_shares: Some(2048),
            ..CgroupReading::default()
        };
        assert!(cgroup_mismatches(&v1, &want).is_empty());
        let wrong = CgroupReading {
            memory_max: Some(INFINITY),
            ..v1
        };
        assert_eq!(cgroup_mismatches(&wrong, &want).len(), 1);
    }
}
