//! The filters' syntax is regex-lite's whatever features the build turns on, so what these
//! tests see accepted and refused is what the shipped binary accepts and refuses.

use super::{HostConfig, compile};

/// `[host.network] device_exclude = pattern`: the errors `validate` reports, as `path: message`.
fn errors_for(pattern: &str) -> Vec<String> {
    let mut config = HostConfig::default();
    config.network.device_exclude = pattern.to_owned();
    config
        .validate()
        .into_iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

/// Whether the validated `pattern` excludes `name`.
fn excludes(pattern: &str, name: &str) -> bool {
    assert!(errors_for(pattern).is_empty(), "{pattern} is refused");
    compile(pattern).is_some_and(|r| r.is_match(name))
}

#[test]
fn the_default_filters_are_valid() {
    assert!(HostConfig::default().validate().is_empty());
}

#[test]
fn unicode_classes_are_refused_naming_the_field() {
    for pattern in [r"^\p{L}+$", r"^\PN", r"^\pL"] {
        assert_eq!(
            errors_for(pattern),
            ["network.device_exclude: not a regular expression: \
              Unicode character classes are not supported"],
            "{pattern}"
        );
    }
}

#[test]
fn case_insensitivity_and_perl_classes_are_ascii() {
    assert!(excludes("(?i)^LO$", "lo"));
    assert!(excludes("(?i)^eth", "ETH0"));
    // Unicode case folding would match the Kelvin sign (U+212A) to k; ASCII folding does not.
    assert!(!excludes("(?i)^k$", "\u{212A}"));
    assert!(excludes(r"^enp\d+s\d+$", "enp3s0"));
    assert!(
        !excludes(r"^\d$", "\u{0663}"),
        "Arabic-Indic three is not \\d"
    );
    assert!(!excludes(r"^\w$", "é"), "é is not \\w");
    assert!(excludes("^[[:alpha:]]+0$", "eth0"));
}

#[test]
fn other_text_matches_as_written() {
    assert!(excludes("^wlan-café$", "wlan-café"));
    assert!(excludes("^wlan-.+$", "wlan-café"));
    assert!(excludes(r"^/mnt/\x{e9}t\x{e9}$", "/mnt/été"));
}

#[test]
fn syntax_errors_say_what_is_wrong() {
    assert_eq!(
        errors_for("^(lo"),
        ["network.device_exclude: not a regular expression: \
          found open group without closing ')'"]
    );
    assert_eq!(
        errors_for("(?=lo)"),
        ["network.device_exclude: not a regular expression: look-around is not supported"]
    );
}

#[test]
fn an_empty_filter_excludes_nothing() {
    assert!(errors_for("").is_empty());
    assert!(compile("").is_none());
}
