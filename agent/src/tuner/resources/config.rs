//! `[tuner.resources]`: the Ollama unit's cgroup limits, each a value in systemd's own syntax
//! (`"512M"`, `"800%"`, `"infinity"`), `"auto"`, or absent (left alone). Parsed here into the
//! numbers systemd's D-Bus properties take, so a bad value is a config error with its place in
//! the file, never a failed apply.

use serde::{Deserialize, Serialize};

use crate::fields::FieldError;

/// One setting as written: a string, or a bare integer (`cpu_weight = 200`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Setting {
    Number(u64),
    Text(String),
}

impl Setting {
    fn text(&self) -> String {
        match self {
            Setting::Number(n) => n.to_string(),
            Setting::Text(t) => t.trim().to_owned(),
        }
    }

    pub fn is_auto(&self) -> bool {
        matches!(self, Setting::Text(t) if t.trim() == "auto")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_high: Option<Setting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<Setting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<Setting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_cpus: Option<Setting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<Setting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_max: Option<Setting>,
    /// RAM the host keeps for everything else when a memory limit is `auto` (systemd's size
    /// syntax). The ZFS ARC above its minimum counts as free: the kernel takes it back.
    pub reserve: String,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        ResourcesConfig {
            memory_high: None,
            memory_max: None,
            cpu_quota: None,
            allowed_cpus: None,
            cpu_weight: None,
            tasks_max: None,
            reserve: "2G".to_owned(),
        }
    }
}

/// A limit to set: systemd's property value (`u64::MAX` is infinity; AllowedCPUs a bitmask).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Bytes(u64),
    /// CPU time per second of wall time, in microseconds (`CPUQuotaPerSecUSec`).
    UsecPerSec(u64),
    Count(u64),
    Cpus(Vec<u32>),
}

/// How one key is wanted, after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Fixed(Value),
    /// A share of the host's RAM (`"50%"` for a memory limit), resolved each tick.
    RamPercent(u64),
    Auto,
}

/// The six keys, in the order they are applied and shown.
pub const KEYS: [&str; 6] = [
    "memory_high",
    "memory_max",
    "cpu_quota",
    "allowed_cpus",
    "cpu_weight",
    "tasks_max",
];

pub const INFINITY: u64 = u64::MAX;

impl ResourcesConfig {
    pub fn get(&self, key: &str) -> Option<&Setting> {
        match key {
            "memory_high" => self.memory_high.as_ref(),
            "memory_max" => self.memory_max.as_ref(),
            "cpu_quota" => self.cpu_quota.as_ref(),
            "allowed_cpus" => self.allowed_cpus.as_ref(),
            "cpu_weight" => self.cpu_weight.as_ref(),
            "tasks_max" => self.tasks_max.as_ref(),
            _ => None,
        }
    }

    /// True when no limit is configured (the section does nothing).
    pub fn is_empty(&self) -> bool {
        KEYS.iter().all(|k| self.get(k).is_none())
    }

    /// Every configured key, parsed.
    pub fn wanted(&self) -> Vec<(&'static str, Want)> {
        KEYS.iter()
            .filter_map(|k| Some((*k, parse(k, self.get(k)?).ok()?)))
            .collect()
    }

    /// Checks relative to `[tuner.resources]`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for key in KEYS {
            if let Some(s) = self.get(key)
                && let Err(e) = parse(key, s)
            {
                errors.push(FieldError::new(key, e));
            }
        }
        if let Err(e) = parse_bytes(&self.reserve) {
            errors.push(FieldError::new("reserve", e));
        }
        if self.cpu_quota.is_some() && self.allowed_cpus.is_some() {
            errors.push(FieldError::new(
                "allowed_cpus",
                "set cpu_quota or allowed_cpus, not both: each alone keeps a core for the host",
            ));
        }
        errors
    }

    pub fn reserve_bytes(&self) -> u64 {
        parse_bytes(&self.reserve).unwrap_or(2 << 30)
    }
}

/// Parses one key's setting.
pub fn parse(key: &str, s: &Setting) -> Result<Want, String> {
    let text = s.text();
    if s.is_auto() {
        return match key {
            "memory_high" | "memory_max" | "cpu_quota" | "allowed_cpus" => Ok(Want::Auto),
            _ => Err(format!(
                "\"auto\" is for memory_high, memory_max, cpu_quota and allowed_cpus; {key} takes a number or \"infinity\""
            )),
        };
    }
    match key {
        "memory_high" | "memory_max" => {
            if let Some(p) = text.strip_suffix('%') {
                return percent(p, 100).map(Want::RamPercent);
            }
            parse_bytes(&text).map(|b| Want::Fixed(Value::Bytes(b)))
        }
        "cpu_quota" => {
            if text == "infinity" {
                return Ok(Want::Fixed(Value::UsecPerSec(INFINITY)));
            }
            let p = text.strip_suffix('%').ok_or_else(|| {
                format!("{text:?} is not a CPU quota like \"800%\" (100% is one core)")
            })?;
            let p = percent(p, 100_000)?;
            Ok(Want::Fixed(Value::UsecPerSec(p * 10_000)))
        }
        "allowed_cpus" => parse_cpus(&text).map(|c| Want::Fixed(Value::Cpus(c))),
        "cpu_weight" => match text.parse::<u64>() {
            Ok(n) if (1..=10_000).contains(&n) => Ok(Want::Fixed(Value::Count(n))),
            _ => Err(format!("{text:?} is not a CPU weight from 1 to 10000")),
        },
        "tasks_max" => {
            if text == "infinity" {
                return Ok(Want::Fixed(Value::Count(INFINITY)));
            }
            match text.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(Want::Fixed(Value::Count(n))),
                _ => Err(format!("{text:?} is not a task count or \"infinity\"")),
            }
        }
        _ => Err(format!("{key} is not a resource key")),
    }
}

