//! The policy on the situations MEMORY.md works through, and properties that hold for any input.

use proptest::prelude::*;
use rstest::rstest;

use super::*;
use crate::sys::ollama::{Architecture, llama31};
use crate::tuner::policy::bounds::{KEYS, limits, parse_keep_alive, valid_value};
use crate::tuner::policy::inputs::{GpuMemory, ModelInput};
use crate::tuner::policy::memory::{COMPUTE_BYTES, KvType, MIB, Version};

fn gpu(total_gib: u64, used: u64) -> GpuMemory {
    GpuMemory {
        id: "GPU-0".into(),
        total: total_gib * GIB,
        used,
    }
}

/// llama3.1:8b loaded with `ctx` tokens, one f16 slot: 4403 MiB weights + KV + 512 MiB compute.
fn llama_loaded(ctx: u64, in_vram: bool) -> ModelInput {
    let size = 4403 * MIB + ctx * 131_072 + COMPUTE_BYTES;
    ModelInput {
        name: "llama3.1:8b".into(),
        family: "llama".into(),
        size,
        size_vram: if in_vram { size } else { size / 2 },
        context: Some(ctx),
        arch: Some(llama31()),
    }
}

fn inputs(gpus: Vec<GpuMemory>, models: Vec<ModelInput>, version: &str) -> PolicyInputs {
    PolicyInputs {
        gpus,
        models,
        version: Version::parse(version),
        ..PolicyInputs::default()
    }
}

fn value<'a>(d: &'a Decision, key: &str) -> &'a str {
    d.keys.get(key).map_or("<unset>", |k| k.value.as_str())
}

fn no_bounds() -> BTreeMap<String, KeyBound> {
    BTreeMap::new()
}

#[rstest]
// MEMORY.md: 24 GB card, ctx 32768 f16 -> 4 slots (v0.30+ physical fit).
#[case::gpu_24g_ctx32k(24, 32768, "0.30.11", "32768", "4", "f16")]
// 80 GB card: 18 slots in MEMORY.md at 79 GiB free; the operator's default max 8 is not applied here.
#[case::gpu_80g_ctx32k(80, 32768, "0.33.0", "32768", "18", "f16")]
// Legacy era: its graph term grows with ctx x slots (MEMORY.md legacy row: 2).
#[case::legacy_24g(24, 32768, "0.12.10", "32768", "3", "f16")]
// 16 GiB: context tier 8192 (1 GiB per slot).
#[case::gpu_16g(16, 8192, "0.30.11", "8192", "10", "f16")]
fn slots_follow_the_kv_arithmetic(
    #[case] gib: u64,
    #[case] ctx: u64,
    #[case] version: &str,
    #[case] want_ctx: &str,
    #[case] want_slots: &str,
    #[case] want_kv: &str,
) {
    let m = llama_loaded(ctx, true);
    let used = m.size;
    let d = decide(
        &inputs(vec![gpu(gib, used)], vec![m], version),
        &no_bounds(),
    );
    assert_eq!(value(&d, "OLLAMA_CONTEXT_LENGTH"), want_ctx, "{d:#?}");
    assert_eq!(value(&d, "OLLAMA_NUM_PARALLEL"), want_slots, "{d:#?}");
    assert_eq!(value(&d, "OLLAMA_KV_CACHE_TYPE"), want_kv);
    assert!(
        !d.keys.contains_key("OLLAMA_FLASH_ATTENTION"),
        "left to Ollama's auto"
    );
    let reasons = d.keys["OLLAMA_NUM_PARALLEL"].reasons.join(" | ");
    assert!(reasons.contains("131072 B/token"), "{reasons}");
}

#[test]
fn a_spilling_model_gets_q8_0_flash_attention_one_slot_and_short_keep_alive() {
    // The partial-offload shape: 8 GiB card, half of llama3.1:8b in RAM.
    let m = llama_loaded(32768, false);
    let mut i = inputs(vec![gpu(8, 7 * GIB)], vec![m], "0.30.11");
    i.current.insert("OLLAMA_NUM_PARALLEL".into(), "2".into());
    let d = decide(&i, &no_bounds());
    assert_eq!(value(&d, "OLLAMA_KV_CACHE_TYPE"), "q8_0");
    assert_eq!(value(&d, "OLLAMA_FLASH_ATTENTION"), "1");
    assert_eq!(value(&d, "OLLAMA_NUM_PARALLEL"), "1");
    assert_eq!(value(&d, "OLLAMA_MAX_LOADED_MODELS"), "1");
    assert_eq!(value(&d, "OLLAMA_KEEP_ALIVE"), "2m");
    let kv = d.keys["OLLAMA_KV_CACHE_TYPE"].reasons.join(" ");
    assert!(kv.contains("llama3.1:8b spills to CPU"), "{kv}");
    assert!(kv.contains("GiB in RAM"), "{kv}");
}

