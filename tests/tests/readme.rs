//! The README stays true: its metrics reference lists every metric the agent can emit, with the
//! unit and instrument kind the model defines, and it opens with the run and test commands.

use hostwarden::model::{InstrumentKind, MetricName};
use hostwarden_tests::workspace_root;

fn readme() -> String {
    std::fs::read_to_string(workspace_root().join("README.md")).unwrap()
}

fn kind_word(k: InstrumentKind) -> &'static str {
    match k {
        InstrumentKind::Gauge => "gauge",
        InstrumentKind::UpDownCounter => "updowncounter",
        InstrumentKind::Counter => "counter",
    }
}

/// Table rows whose first cell names the metric (backticks and a "(custom)" note allowed).
fn rows_for(text: &str, name: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.split('|')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|cells| {
            cells
                .get(1)
                .is_some_and(|first| first.replace('`', "").split_whitespace().next() == Some(name))
        })
        .collect()
}

#[test]
fn every_metric_is_in_the_reference_with_its_unit_and_kind() {
    let text = readme();
    let mut missing = Vec::new();
    for m in MetricName::ALL {
        let rows = rows_for(&text, m.as_str());
        let ok = rows.iter().any(|cells| {
            let lower: Vec<String> = cells
                .iter()
                .map(|c| c.to_lowercase().replace('`', ""))
                .collect();
            lower.iter().any(|c| c == kind_word(m.kind()))
                && lower.iter().any(|c| c == &m.unit().to_lowercase())
        });
        if !ok {
            missing.push(format!(
                "| {} | {} | {} | ... |",
                m.as_str(),
                kind_word(m.kind()),
                m.unit()
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "README metrics reference lacks or mis-states:\n{}",
        missing.join("\n")
    );
}

#[test]
fn readme_opens_with_the_run_and_test_commands() {
    let text = readme();
    let first_block = text.split("```").nth(1).unwrap();
    assert!(
        first_block.contains("cargo run --release -- run"),
        "{first_block}"
    );
    assert!(
        first_block.contains("cargo test --workspace"),
        "{first_block}"
    );
    let ci = std::fs::read_to_string(workspace_root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test --workspace"),
        ".ci/run must run the README's test command"
    );
}
