//! The sentence an operator reads in every event: what, where, how much, against what, since
//! when, and the rule's own summary.

use std::time::Duration;

use super::config::RuleConfig;
use super::rule::{Series, SeriesKey};
use super::state::Transition;

/// A number as people read it: integers plain, others with up to 3 decimals.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `metric{k=v,...}`, or just `metric` for a series without attributes.
pub fn series_name(metric: &str, key: &SeriesKey) -> String {
    if key.is_empty() {
        return metric.to_owned();
    }
    let attrs: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{metric}{{{}}}", attrs.join(","))
}

fn took(from_ms: u64, to_ms: u64) -> String {
    let secs = to_ms.saturating_sub(from_ms) / 1000;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

pub fn sentence(cfg: &RuleConfig, key: &SeriesKey, s: &Series, tr: Transition, t: u64) -> String {
    let what = series_name(&cfg.metric, key);
    let op = cfg.op.as_str();
    let value = match &cfg.over {
        Some(o) => format!(
            "{} of the last {} is {}",
            format!("{:?}", o.func).to_lowercase(),
            humantime::format_duration(o.window),
            num(s.value)
        ),
        None => format!("is {}", num(s.value)),
    };
    let against = |threshold: Option<f64>| match (threshold, &cfg.baseline, s.baseline_value) {
        (Some(th), Some(_), Some(b)) => format!(
            "{}× its baseline {} (threshold {op} {}×)",
            num(s.value / b),
            num(b),
            num(th)
        ),
        (Some(th), _, _) => format!("{op} {}", num(th)),
        (None, _, _) => String::new(),
    };
    let head = match tr {
        Transition::Pending(sev) => format!(
            "{} pending ({}): {what} {value}, {}; fires if it holds for {}",
            cfg.name,
            sev.as_str(),
            against(s.threshold),
            humantime::format_duration(cfg.for_)
        ),
        Transition::Firing(sev) => format!(
            "{} firing ({}): {what} {value}, {}, since {} ago",
            cfg.name,
            sev.as_str(),
            against(s.threshold),
            took(s.state.since_ms, t)
        ),
        Transition::SeverityChanged { from, to } => format!(
            "{} {} from {} to {}: {what} {value}, {}",
            cfg.name,
            if to > from {
                "escalated"
            } else {
                "de-escalated"
            },
            from.as_str(),
            to.as_str(),
            against(s.threshold)
        ),
        Transition::Resolved { absent: true } => format!(
            "{} resolved: {what} is no longer reported (last value {}), after firing for {}",
            cfg.name,
            num(s.value),
            took(s.state.fired_ms, t)
        ),
        Transition::Resolved { absent: false } => format!(
            "{} resolved: {what} {value}, back past clear {}, after firing for {}",
            cfg.name,
            s.clear.map_or_else(|| "-".to_owned(), num),
            took(s.state.fired_ms, t)
        ),
    };
    match &cfg.summary {
        Some(text) => format!("{head}. {text}"),
        None => head,
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(3.0, "3")]
    #[case(0.95, "0.95")]
    #[case(0.123456, "0.123")]
    #[case(-2.5, "-2.5")]
    fn numbers(#[case] v: f64, #[case] want: &str) {
        assert_eq!(num(v), want);
    }

    #[test]
    fn series_names() {
        let key = SeriesKey::from([("hw.id".to_owned(), "GPU-1".to_owned())]);
        assert_eq!(
            series_name("hw.temperature", &key),
            "hw.temperature{hw.id=GPU-1}"
        );
        assert_eq!(series_name("ollama.up", &SeriesKey::new()), "ollama.up");
    }
}