fn percent(p: &str, max: u64) -> Result<u64, String> {
    match p.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("\"{p}%\" is not a percentage from 1% to {max}%")),
    }
}

/// systemd's byte syntax: a number with an optional K, M, G or T suffix (powers of 1024), or
/// `infinity`. A limit under 1 MiB would only kill Ollama at once: refused.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t == "infinity" {
        return Ok(INFINITY);
    }
    let (num, shift) = match t.char_indices().last() {
        Some((i, 'K')) => (&t[..i], 10),
        Some((i, 'M')) => (&t[..i], 20),
        Some((i, 'G')) => (&t[..i], 30),
        Some((i, 'T')) => (&t[..i], 40),
        _ => (t, 0),
    };
    let bytes = num
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{text:?} is not a size like \"512M\", \"20G\" or \"infinity\""))?;
    if bytes < 1 << 20 {
        return Err(format!("{text:?} is under 1M; Ollama would not even start"));
    }
    Ok(bytes)
}

/// `"0-3,6"` -> [0, 1, 2, 3, 6]; at most CPU 4095.
fn parse_cpus(text: &str) -> Result<Vec<u32>, String> {
    let bad = || format!("{text:?} is not a CPU list like \"0-3,6\"");
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a > b || b > 4095 {
            return Err(bad());
        }
        cpus.extend(a..=b);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Setting {
        Setting::Text(s.to_owned())
    }

    #[test]
    fn parses_systemd_syntax() {
        assert_eq!(
            parse("memory_max", &t("512M")),
            Ok(Want::Fixed(Value::Bytes(512 << 20)))
        );
        assert_eq!(
            parse("memory_high", &t("infinity")),
            Ok(Want::Fixed(Value::Bytes(INFINITY)))
        );
        assert_eq!(parse("memory_high", &t("50%")), Ok(Want::RamPercent(50)));
        assert_eq!(
            parse("cpu_quota", &t("800%")),
            Ok(Want::Fixed(Value::UsecPerSec(8_000_000)))
        );
        assert_eq!(
            parse("allowed_cpus", &t("1-3,0,2")),
            Ok(Want::Fixed(Value::Cpus(vec![0, 1, 2, 3])))
        );
        assert_eq!(
            parse("cpu_weight", &Setting::Number(200)),
            Ok(Want::Fixed(Value::Count(200)))
        );
        assert_eq!(
            parse("tasks_max", &t("infinity")),
            Ok(Want::Fixed(Value::Count(INFINITY)))
        );
        assert_eq!(parse("memory_max", &t("auto")), Ok(Want::Auto));
    }

    #[test]
    fn refuses_what_systemd_would_refuse_or_what_would_kill_ollama() {
        for (k, v) in [
            ("memory_max", "512MB"),
            ("memory_max", "100K"),
            ("memory_max", "-1"),
            ("memory_high", "0%"),
            ("cpu_quota", "8"),
            ("cpu_quota", "0%"),
            ("allowed_cpus", "3-1"),
            ("cpu_weight", "0"),
            ("cpu_weight", "auto"),
            ("tasks_max", "auto"),
            ("tasks_max", "lots"),
        ] {
            assert!(parse(k, &t(v)).is_err(), "{k} = {v:?} accepted");
        }
        let cfg = ResourcesConfig {
            cpu_quota: Some(t("100%")),
            allowed_cpus: Some(t("0")),
            reserve: "lots".into(),
            ..ResourcesConfig::default()
        };
        let paths: Vec<String> = cfg.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["reserve", "allowed_cpus"]);
    }

    #[test]
    fn every_key_is_accepted_now_that_the_tuner_applies_it() {
        let cfg = ResourcesConfig {
            memory_high: Some(t("20G")),
            memory_max: Some(t("auto")),
            cpu_quota: Some(t("auto")),
            cpu_weight: Some(Setting::Number(200)),
            tasks_max: Some(t("infinity")),
            ..ResourcesConfig::default()
        };
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        assert!(ResourcesConfig::default().validate().is_empty());
    }
}
