use std::path::Path;

use super::*;

#[test]
fn default_text_is_exactly_the_built_in_defaults() {
    let parsed = parse_str(DEFAULT_TEXT, Path::new("config/hostwarden.toml")).unwrap();
    assert_eq!(parsed, Config::default());
    assert!(!parsed.rules.is_empty(), "the shipped rules must parse");
}

#[test]
fn every_key_of_the_default_text_has_a_comment() {
    // A key line must be preceded by a comment line (or a header line that itself follows one),
    // so print-default-config documents every knob.
    let lines: Vec<&str> = DEFAULT_TEXT.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
            continue;
        }
        // Inside a [[rules]] table the keys are the rule syntax, documented above the first rule.
        let in_rule = lines[..i]
            .iter()
            .rev()
            .find(|l| l.trim().starts_with('['))
            .is_some_and(|h| h.trim() == "[[rules]]");
        if in_rule {
            continue;
        }
        let prev = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap();
        let prev = prev.trim();
        let documented = prev.starts_with('#') || (!prev.starts_with('[') && !prev.is_empty());
        assert!(documented, "line {}: `{t}` has no comment above it", i + 1);
    }
}

#[test]
fn errors_name_file_line_column_and_field() {
    let text = "[agent]\ninterval = \"5s\"\n\n[gpu]\nenabeld = true\n";
    let err = parse_str(text, Path::new("/etc/x.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/etc/x.toml:5:1: gpu.enabeld: unknown field `enabeld`"),
        "{err}"
    );
}

#[test]
fn validation_errors_are_all_reported_with_rule_names() {
    let text = r#"
[agent]
interval = "10ms"

[[rules]]
name = "a"
metric = "no.such.metric"
op = ">"
warning = 1

[[rules]]
name = "b"
metric = "hw.temperature"
op = ">"
warning = 90
critical = 80
"#;
    let err = parse_str(text, Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("c.toml:3:12: agent.interval: must be at least 100ms"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("c.toml:7:10: rules[0].metric: rule \"a\": unknown metric"),
        "{err}"
    );
    assert!(
        lines[2].starts_with("c.toml:16:12: rules[1].critical: rule \"b\": critical 80"),
        "{err}"
    );
}

#[test]
fn a_rule_list_in_the_file_replaces_the_defaults_and_none_keeps_them() {
    let only_agent = parse_str("[agent]\ninterval = \"1s\"\n", Path::new("x")).unwrap();
    assert_eq!(only_agent.rules, Config::default().rules);
    let one = parse_str(
        "[[rules]]\nname = \"x\"\nmetric = \"ollama.up\"\nop = \"<\"\ncritical = 1\n",
        Path::new("x"),
    )
    .unwrap();
    assert_eq!(one.rules.len(), 1);
}
