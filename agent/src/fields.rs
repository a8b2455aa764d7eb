//! The config types every component shares, in a leaf module that imports nothing of the
//! agent: `FieldError` (a problem with one field, its path relative to the section that found
//! it) and the newtypes that reject bad values while the file is read (`Ratio`,
//! `NonEmptyString`), so the rest of the agent never sees them. Durations are plain
//! `std::time::Duration` read through `humantime_serde`.

use std::path::{Component, Path};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A problem with one field, before it is located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path with indices, e.g. `rules[2].warning`: relative to the section that reported
    /// it until a parent prefixes its own name (`under`).
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error seen from the parent section `section`: `window` under `tuner` is
    /// `tuner.window`, `[2].metric` under `rules` is `rules[2].metric`.
    #[must_use]
    pub fn under(mut self, section: &str) -> Self {
        self.path = if self.path.is_empty() {
            section.to_owned()
        } else if self.path.starts_with('[') {
            format!("{section}{}", self.path)
        } else {
            format!("{section}.{}", self.path)
        };
        self
    }
}

/// Every error of `errors` seen from the parent section `section`.
pub fn under(section: &str, errors: Vec<FieldError>) -> impl Iterator<Item = FieldError> + '_ {
    errors.into_iter().map(move |e| e.under(section))
}

/// Pushes an error when `value` lies outside `min..=max`, naming the range.
pub fn check_duration(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Duration,
    min: Duration,
    max: Duration,
) {
    if value < min || value > max {
        errors.push(FieldError::new(
            field,
            format!(
                "must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
}

/// Pushes an error unless `path` is absolute and normalised (no `.`, `..` or empty parts):
/// the agent writes below it, and a relative path would follow the working directory.
pub fn check_absolute_dir(errors: &mut Vec<FieldError>, field: &str, path: &Path) {
    if path.as_os_str().is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if !path.is_absolute() {
        errors.push(FieldError::new(
            field,
            format!("\"{}\" must be an absolute path", path.display()),
        ));
    } else if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || path
            .to_str()
            .is_some_and(|s| s.contains("/./") || s.ends_with("/."))
    {
        errors.push(FieldError::new(
            field,
            format!(
                "\"{}\" must be a normalised path (no \".\" or \"..\")",
                path.display()
            ),
        ));
    }
}

/// The unit-type suffixes systemd knows (`unit_type_table` in systemd's `unit-def.c`).
const UNIT_SUFFIXES: [&str; 11] = [
    "service",
    "mount",
    "swap",
    "socket",
    "target",
    "device",
    "automount",
    "timer",
    "path",
    "slice",
    "scope",
];

/// systemd's `unit_name_is_valid` for plain and instance names: at most 255 bytes, only
/// `[A-Za-z0-9:_.\-@]` (so no slash, space, `;` or newline), a non-empty prefix and a known
/// unit-type suffix. The name ends up in a drop-in path and in D-Bus calls.
pub fn unit_name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.len() > 255 {
        return Some(format!(
            "is {} bytes; a systemd unit name has at most 255",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":_.-@\\".contains(*c)))
    {
        return Some(format!(
            "{name:?} is not a systemd unit name: {bad:?} is not allowed (only A-Z a-z 0-9 : _ . - @ \\)"
        ));
    }
    let known = name.rsplit_once('.').is_some_and(|(prefix, suffix)| {
        !prefix.is_empty() && !prefix.starts_with('@') && UNIT_SUFFIXES.contains(&suffix)
    });
    if !known {
        return Some(format!(
            "{name:?} is not a systemd unit name: it needs a prefix and a unit type suffix such as \".service\""
        ));
    }
    None
}

/// A share between 0 and 1 inclusive.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Ratio(f64);

impl Ratio {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Ratio {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, Self::Error> {
        if (0.0..=1.0).contains(&v) {
            Ok(Ratio(v))
        } else {
            Err(format!("{v} is not a ratio between 0 and 1"))
        }
    }
}

impl From<Ratio> for f64 {
    fn from(r: Ratio) -> f64 {
        r.0
    }
}

/// A string that is neither empty nor only white space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NonEmptyString(String);

impl NonEmptyString {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NonEmptyString {
    type Error = String;
    fn try_from(v: String) -> Result<Self, Self::Error> {
        if v.trim().is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(NonEmptyString(v))
        }
    }
}

impl From<NonEmptyString> for String {
    fn from(s: NonEmptyString) -> String {
        s.0
    }
}

impl std::fmt::Display for NonEmptyString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_prefixes_its_section() {
        assert_eq!(
            FieldError::new("window", "x").under("tuner").path,
            "tuner.window"
        );
        assert_eq!(
            FieldError::new("[2].metric", "x").under("rules").path,
            "rules[2].metric"
        );
        let nested: Vec<String> = under(
            "export",
            vec![FieldError::new("endpoint", "x").under("otlp")],
        )
        .map(|e| e.path)
        .collect();
        assert_eq!(nested, ["export.otlp.endpoint"]);
        assert_eq!(FieldError::new("", "x").under("agent").path, "agent");
    }

    #[test]
    fn unit_names_follow_systemd() {
        for good in [
            "ollama.service",
            "getty@tty1.service",
            "a-b_c:d.socket",
            "x\\x2d.mount",
        ] {
            assert_eq!(unit_name_error(good), None, "{good}");
        }
        let long = format!("{}.service", "a".repeat(250));
        for bad in [
            "",
            "ollama",
            ".service",
            "ollama.exe",
            "foo;rm -rf /",
            "../../x",
            "/etc/cron.d/evil",
            "ollama.service\n[Service]\nExecStart=/bin/sh",
            long.as_str(),
        ] {
            assert!(unit_name_error(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn directories_must_be_absolute_and_normalised() {
        let check = |p: &str| {
            let mut e = Vec::new();
            check_absolute_dir(&mut e, "d", Path::new(p));
            e.is_empty()
        };
        assert!(check("/etc/systemd/system"));
        assert!(!check(""));
        assert!(!check("relative/dir"));
        assert!(!check("../../etc/passwd"));
        assert!(!check("/etc/../etc/passwd"));
        assert!(!check("/etc/./x"));
    }

    #[test]
    fn newtypes_reject_bad_values() {
        assert!(Ratio::try_from(1.5).is_err());
        assert_eq!(Ratio::try_from(0.5).map(Ratio::get), Ok(0.5));
        assert!(NonEmptyString::try_from("  ".to_owned()).is_err());
    }
}
