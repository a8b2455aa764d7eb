//! The `[[rules]]` syntax. It is part of the product's interface: keys are only ever added.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fields::NonEmptyString;

/// Comparison between a value and a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }

    /// True when `a` is a more extreme threshold than `b` in this direction.
    pub fn beyond(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt | Op::Ge => a > b,
            Op::Lt | Op::Le => a < b,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// Learn a baseline of the metric; thresholds become ratios to it (2.0 = 200% of baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    /// How much history the baseline summarises.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long the baseline learns before the rule may fire.
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
}

/// Aggregate of the value over a window, judged instead of the last value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverFn {
    Avg,
    Max,
    Min,
    Increase,
    Rate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverSpec {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    #[serde(rename = "fn")]
    pub func: OverFn,
}

/// A threshold read from another metric of the same device (e.g. a GPU's own slowdown
/// temperature), matched on the attributes the two series share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdFrom {
    pub metric: String,
    #[serde(rename = "match", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matchers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique; shown in every event.
    pub name: NonEmptyString,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// The exported metric name.
    pub metric: String,
    /// Attribute matchers: a series is judged when all of them equal.
    #[serde(rename = "match", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matchers: BTreeMap<String, String>,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
    /// Critical threshold taken from another metric of the same series (device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_from: Option<ThresholdFrom>,
    /// The value must cross back over this to resolve (hysteresis); default: the trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<f64>,
    #[serde(rename = "for", default, with = "humantime_serde")]
    pub for_: Duration,
    #[serde(default, with = "humantime_serde")]
    pub keep_firing_for: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<OverSpec>,
    /// Optional sentence shown with the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

fn enabled_default() -> bool {
    true
}

pub use super::validate::validate_rules;
