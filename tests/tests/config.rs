//! `check-config` and `print-default-config` through the real binary, over a corpus of invalid
//! configs each paired with the exact location and message an operator must see.

use std::process::Command;

use hostwarden_tests::{bin, workspace_root};

#[test]
fn every_invalid_config_is_rejected_with_file_line_column_field_and_message() {
    let dir = workspace_root().join("tests/configs/invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let expect = std::fs::read_to_string(case.with_extension("expect")).unwrap();
        let expect = format!("{}{}", case.display(), expect.trim_end());
        let out = Command::new(bin())
            .args(["check-config", "--config"])
            .arg(case)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.lines().any(|l| l.starts_with(&expect)) {
            failures.push(format!(
                "{}:\n  expected a line starting with: {expect}\n  got (exit {:?}): {stderr}",
                case.display(),
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_configs_pass() {
    let dir = workspace_root().join("tests/configs/valid");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new(bin())
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn print_default_config_is_the_shipped_file() {
    let out = Command::new(bin())
        .arg("print-default-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let shipped = std::fs::read(workspace_root().join("config/hostwarden.toml")).unwrap();
    assert_eq!(out.stdout, shipped);
}

#[test]
fn a_missing_explicit_config_is_an_error() {
    let out = Command::new(bin())
        .args(["once", "--config", "/nonexistent/hostwarden.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/hostwarden.toml: cannot read: No such file"),
        "{stderr}"
    );
}
