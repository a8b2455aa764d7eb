use super::*;
use proptest::prelude::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn renders_one_quoted_line_per_key() {
    let text = render(&env(&[
        ("OLLAMA_NUM_PARALLEL", "2"),
        ("OLLAMA_KEEP_ALIVE", "10m"),
    ]))
    .unwrap();
    let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        body,
        [
            "[Service]",
            "Environment=\"OLLAMA_KEEP_ALIVE=10m\"",
            "Environment=\"OLLAMA_NUM_PARALLEL=2\"",
        ]
    );
}

#[test]
fn escapes_quotes_backslashes_and_specifiers() {
    let text = render(&env(&[("OLLAMA_KV_CACHE_TYPE", r#"a"b\c%n"#)])).unwrap();
    assert!(text.contains(r#"Environment="OLLAMA_KV_CACHE_TYPE=a\"b\\c%%n""#));
    assert_eq!(parse(&text).unwrap()["OLLAMA_KV_CACHE_TYPE"], r#"a"b\c%n"#);
}

#[test]
fn rejects_keys_off_the_allowlist() {
    assert_eq!(
        render(&env(&[("LD_PRELOAD", "/tmp/x.so")])),
        Err(DropinError::KeyNotAllowed("LD_PRELOAD".to_owned()))
    );
}

#[test]
fn rejects_control_characters() {
    for v in ["1\nOLLAMA_HOST=0.0.0.0", "1\0", "1\r", "\t", "é"] {
        assert!(
            matches!(
                render(&env(&[("OLLAMA_NUM_PARALLEL", v)])),
                Err(DropinError::BadValue { .. })
            ),
            "{v:?} accepted"
        );
    }
}

#[test]
fn parse_refuses_foreign_text() {
    assert!(parse("[Service]\nEnvironment=OLLAMA_NUM_PARALLEL=2\n").is_err());
    assert!(parse("[Service]\nExecStart=/bin/evil\n").is_err());
    assert!(parse("Environment=\"OLLAMA_NUM_PARALLEL=2\"\n").is_err());
}

#[test]
fn write_is_atomic_and_restore_puts_back_or_removes() {
    let dir = tempfile::tempdir().unwrap();
    let p = DropinPath::new(dir.path(), "ollama.service");
    assert_eq!(p.read().unwrap(), None);
    p.write("first\n").unwrap();
    p.write("second\n").unwrap();
    assert_eq!(p.read().unwrap().as_deref(), Some("second\n"));
    // No temp file is left beside the drop-in.
    let names: Vec<_> = fs::read_dir(&p.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [DROPIN_NAME]);
    p.restore(Some("first\n")).unwrap();
    assert_eq!(p.read().unwrap().as_deref(), Some("first\n"));
    p.restore(None).unwrap();
    assert_eq!(p.read().unwrap(), None);
    p.restore(None).unwrap();
}

fn any_key() -> impl Strategy<Value = String> {
    proptest::sample::select(ALLOWED_KEYS).prop_map(str::to_owned)
}

proptest! {
    /// Whatever the values, the drop-in has exactly one Environment line per key, and parsing
    /// it gives back exactly the map rendered: no value can smuggle a line or a key.
    #[test]
    fn no_value_smuggles_a_line_or_key(
        values in proptest::collection::btree_map(any_key(), any::<String>(), 0..7)
    ) {
        match render(&values) {
            Ok(text) => {
                let env_lines = text.lines().filter(|l| l.starts_with("Environment=")).count();
                prop_assert_eq!(env_lines, values.len());
                let other: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.starts_with("Environment=") && !l.starts_with('#'))
                    .collect();
                prop_assert_eq!(other, vec!["[Service]"]);
                prop_assert_eq!(parse(&text).unwrap(), values);
            }
            Err(DropinError::BadValue { key, .. }) => {
                let v = &values[&key];
                prop_assert!(v.len() > 256 || v.chars().any(|c| !(' '..='~').contains(&c)));
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    /// Printable values with systemd's special characters always round-trip.
    #[test]
    fn printable_values_round_trip(
        values in proptest::collection::btree_map(any_key(), "[ -~]{0,40}", 0..7)
    ) {
        let text = render(&values).unwrap();
        prop_assert_eq!(parse(&text).unwrap(), values);
    }
}