#[rstest]
#[case::four_gb(4, "1", "5m", "1")]
#[case::eight_gb(8, "2", "10m", "1")]
#[case::sixteen_gb(16, "4", "15m", "3")]
fn without_metadata_the_tiers_apply(
    #[case] gib: u64,
    #[case] parallel: &str,
    #[case] keep_alive: &str,
    #[case] models: &str,
) {
    let d = decide(&inputs(vec![gpu(gib, 0)], vec![], "0.30.11"), &no_bounds());
    assert_eq!(value(&d, "OLLAMA_NUM_PARALLEL"), parallel);
    assert_eq!(value(&d, "OLLAMA_KEEP_ALIVE"), keep_alive);
    assert_eq!(value(&d, "OLLAMA_MAX_LOADED_MODELS"), models);
    assert!(d.keys["OLLAMA_NUM_PARALLEL"].reasons[0].contains("no model metadata"));
}

#[test]
fn no_gpu_means_one_slot_and_short_context() {
    let mut m = llama_loaded(4096, true);
    m.size_vram = 0;
    let mut i = inputs(vec![], vec![m], "0.33.0");
    i.ram_total = Some(64 * GIB);
    i.ram_available = Some(40 * GIB);
    let d = decide(&i, &no_bounds());
    assert_eq!(value(&d, "OLLAMA_NUM_PARALLEL"), "1");
    assert_eq!(value(&d, "OLLAMA_CONTEXT_LENGTH"), "4096");
    assert_eq!(
        value(&d, "OLLAMA_KV_CACHE_TYPE"),
        "f16",
        "size_vram 0 is no spill on a CPU host"
    );
}

/// A ZFS host whose ARC has grown: MemAvailable alone is 6% of RAM, but 20 GiB of the ARC is
/// above c_min and the kernel takes it back on demand, so the host has headroom, and the
/// reason says how much of it is ARC.
#[test]
fn the_arc_it_can_shrink_counts_as_available() {
    let mut i = inputs(vec![gpu(24, 2 * GIB)], vec![], "0.30.11");
    i.ram_total = Some(64 * GIB);
    i.ram_available = Some(4 * GIB);
    let d = decide(&i, &no_bounds());
    assert_eq!(
        value(&d, "OLLAMA_KEEP_ALIVE"),
        "2m",
        "ARC-blind: memory low"
    );
    let why = d.keys["OLLAMA_KEEP_ALIVE"].reasons.join(" ");
    assert!(
        why.contains("host memory low: 4.0 GiB available of 64.0 GiB (under 10%)"),
        "{why}"
    );

    i.ram_arc_reclaimable = Some(30 * GIB);
    let d = decide(&i, &no_bounds());
    assert_eq!(value(&d, "OLLAMA_KEEP_ALIVE"), "30m");
    let why = d.keys["OLLAMA_KEEP_ALIVE"].reasons.join(" ");
    assert!(
        why.contains("34.0 GiB available of 64.0 GiB, of which 30.0 GiB ZFS ARC it can shrink"),
        "{why}"
    );

    i.ram_arc_reclaimable = Some(GIB);
    let why = decide(&i, &no_bounds()).keys["OLLAMA_KEEP_ALIVE"]
        .reasons
        .join(" ");
    assert!(
        why.contains("host memory low: 5.0 GiB available of 64.0 GiB, of which 1.0 GiB ZFS ARC it can shrink (under 10%)"),
        "{why}"
    );
}

#[test]
fn memory_pressure_shortens_and_headroom_lengthens_keep_alive() {
    let mut i = inputs(vec![gpu(24, 2 * GIB)], vec![], "0.30.11");
    i.ram_total = Some(64 * GIB);
    i.ram_available = Some(48 * GIB);
    assert_eq!(value(&decide(&i, &no_bounds()), "OLLAMA_KEEP_ALIVE"), "30m");
    i.memory_pressure = Some(0.25);
    let d = decide(&i, &no_bounds());
    assert_eq!(value(&d, "OLLAMA_KEEP_ALIVE"), "2m");
    assert!(
        d.keys["OLLAMA_KEEP_ALIVE"]
            .reasons
            .join(" ")
            .contains("25% of the last minute")
    );
}

