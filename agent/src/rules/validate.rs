//! `check-config` for rules: every error carries the path of the exact field, relative to the
//! list (`[N].field`; the config composes `rules[N].field`); the config loader prefixes the
//! rule's name (`rule "gpu_hot": ...`) and turns the path into FILE:LINE:COL.

use std::collections::{BTreeMap, HashSet};

use super::config::RuleConfig;
use crate::fields::FieldError;
use crate::model::{AttrKey, MetricName, renamed};

/// Longest rule summary: a sentence fits with room to spare, and every event, the outbox and
/// rules.json carry a copy (a 10 MB summary made each event 10 MB).
pub const MAX_SUMMARY_BYTES: usize = 1024;

/// Checks every rule.
pub fn validate_rules(rules: &[RuleConfig]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut names = HashSet::new();
    for (i, r) in rules.iter().enumerate() {
        let mut err = |field: &str, msg: String| {
            errors.push(FieldError::new(format!("[{i}].{field}"), msg));
        };
        if !names.insert(r.name.as_str()) {
            err("name", format!("duplicate rule name \"{}\"", r.name));
        }
        match MetricName::from_name(&r.metric) {
            None => err("metric", unknown_metric(&r.metric)),
            Some(m) => check_split(m, &r.matchers, "match", &mut err),
        }
        check_matchers(&r.matchers, "match", &mut err);
        check_thresholds(r, &mut err);
        if let Some(from) = &r.critical_from {
            match MetricName::from_name(&from.metric) {
                None => err("critical_from.metric", unknown_metric(&from.metric)),
                Some(m) => check_split(m, &from.matchers, "critical_from.match", &mut err),
            }
            check_matchers(&from.matchers, "critical_from.match", &mut err);
        }
        check_windows(r, &mut err);
        if r.summary.as_deref().is_some_and(|s| s.trim().is_empty()) {
            err(
                "summary",
                "must not be empty (leave it out instead)".to_owned(),
            );
        }
        if let Some(s) = r.summary.as_deref()
            && s.len() > MAX_SUMMARY_BYTES
        {
            err(
                "summary",
                format!(
                    "is {} bytes; at most {MAX_SUMMARY_BYTES} (it is copied into every event, \
                     the outbox and the rule state)",
                    s.len()
                ),
            );
        }
    }
    errors
}

/// "unknown metric", with the new name when an earlier hostwarden used this one.
fn unknown_metric(name: &str) -> String {
    match renamed::metric_renamed_to(name) {
        Some(new) => {
            format!("unknown metric \"{name}\": renamed to \"{new}\" (see docs/metrics.md)")
        }
        None => format!("unknown metric \"{name}\" (see docs/metrics.md)"),
    }
}

/// A metric split by a state or mode needs the rule to pick one value, or it judges them all.
fn check_split(
    metric: MetricName,
    table: &BTreeMap<String, String>,
    field: &str,
    err: &mut impl FnMut(&str, String),
) {
    for (m, key, hint) in renamed::SPLIT_BY {
        let picked = table
            .get(key.as_str())
            .is_some_and(|v| !v.is_empty() && !v.starts_with('!'));
        if *m == metric && !picked {
            err(
                field,
                format!(
                    "\"{}\" has one series per \"{}\"; pick one ({hint})",
                    m.as_str(),
                    key.as_str()
                ),
            );
        }
    }
}

fn check_matchers(
    table: &BTreeMap<String, String>,
    field: &str,
    err: &mut impl FnMut(&str, String),
) {
    for (key, value) in table {
        if AttrKey::from_name(key).is_none() {
            match renamed::attr_renamed_to(key) {
                Some(new) => err(
                    field,
                    format!("unknown attribute \"{key}\": renamed to \"{new}\""),
                ),
                None => err(field, format!("unknown attribute \"{key}\"")),
            }
        }
        let set = value.strip_prefix('!').unwrap_or(value);
        if let Some(Err(e)) = super::matcher::IntSet::parse(set) {
            err(field, format!("\"{key}\": {e}"));
        }
    }
}

fn check_thresholds(r: &RuleConfig, err: &mut impl FnMut(&str, String)) {
    let op = r.op.as_str();
    if r.warning.is_none() && r.critical.is_none() && r.critical_from.is_none() {
        err(
            "warning",
            "at least one of warning, critical or critical_from is required".to_owned(),
        );
    }
    for (field, v) in [
        ("warning", r.warning),
        ("critical", r.critical),
        ("clear", r.clear),
    ] {
        if v.is_some_and(|v| !v.is_finite()) {
            err(field, "must be a finite number".to_owned());
        }
    }
    if let (Some(w), Some(c)) = (r.warning, r.critical)
        && r.op.beyond(w, c)
    {
        err(
            "critical",
            format!("critical {c} is less severe than warning {w} for op \"{op}\""),
        );
    }
    if let Some(clear) = r.clear
        && let Some(t) = r.warning.or(r.critical)
        && r.op.beyond(clear, t)
    {
        err(
            "clear",
            format!(
                "clear {clear} lies beyond the trigger {t}: with op \"{op}\" it must be on the healthy side"
            ),
        );
    }
    if r.baseline.is_some() {
        for (field, v) in [
            ("warning", r.warning),
            ("critical", r.critical),
            ("clear", r.clear),
        ] {
            if v.is_some_and(|v| v <= 0.0) {
                err(
                    field,
                    format!(
                        "with a baseline, thresholds are ratios to it and must be above 0 (2 = 200%), not {}",
                        v.unwrap_or_default()
                    ),
                );
            }
        }
        if r.critical_from.is_some() {
            err(
                "critical_from",
                "cannot be combined with baseline (baseline thresholds are ratios)".to_owned(),
            );
        }
    }
}

fn check_windows(r: &RuleConfig, err: &mut impl FnMut(&str, String)) {
    if let Some(b) = &r.baseline {
        if b.window.is_zero() {
            err("baseline.window", "must be longer than 0s".to_owned());
        }
        if b.warmup > b.window.saturating_mul(100) {
            err("baseline.warmup", "is longer than 100 windows".to_owned());
        }
    }
    if let Some(o) = &r.over
        && o.window.is_zero()
    {
        err("over.window", "must be longer than 0s".to_owned());
    }
}

#[cfg(test)]
mod tests;
