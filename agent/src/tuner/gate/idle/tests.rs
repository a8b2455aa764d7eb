use super::*;

/// Genuine captures in tests/fixtures/ollama (provenance in its README and PROVENANCE.md).
fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ollama")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn obs(at_ms: u64, models: &[(&str, i64)]) -> PsObservation {
    PsObservation {
        at_ms,
        models: Some(
            models
                .iter()
                .map(|(n, e)| LoadedModel {
                    name: (*n).to_owned(),
                    expires_at_ms: *e,
                })
                .collect(),
        ),
    }
}

#[test]
fn reads_go_timestamps_with_zones() {
    assert_eq!(rfc3339_ms("1970-01-01T00:00:01Z"), Some(1000));
    assert_eq!(rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
    assert_eq!(rfc3339_ms("1970-01-01T01:00:00.000000001+01:00"), Some(0));
    assert_eq!(
        rfc3339_ms("2026-06-28T07:22:51.358551-04:00"),
        Some(1_782_645_771_358)
    );
    assert_eq!(rfc3339_ms("yesterday"), None);
}

#[test]
fn reads_real_ps_bodies() {
    let models = parse_ps(&fixture("ps-one-model-gpu.json")).unwrap();
    assert_eq!(models[0].name, "qwen2.5:0.5b");
    assert_eq!(models[0].expires_at_ms, 1_782_645_771_358);
    // Infinite keep-alive: 292 years ahead.
    let forever = parse_ps(&fixture("ps-keepalive-forever-a.json")).unwrap();
    assert!(forever[0].expires_at_ms > 10_000_000_000_000);
    assert_eq!(parse_ps(br#"{"models":[]}"#), Some(vec![]));
    assert_eq!(parse_ps(b"<html>"), None);
}

#[test]
fn busy_gpu_or_cpu_wins_over_the_api() {
    let idle_api = obs(1000, &[]);
    let (idle, why) = judge_idle(None, Some(&idle_api), Some(0.8), None);
    assert!(!idle && why.contains("GPU 80%"), "{why}");
    let (idle, why) = judge_idle(None, Some(&idle_api), Some(0.0), Some(0.9));
    assert!(!idle && why.contains("0.90 CPU"), "{why}");
    let (idle, why) = judge_idle(None, Some(&idle_api), Some(0.0), Some(0.01));
    assert!(idle && why.contains("no model loaded"), "{why}");
}

#[test]
fn expires_at_rules_from_idle_md() {
    let m = "llama3.1:8b";
    // In the past: a request outlives the keep-alive, or unloading.
    let (idle, _) = judge_idle(None, Some(&obs(10_000, &[(m, 5_000)])), None, None);
    assert!(!idle);
    // One poll only: can't tell.
    let (idle, _) = judge_idle(None, Some(&obs(10_000, &[(m, 300_000)])), None, None);
    assert!(!idle);
    // Advanced between polls: a request finished in between.
    let (idle, why) = judge_idle(
        Some(&obs(5_000, &[(m, 290_000)])),
        Some(&obs(10_000, &[(m, 300_000)])),
        None,
        None,
    );
    assert!(!idle && why.contains("moved"), "{why}");
    // Stable and in the future: idle (with the reason saying so).
    let (idle, why) = judge_idle(
        Some(&obs(5_000, &[(m, 300_000)])),
        Some(&obs(10_000, &[(m, 300_000)])),
        Some(0.0),
        None,
    );
    assert!(idle && why.contains("unchanged"), "{why}");
    // /api/ps did not answer: a load is running.
    let loading = PsObservation {
        at_ms: 10_000,
        models: None,
    };
    assert!(!judge_idle(None, Some(&loading), None, None).0);
}