#[test]
fn embedding_models_take_one_slot_and_are_named() {
    let embed = ModelInput {
        name: "nomic-embed-text:latest".into(),
        family: "nomic-bert".into(),
        size: 300 * MIB,
        size_vram: 300 * MIB,
        context: Some(2048),
        arch: Some(Architecture {
            arch: "nomic-bert".into(),
            block_count: 12,
            embedding_length: 768,
            head_count: 12,
            head_count_kv: 12,
            kv_heads_all_layers: 144,
            key_length: 64,
            value_length: 64,
            context_length: 2048,
            embedding_only: true,
        }),
    };
    let m = llama_loaded(32768, true);
    let used = m.size + embed.size;
    let d = decide(
        &inputs(vec![gpu(24, used)], vec![m, embed], "0.30.11"),
        &no_bounds(),
    );
    let r = d.keys["OLLAMA_NUM_PARALLEL"].reasons.join(" | ");
    assert!(
        r.contains("nomic-embed-text:latest run with one slot"),
        "{r}"
    );
    // Next to another model, v0.30+ admits only what passes the 80 % rule.
    assert!(r.contains("admits"), "{r}");
}

#[test]
fn operator_pins_and_bounds_win_and_say_so() {
    let mut b = BTreeMap::new();
    b.insert(
        "OLLAMA_NUM_PARALLEL".into(),
        KeyBound {
            min: Some(toml::Value::Integer(1)),
            max: Some(toml::Value::Integer(2)),
            pin: None,
        },
    );
    b.insert(
        "OLLAMA_KEEP_ALIVE".into(),
        KeyBound {
            min: None,
            max: None,
            pin: Some(toml::Value::String("-1".into())),
        },
    );
    b.insert(
        "OLLAMA_KV_CACHE_TYPE".into(),
        KeyBound {
            min: None,
            max: None,
            pin: Some(toml::Value::String("q4_0".into())),
        },
    );
    let m = llama_loaded(32768, true);
    let used = m.size;
    let d = decide(&inputs(vec![gpu(24, used)], vec![m], "0.30.11"), &b);
    let p = &d.keys["OLLAMA_NUM_PARALLEL"];
    assert_eq!(p.value, "2");
    assert!(p.constrained_by_operator);
    assert!(
        p.reasons
            .last()
            .unwrap()
            .contains("operator max 2 lowered 16 to 2")
    );
    assert_eq!(value(&d, "OLLAMA_KEEP_ALIVE"), "-1");
    assert_eq!(value(&d, "OLLAMA_KV_CACHE_TYPE"), "q4_0");
    assert_eq!(
        value(&d, "OLLAMA_FLASH_ATTENTION"),
        "1",
        "q4_0 needs flash attention"
    );
}

fn arb_arch() -> impl Strategy<Value = Option<Architecture>> {
    proptest::option::of(
        (
            1u64..100,
            1u64..64,
            1u64..64,
            16u64..256,
            0u64..300_000,
            any::<bool>(),
        )
            .prop_map(|(blocks, heads, kv, dim, ctx, embed)| Architecture {
                arch: "x".into(),
                block_count: blocks,
                embedding_length: heads * dim,
                head_count: heads,
                head_count_kv: kv.min(heads),
                kv_heads_all_layers: kv.min(heads) * blocks,
                key_length: dim,
                value_length: dim,
                context_length: ctx,
                embedding_only: embed,
            }),
    )
}

fn arb_inputs() -> impl Strategy<Value = PolicyInputs> {
    let model = (
        1u64..100 * GIB,
        0u64..=100,
        proptest::option::of(0u64..300_000),
        arb_arch(),
        "[a-z0-9]{1,8}",
    )
        .prop_map(|(size, pct, ctx, arch, family)| ModelInput {
            name: format!("{family}:x"),
            family,
            size,
            size_vram: size / 100 * pct,
            context: ctx,
            arch,
        });
    (
        proptest::collection::vec((1u64..200, 0u64..=100), 0..4),
        proptest::collection::vec(model, 0..4),
        proptest::option::of(0.0f64..1.0),
        proptest::option::of((1u64..512, 0u64..=100)),
        proptest::option::of("[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}"),
        proptest::option::of(0u64..40),
    )
        .prop_map(|(gpus, models, psi, ram, version, np)| PolicyInputs {
            gpus: gpus
                .into_iter()
                .enumerate()
                .map(|(i, (t, pct))| GpuMemory {
                    id: format!("GPU-{i}").into(),
                    total: t * GIB,
                    used: t * GIB / 100 * pct,
                })
                .collect(),
            models,
            ram_total: ram.map(|(t, _)| t * GIB),
            ram_available: ram.map(|(t, p)| t * GIB / 100 * p),
            ram_arc_reclaimable: None,
            memory_pressure: psi,
            cpu_count: Some(8),
            version: version.as_deref().and_then(Version::parse),
            current: np
                .map(|n| ("OLLAMA_NUM_PARALLEL".to_owned(), n.to_string()))
                .into_iter()
                .collect(),
        })
}

