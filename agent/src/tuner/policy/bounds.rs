//! The OLLAMA_* keys the tuner may set, the syntax Ollama accepts for each (ENV.md), and the
//! operator's `[tuner.ollama.<KEY>]` pins and bounds: validated when the config loads, applied
//! to every decision.

use std::collections::BTreeMap;

use crate::fields::FieldError;
use crate::tuner::config::KeyBound;
use crate::tuner::policy::memory::KvType;

/// The allowlist: nothing else ever reaches the unit.
pub const KEYS: [&str; 7] = [
    "OLLAMA_NUM_PARALLEL",
    "OLLAMA_MAX_LOADED_MODELS",
    "OLLAMA_KEEP_ALIVE",
    "OLLAMA_FLASH_ATTENTION",
    "OLLAMA_KV_CACHE_TYPE",
    "OLLAMA_CONTEXT_LENGTH",
    "OLLAMA_MAX_QUEUE",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Unsigned integer, with the smallest value that makes sense.
    Uint {
        least: u64,
    },
    /// A keep-alive: seconds, -1 = forever.
    Duration,
    Bool,
    KvType,
}

fn kind(key: &str) -> Option<Kind> {
    Some(match key {
        "OLLAMA_NUM_PARALLEL" | "OLLAMA_MAX_QUEUE" => Kind::Uint { least: 1 },
        // 0 = Ollama's automatic choice.
        "OLLAMA_MAX_LOADED_MODELS" | "OLLAMA_CONTEXT_LENGTH" => Kind::Uint { least: 0 },
        "OLLAMA_KEEP_ALIVE" => Kind::Duration,
        "OLLAMA_FLASH_ATTENTION" => Kind::Bool,
        "OLLAMA_KV_CACHE_TYPE" => Kind::KvType,
        _ => return None,
    })
}

/// A keep-alive as Ollama reads it: a Go duration (`5m`, `1h30m`, `300s`, `-1m`) or integer
/// seconds; anything else (`1d`, `1.5`) Ollama silently replaces by 5m, so we refuse it.
/// Returns seconds, -1 for any negative (forever).
pub fn parse_keep_alive(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(if n < 0 { -1 } else { n });
    }
    let (neg, mut rest) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * mult;
    }
    if neg {
        return Some(-1);
    }
    #[allow(clippy::cast_possible_truncation)]
    Some(total.floor() as i64)
}

