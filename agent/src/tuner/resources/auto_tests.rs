use super::*;
use crate::tuner::resources::config::Setting;

const GIB: u64 = 1 << 30;

fn auto() -> Option<Setting> {
    Some(Setting::Text("auto".to_owned()))
}

/// This project's CI machine: 24 GiB, 2 CPUs, no ZFS.
fn ci_host() -> HostFacts {
    HostFacts {
        mem_total: Some(25_190_838_272),
        arc_size: 0,
        arc_min: 0,
        cpus: Some(2),
    }
}

/// llama3.1:8b Q4_K_M on a CPU-only host: /api/ps size 6,544,691,200 (no VRAM), the plan's
/// KV for 4096 tokens × 1 slot at f16 (128 KiB a token: 32 layers × 8 KV heads × 256 × 2 B).
fn llama_on_cpu() -> OllamaNeed {
    OllamaNeed {
        models_ram: 6_544_691_200,
        planned_kv_ram: 4096 * 131_072,
        why: "llama3.1:8b".to_owned(),
    }
}

#[test]
fn memory_auto_leaves_the_reserve_and_high_is_a_fraction_of_max() {
    let cfg = ResourcesConfig {
        memory_max: auto(),
        memory_high: auto(),
        ..ResourcesConfig::default()
    };
    let w = resolve(&cfg, &ci_host(), Some(&llama_on_cpu()));
    let max = 25_190_838_272 - 2 * GIB;
    assert_eq!(w.limits["memory_max"], Value::Bytes(max));
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let high = (max as f64 * HIGH_FRACTION) as u64 / 4096 * 4096;
    assert_eq!(w.limits["memory_high"], Value::Bytes(high));
    assert!(
        w.reasons["memory_max"][0].contains("reserve 2.0 GiB"),
        "{w:?}"
    );
}

#[test]
fn the_arc_above_c_min_counts_as_free() {
    // A 64 GiB ZFS host whose ARC grew to half the RAM; c_min is 1/32 of RAM (2 GiB).
    let host = HostFacts {
        mem_total: Some(64 * GIB),
        arc_size: 32 * GIB,
        arc_min: 2 * GIB,
        cpus: Some(16),
    };
    let cfg = ResourcesConfig {
        memory_max: auto(),
        reserve: "4G".to_owned(),
        ..ResourcesConfig::default()
    };
    let w = resolve(&cfg, &host, Some(&llama_on_cpu()));
    // 64 - 4 reserve - 2 the ARC keeps: the 30 GiB above c_min are Ollama's to take.
    assert_eq!(w.limits["memory_max"], Value::Bytes(58 * GIB));
    assert!(w.reasons["memory_max"][0].contains("above c_min"), "{w:?}");
}

#[test]
fn a_limit_that_would_starve_the_models_is_not_set() {
    // An 8 GiB host with the 6.1 GiB model and its planned KV: 8 - 2 reserve is too little.
    let host = HostFacts {
        mem_total: Some(8 * GIB),
        cpus: Some(4),
        ..HostFacts::default()
    };
    let cfg = ResourcesConfig {
        memory_max: auto(),
        memory_high: auto(),
        ..ResourcesConfig::default()
    };
    let w = resolve(&cfg, &host, Some(&llama_on_cpu()));
    assert!(w.limits.is_empty(), "{w:?}");
    let why = &w.reasons["memory_max"][0];
    assert!(
        why.starts_with("left alone:") && why.contains("would starve Ollama"),
        "{why}"
    );
    // Unknown models: memory auto holds off too.
    let w = resolve(&cfg, &host, None);
    assert!(w.limits.is_empty() && w.reasons["memory_high"][0].contains("/api/ps"));
}

#[test]
fn high_never_goes_below_the_need() {
    let cfg = ResourcesConfig {
        memory_max: Some(Setting::Text("7G".to_owned())),
        memory_high: auto(),
        ..ResourcesConfig::default()
    };
    let w = resolve(&cfg, &ci_host(), Some(&llama_on_cpu()));
    // 90% of 7 GiB is 6.3 GiB, under the 6.6 GiB need.
    assert_eq!(
        w.limits["memory_high"],
        Value::Bytes(llama_on_cpu().total())
    );
    assert_eq!(w.limits["memory_max"], Value::Bytes(7 * GIB));
}

#[test]
fn cpu_auto_keeps_a_core_and_leaves_a_one_cpu_host_alone() {
    let cfg = ResourcesConfig {
        cpu_quota: auto(),
        ..ResourcesConfig::default()
    };
    // The high-concurrency write-up's 12-core host: 11 cores to Ollama.
    let twelve = HostFacts {
        cpus: Some(12),
        ..ci_host()
    };
    let w = resolve(&cfg, &twelve, None);
    assert_eq!(w.limits["cpu_quota"], Value::UsecPerSec(11_000_000));
    let one = HostFacts {
        cpus: Some(1),
        ..ci_host()
    };
    let w = resolve(&cfg, &one, None);
    assert!(w.limits.is_empty());
    assert!(
        w.reasons["cpu_quota"][0].contains("no core to keep"),
        "{w:?}"
    );
    let cfg = ResourcesConfig {
        allowed_cpus: auto(),
        ..ResourcesConfig::default()
    };
    let w = resolve(&cfg, &ci_host(), None);
    assert_eq!(w.limits["allowed_cpus"], Value::Cpus(vec![1]));
}

#[test]
fn fixed_and_percent_values_pass_through() {
    let cfg = ResourcesConfig {
        memory_high: Some(Setting::Text("50%".to_owned())),
        tasks_max: Some(Setting::Number(512)),
        ..ResourcesConfig::default()
    };
    let w = resolve(&cfg, &ci_host(), None);
    assert_eq!(
        w.limits["memory_high"],
        Value::Bytes(25_190_838_272 / 100 * 50)
    );
    assert_eq!(w.limits["tasks_max"], Value::Count(512));
}