fn arb_bounds() -> impl Strategy<Value = BTreeMap<String, KeyBound>> {
    (
        1i64..16,
        0i64..16,
        proptest::option::of(1i64..32),
        0i64..7200,
        proptest::option::of(0i64..3),
    )
        .prop_map(|(lo, span, pin, ka_max, kv_pin)| {
            let mut b = BTreeMap::new();
            b.insert(
                "OLLAMA_NUM_PARALLEL".into(),
                KeyBound {
                    min: Some(toml::Value::Integer(lo)),
                    max: Some(toml::Value::Integer(lo + span)),
                    pin: None,
                },
            );
            b.insert(
                "OLLAMA_MAX_QUEUE".into(),
                KeyBound {
                    min: None,
                    max: None,
                    pin: pin.map(toml::Value::Integer),
                },
            );
            b.insert(
                "OLLAMA_KEEP_ALIVE".into(),
                KeyBound {
                    min: None,
                    max: Some(toml::Value::Integer(ka_max)),
                    pin: None,
                },
            );
            if let Some(k) = kv_pin {
                let name = KvType::ALL[usize::try_from(k).unwrap()].as_str();
                b.insert(
                    "OLLAMA_KV_CACHE_TYPE".into(),
                    KeyBound {
                        min: None,
                        max: None,
                        pin: Some(toml::Value::String(name.into())),
                    },
                );
            }
            b
        })
}

proptest! {
    #[test]
    fn every_value_is_valid_ollama_syntax_and_within_bounds(i in arb_inputs(), b in arb_bounds()) {
        let d = decide(&i, &b);
        for k in ["OLLAMA_NUM_PARALLEL", "OLLAMA_MAX_LOADED_MODELS", "OLLAMA_KEEP_ALIVE",
                  "OLLAMA_KV_CACHE_TYPE", "OLLAMA_CONTEXT_LENGTH", "OLLAMA_MAX_QUEUE"] {
            prop_assert!(d.keys.contains_key(k), "{} missing", k);
        }
        for (key, kd) in &d.keys {
            prop_assert!(KEYS.contains(&key.as_str()), "{} not allowlisted", key);
            prop_assert!(valid_value(key, &kd.value), "{}={:?} is not valid", key, kd.value);
            prop_assert!(!kd.reasons.is_empty(), "{} has no reasons", key);
            if let Some(bound) = b.get(key) {
                let l = limits(key, bound).unwrap();
                let v = match key.as_str() {
                    "OLLAMA_KEEP_ALIVE" => parse_keep_alive(&kd.value).unwrap(),
                    "OLLAMA_KV_CACHE_TYPE" => KvType::parse(&kd.value).unwrap() as i64,
                    _ => kd.value.parse().unwrap(),
                };
                if let Some(p) = l.pin { prop_assert_eq!(v, p); }
                if let Some(hi) = l.max { prop_assert!(v <= hi || (v < 0 && hi < 0), "{}={} above {}", key, v, hi); }
                if let Some(lo) = l.min { prop_assert!(v >= lo, "{}={} below {}", key, v, lo); }
            }
        }
        if value(&d, "OLLAMA_KV_CACHE_TYPE") != "f16" {
            prop_assert_eq!(value(&d, "OLLAMA_FLASH_ATTENTION"), "1");
        }
        // Pure: the same inputs give the same decision.
        prop_assert_eq!(decide(&i, &b), d);
    }
}

#[test]
fn spill_counts_even_when_no_gpu_metrics_arrive() {
    // NVML missing (or a non-NVIDIA GPU): Ollama still reports a model half in VRAM.
    let d = decide(
        &inputs(vec![], vec![llama_loaded(32768, false)], "0.30.11"),
        &no_bounds(),
    );
    assert_eq!(value(&d, "OLLAMA_KV_CACHE_TYPE"), "q8_0");
    assert_eq!(value(&d, "OLLAMA_FLASH_ATTENTION"), "1");
    assert_eq!(value(&d, "OLLAMA_MAX_LOADED_MODELS"), "1");
    assert_eq!(value(&d, "OLLAMA_KEEP_ALIVE"), "2m");
}
