//! The config types every component shares, in a leaf module that imports nothing of the
//! agent: `FieldError` (a problem with one field, its path relative to the section that found
//! it) and the newtypes that reject bad values while the file is read (`Ratio`,
//! `NonEmptyString`), so the rest of the agent never sees them. Durations are plain
//! `std::time::Duration` read through `humantime_serde`.

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
    fn newtypes_reject_bad_values() {
        assert!(Ratio::try_from(1.5).is_err());
        assert_eq!(Ratio::try_from(0.5).map(Ratio::get), Ok(0.5));
        assert!(NonEmptyString::try_from("  ".to_owned()).is_err());
    }
}