/// Seconds as the shortest Go duration: `-1`, `0`, `90s`, `5m`, `2h`.
pub fn format_keep_alive(secs: i64) -> String {
    match secs {
        s if s < 0 => "-1".to_owned(),
        0 => "0".to_owned(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// ENV.md: any boolean other than 0/false is true, so only these are written.
fn parse_bool(v: &toml::Value) -> Option<bool> {
    match v {
        toml::Value::Boolean(b) => Some(*b),
        toml::Value::Integer(0) => Some(false),
        toml::Value::Integer(1) => Some(true),
        toml::Value::String(s) => match s.trim() {
            "1" | "true" | "TRUE" | "True" | "t" | "T" => Some(true),
            "0" | "false" | "FALSE" | "False" | "f" | "F" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A bound's value normalised to what the policy compares: integers for Uint/Duration, 0/1 for
/// Bool, the KvType rank for KvType.
fn normalise(kind: Kind, v: &toml::Value) -> Result<i64, String> {
    match kind {
        Kind::Uint { least } => match v {
            toml::Value::Integer(n) if *n >= 0 && n.unsigned_abs() >= least => Ok(*n),
            toml::Value::String(s) => match s.trim().parse::<u64>() {
                Ok(n) if n >= least => i64::try_from(n).map_err(|e| e.to_string()),
                _ => Err(format!("{s:?} is not an integer >= {least}")),
            },
            other => Err(format!("{other} is not an integer >= {least}")),
        },
        Kind::Duration => match v {
            toml::Value::Integer(n) => Ok(if *n < 0 { -1 } else { *n }),
            toml::Value::String(s) => parse_keep_alive(s).ok_or_else(|| {
                format!(
                    "{s:?} is not a keep-alive Ollama reads (\"5m\", \"1h\", seconds, or -1); \
                     Ollama would silently use 5m"
                )
            }),
            other => Err(format!("{other} is not a duration")),
        },
        Kind::Bool => parse_bool(v)
            .map(i64::from)
            .ok_or_else(|| format!("{v} is not a boolean (write true/false or 1/0)")),
        Kind::KvType => v
            .as_str()
            .and_then(KvType::parse)
            .map(|k| k as i64)
            .ok_or_else(|| format!("{v} is not a KV cache type (f16, q8_0, q4_0)")),
    }
}

/// The operator's constraint on one key, normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub pin: Option<i64>,
}

/// Validates every `[tuner.ollama.<KEY>]` table; errors name the key (relative to
/// `[tuner.ollama]`).
pub fn validate(bounds: &BTreeMap<String, KeyBound>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, bound) in bounds {
        if let Err(e) = limits(key, bound) {
            errors.push(FieldError::new(key.clone(), e));
        }
    }
    errors
}

/// A bound, normalised; `Err` says what is wrong with it.
pub fn limits(key: &str, b: &KeyBound) -> Result<Limits, String> {
    let kind = kind(key).ok_or_else(|| {
        format!(
            "{key} is not a key the tuner sets; known keys: {}",
            KEYS.join(", ")
        )
    })?;
    if matches!(kind, Kind::Bool | Kind::KvType) && (b.min.is_some() || b.max.is_some()) {
        return Err(format!("{key} takes only `pin`, not min/max"));
    }
    let get = |v: &Option<toml::Value>, what: &str| {
        v.as_ref()
            .map(|v| normalise(kind, v).map_err(|e| format!("{what}: {e}")))
            .transpose()
    };
    let l = Limits {
        min: get(&b.min, "min")?,
        max: get(&b.max, "max")?,
        pin: get(&b.pin, "pin")?,
    };
    // -1 (forever) is the largest keep-alive, not the smallest.
    let rank = |v: i64| {
        if kind == Kind::Duration && v < 0 {
            i64::MAX
        } else {
            v
        }
    };
    if let (Some(lo), Some(hi)) = (l.min, l.max)
        && rank(lo) > rank(hi)
    {
        return Err(format!("min ({lo}) is above max ({hi})"));
    }
    Ok(l)
}

impl Limits {
    /// Applies the constraint; returns the value and, when it changed, the reason.
    pub fn apply(
        &self,
        key: &str,
        value: i64,
        show: impl Fn(i64) -> String,
    ) -> (i64, Option<String>) {
        if let Some(p) = self.pin {
            return (p, Some(format!("pinned by the operator to {}", show(p))));
        }
        let forever = key == "OLLAMA_KEEP_ALIVE";
        let rank = |v: i64| if forever && v < 0 { i64::MAX } else { v };
        if let Some(hi) = self.max
            && rank(value) > rank(hi)
        {
            return (
                hi,
                Some(format!(
                    "operator max {} lowered {} to {}",
                    show(hi),
                    show(value),
                    show(hi)
                )),
            );
        }
        if let Some(lo) = self.min
            && rank(value) < rank(lo)
        {
            return (
                lo,
                Some(format!(
                    "operator min {} raised {} to {}",
                    show(lo),
                    show(value),
                    show(lo)
                )),
            );
        }
        (value, None)
    }
}

/// True when `value` is a syntax Ollama reads for `key` the way we mean it (the policy's
/// property test holds every value it emits to this).
#[cfg(test)]
pub fn valid_value(key: &str, value: &str) -> bool {
    match kind(key) {
        Some(Kind::Uint { least }) => value.parse::<u64>().is_ok_and(|n| n >= least),
        Some(Kind::Duration) => value == "-1" || parse_keep_alive(value).is_some_and(|s| s >= 0),
        Some(Kind::Bool) => value == "0" || value == "1",
        Some(Kind::KvType) => KvType::parse(value).is_some_and(|k| k.as_str() == value),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(min: Option<toml::Value>, max: Option<toml::Value>, pin: Option<toml::Value>) -> KeyBound {
        KeyBound { min, max, pin }
    }
    use toml::Value::{Integer as I, String as S};

    #[test]
    fn keep_alive_syntax_as_ollama() {
        assert_eq!(parse_keep_alive("5m"), Some(300));
        assert_eq!(parse_keep_alive("1h30m"), Some(5400));
        assert_eq!(parse_keep_alive("3600"), Some(3600));
        assert_eq!(parse_keep_alive("-1"), Some(-1));
        assert_eq!(parse_keep_alive("-1m"), Some(-1));
        assert_eq!(parse_keep_alive("1d"), None);
        assert_eq!(parse_keep_alive("5 m"), None);
        for s in [0, 90, 300, 7200, -1] {
            assert_eq!(parse_keep_alive(&format_keep_alive(s)), Some(s));
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let mut m = BTreeMap::new();
        m.insert("OLLAMA_NUM_PARALEL".to_owned(), b(None, None, Some(I(2))));
        m.insert(
            "OLLAMA_KEEP_ALIVE".to_owned(),
            b(None, None, Some(S("1d".into()))),
        );
        m.insert(
            "OLLAMA_KV_CACHE_TYPE".to_owned(),
            b(None, None, Some(S("q5_1".into()))),
        );
        m.insert(
            "OLLAMA_FLASH_ATTENTION".to_owned(),
            b(None, None, Some(S("off".into()))),
        );
        m.insert(
            "OLLAMA_NUM_PARALLEL".to_owned(),
            b(Some(I(4)), Some(I(2)), None),
        );
        let errs: Vec<String> = validate(&m)
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        assert_eq!(errs.len(), 5, "{errs:#?}");
        let all = errs.join("\n");
        assert!(
            all.contains("OLLAMA_NUM_PARALEL is not a key the tuner sets"),
            "{all}"
        );
        assert!(all.contains("Ollama would silently use 5m"), "{all}");
        assert!(all.contains("q5_1"), "{all}");
        assert!(all.contains("not a boolean"), "{all}");
        assert!(all.contains("min (4) is above max (2)"), "{all}");
    }

    #[test]
    fn limits_clamp_and_pin() {
        let l = limits("OLLAMA_NUM_PARALLEL", &b(Some(I(1)), Some(I(8)), None)).unwrap();
        assert_eq!(l.apply("OLLAMA_NUM_PARALLEL", 12, |v| v.to_string()).0, 8);
        assert_eq!(
            l.apply("OLLAMA_NUM_PARALLEL", 3, |v| v.to_string()),
            (3, None)
        );
        let ka = limits("OLLAMA_KEEP_ALIVE", &b(None, Some(S("30m".into())), None)).unwrap();
        assert_eq!(ka.apply("OLLAMA_KEEP_ALIVE", -1, format_keep_alive).0, 1800);
        let fa = limits(
            "OLLAMA_FLASH_ATTENTION",
            &b(None, None, Some(toml::Value::Boolean(true))),
        )
        .unwrap();
        assert_eq!(fa.pin, Some(1));
    }
}
