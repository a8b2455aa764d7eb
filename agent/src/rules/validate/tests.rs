//! Each invalid rule is reported with its name and the exact field, through the real loader.

use std::path::Path;

use rstest::rstest;

use crate::config::parse_str;

const BASE: &str = "name = \"r\"\nmetric = \"system.memory.linux.available_ratio\"\nop = \">\"\n";

fn error_of(rule_body: &str) -> String {
    let text = format!(
        "[[rules]]\nname = \"ok\"\nmetric = \"ollama.up\"\nop = \"<\"\ncritical = 1\n\n[[rules]]\n{rule_body}"
    );
    match parse_str(&text, Path::new("h.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[rstest]
#[case::no_threshold("", "rules[1].warning: rule \"r\": at least one of warning")]
#[case::unknown_metric_is_named("warning = 1\nmetric2 = 1", "unknown field `metric2`")]
#[case::critical_milder(
    "warning = 0.9\ncritical = 0.8",
    "rules[1].critical: rule \"r\": critical 0.8 is less severe"
)]
#[case::clear_beyond(
    "warning = 0.9\nclear = 0.95",
    "rules[1].clear: rule \"r\": clear 0.95 lies beyond"
)]
#[case::unknown_attr(
    "warning = 1\nmatch = { \"gpu\" = \"x\" }",
    "rules[1].match: rule \"r\": unknown attribute \"gpu\""
)]
#[case::unknown_from_metric(
    "critical_from = { metric = \"hw.nope\" }",
    "rules[1].critical_from.metric: rule \"r\": unknown metric \"hw.nope\""
)]
#[case::unknown_from_attr(
    "critical_from = { metric = \"hw.temperature.limit\", match = { \"limit\" = \"x\" } }",
    "rules[1].critical_from.match: rule \"r\": unknown attribute \"limit\""
)]
#[case::baseline_ratio_zero(
    "warning = 0\nbaseline = { window = \"1h\", warmup = \"30m\" }",
    "rules[1].warning: rule \"r\": with a baseline, thresholds are ratios"
)]
#[case::baseline_with_critical_from(
    "warning = 2\nbaseline = { window = \"1h\", warmup = \"30m\" }\ncritical_from = { metric = \"hw.temperature.limit\" }",
    "rules[1].critical_from: rule \"r\": cannot be combined with baseline"
)]
#[case::baseline_zero_window(
    "warning = 2\nbaseline = { window = \"0s\", warmup = \"0s\" }",
    "rules[1].baseline.window: rule \"r\": must be longer than 0s"
)]
#[case::baseline_long_warmup(
    "warning = 2\nbaseline = { window = \"1m\", warmup = \"2h\" }",
    "rules[1].baseline.warmup: rule \"r\": is longer than 100 windows"
)]
#[case::over_zero_window(
    "warning = 2\nover = { window = \"0s\", fn = \"max\" }",
    "rules[1].over.window: rule \"r\": must be longer than 0s"
)]
#[case::over_bad_fn(
    "warning = 2\nover = { window = \"1m\", fn = \"median\" }",
    "rules[1].over.fn"
)]
#[case::bad_op_value("warning = 2\nop = \"=\"", "op")]
#[case::empty_summary(
    "warning = 2\nsummary = \" \"",
    "rules[1].summary: rule \"r\": must not be empty"
)]
fn rule_errors_name_the_rule_and_field(#[case] extra: &str, #[case] want: &str) {
    let body = if extra.contains("op = \"=\"") {
        format!("name = \"r\"\nmetric = \"system.memory.linux.available_ratio\"\n{extra}")
    } else {
        format!("{BASE}{extra}")
    };
    let msg = error_of(&body);
    assert!(msg.contains(want), "want {want:?} in:\n{msg}");
    assert!(msg.starts_with("h.toml:"), "located: {msg}");
}

#[test]
fn duplicate_names_are_reported_on_the_second() {
    let msg = error_of("name = \"ok\"\nmetric = \"ollama.up\"\nop = \"<\"\ncritical = 1");
    assert!(
        msg.contains("rules[1].name: rule \"ok\": duplicate rule name \"ok\""),
        "{msg}"
    );
}

#[test]
fn shipped_rules_validate() {
    let c = crate::config::Config::default();
    assert!(c.rules.len() >= 11, "{} rules", c.rules.len());
    assert_eq!(super::validate_rules(&c.rules), vec![]);
}

/// An operator's rule from before the renames (issue 17) is told the new name, and a rule on a
/// metric now split by mode or state is told to pick one (it would judge them all).
#[rstest]
#[case::renamed_metric(
    "metric = \"system.memory.linux.pressure.avg60\"\nop = \">\"\nwarning = 0.1",
    "rules[1].metric: rule \"r\": unknown metric \"system.memory.linux.pressure.avg60\": renamed to \"system.memory.linux.pressure.1m\""
)]
#[case::renamed_from_metric(
    "metric = \"ollama.up\"\nop = \"<\"\nwarning = 1\ncritical_from = { metric = \"ollama.models.loaded\" }",
    "rules[1].critical_from.metric: rule \"r\": unknown metric \"ollama.models.loaded\": renamed to \"ollama.model.count\""
)]
#[case::renamed_attr(
    "metric = \"hostwarden.tuner.actions\"\nop = \">\"\nwarning = 1\nmatch = { \"result\" = \"rolled_back\" }",
    "rules[1].match: rule \"r\": unknown attribute \"result\": renamed to \"hostwarden.tuner.result\""
)]
#[case::cpu_without_mode(
    "metric = \"system.cpu.utilization\"\nop = \">\"\nwarning = 0.9\nmatch = { \"cpu.logical_number\" = \"\" }",
    "rules[1].match: rule \"r\": \"system.cpu.utilization\" has one series per \"cpu.mode\"; pick one"
)]
#[case::memory_without_state(
    "metric = \"system.memory.utilization\"\nop = \">\"\nwarning = 0.9",
    "rules[1].match: rule \"r\": \"system.memory.utilization\" has one series per \"system.memory.state\""
)]
fn old_rules_are_told_the_new_names(#[case] body: &str, #[case] want: &str) {
    let msg = error_of(&format!("name = \"r\"\n{body}"));
    assert!(msg.contains(want), "want {want:?} in:\n{msg}");
}
