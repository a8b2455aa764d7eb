//! The GPU collector end to end: the real `hostwarden` binary loads the stand-in
//! libnvidia-ml (tests/shims/nvml) through nvml-wrapper, and `once --format json` must show
//! exactly what the stand-in devices hold: 0, 1 and 8 GPUs, WSL2-like answers, values that
//! change per tick, and functions an older driver lacks.

#[path = "gpu_common/mod.rs"]
mod common;

use common::*;

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![
        h.test(
            "no_gpu_means_ok_and_no_gpu_points",
            SHIM,
            no_gpu_means_ok_and_no_gpu_points,
        ),
        h.test(
            "one_gpu_reports_every_metric_exactly_with_its_processes",
            SHIM,
            one_gpu_reports_every_metric_exactly_with_its_processes,
        ),
        h.test(
            "eight_gpus_each_report_their_own_values",
            SHIM,
            eight_gpus_each_report_their_own_values,
        ),
        h.test(
            "wsl2_like_not_supported_fields_are_absent_and_the_collector_stays_ok",
            SHIM,
            wsl2_like_not_supported_fields_are_absent_and_the_collector_stays_ok,
        ),
        h.test(
            "values_change_between_ticks",
            SHIM,
            values_change_between_ticks,
        ),
        h.test(
            "a_missing_symbol_disables_only_its_metrics",
            SHIM,
            a_missing_symbol_disables_only_its_metrics,
        ),
    ])
}

fn no_gpu_means_ok_and_no_gpu_points() {
    let setup = Setup::new(&nvml_shim::build(), &ShimState::with_gpus(vec![]));
    let snap = setup.once();
    assert_eq!(snap.health(), "ok", "{}", snap.stderr);
    assert_eq!(snap.reason(), None);
    assert_eq!(snap.gpu_status()["points"], 0);
    assert!(snap.points().is_empty(), "{:#?}", snap.points());
    assert!(snap.stderr.contains("NVML loaded."), "{}", snap.stderr);
}

fn one_gpu_reports_every_metric_exactly_with_its_processes() {
    let mut g = ShimGpu::full(0);
    // 4242 has a comm file in the test's proc root; 777 has none (it exited).
    g.procs = Some(vec![(4242, 4_294_967_296), (777, 1_073_741_824)]);
    g.throttle = vec![0x4 | 0x40];
    let setup = Setup::new(&nvml_shim::build(), &ShimState::with_gpus(vec![g.clone()]));
    let snap = setup.once();
    assert_eq!(snap.health(), "ok", "{:?}", snap.reason());
    assert_full_device(&snap, &g);
    let id = uuid(0);
    let named = snap.values(
        "process.gpu.memory.usage",
        &[
            ("hw.id", json!(id)),
            ("process.pid", json!(4242)),
            ("process.executable.name", json!("ollama_llama_se")),
        ],
    );
    assert_eq!(named, vec![&json!(4_294_967_296u64)]);
    let gone: Vec<_> = snap
        .points()
        .iter()
        .filter(|p| {
            p["name"] == "process.gpu.memory.usage" && p["attributes"]["process.pid"] == 777
        })
        .collect();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0]["value"], 1_073_741_824u64);
    assert_eq!(
        gone[0]["attributes"],
        json!({"hw.id": id, "process.pid": 777})
    );
    assert_eq!(snap.points().len(), 41 + 2);
    assert_eq!(snap.gpu_status()["points"], 43);
}

fn eight_gpus_each_report_their_own_values() {
    let gpus: Vec<ShimGpu> = (0..8)
        .map(|i| {
            let mut g = ShimGpu::full(i);
            let i = i as u64;
            g.temp = vec![50 + i];
            g.memory_used = vec![1_000_000_000 * (i + 1)];
            g.power_mw = vec![100_000 + i * 1111];
            g.util_gpu = vec![10 * i];
            g.throttle = vec![1 << i];
            g
        })
        .collect();
    let setup = Setup::new(&nvml_shim::build(), &ShimState::with_gpus(gpus.clone()));
    let snap = setup.once();
    assert_eq!(snap.health(), "ok", "{:?}", snap.reason());
    for g in &gpus {
        assert_full_device(&snap, g);
    }
    assert_eq!(snap.points().len(), 8 * 41);
}

fn wsl2_like_not_supported_fields_are_absent_and_the_collector_stays_ok() {
    // As NVML answers under WSL2: memory, temperature and power work; utilisation, processes,
    // clocks, ECC, fan, energy and throttle reasons are NotSupported.
    let g = ShimGpu {
        uuid: Some(uuid(0)),
        name: Some("NVIDIA GeForce RTX 4090".to_owned()),
        memory_total: Some(25_757_220_864),
        memory_reserved: Some(0),
        memory_free: vec![20_000_000_000],
        memory_used: vec![5_757_220_864],
        temp: vec![48],
        temp_slowdown: Some(87),
        temp_shutdown: Some(92),
        power_mw: vec![35_500],
        power_limit_mw: Some(450_000),
        ..ShimGpu::default()
    };
    let setup = Setup::new(&nvml_shim::build(), &ShimState::with_gpus(vec![g]));
    let snap = setup.once();
    assert_eq!(snap.health(), "ok", "{:?}", snap.reason());
    let names: Vec<&str> = snap
        .points()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "hw.status",
            "hw.status",
            "hw.status",
            "hw.gpu.memory.usage",
            "hw.gpu.memory.limit",
            "hw.gpu.memory.free",
            "hw.gpu.memory.reserved",
            "hw.gpu.memory.utilization",
            "hw.temperature",
            "hw.temperature.limit",
            "hw.temperature.limit",
            "hw.power",
            "hw.gpu.power.limit",
        ]
    );
    assert_eq!(
        snap.values("hw.gpu.memory.usage", &[]),
        vec![&json!(5_757_220_864u64)]
    );
    assert_eq!(snap.values("hw.power", &[]), vec![&json!(35.5)]);
    assert_eq!(
        snap.values("hw.status", &[("hw.state", json!("ok"))]),
        vec![&json!(1)]
    );
    // A GeForce board has no serial: the attribute is absent, never empty.
    assert!(
        snap.points()
            .iter()
            .all(|p| p["attributes"].get("hw.serial_number").is_none())
    );
    assert_eq!(
        snap.values(
            "hw.power",
            &[("hw.model", json!("NVIDIA GeForce RTX 4090"))]
        ),
        vec![&json!(35.5)]
    );
    assert!(!snap.stderr.contains("WARN"), "{}", snap.stderr);
}

fn values_change_between_ticks() {
    let mut g = ShimGpu::full(0);
    g.temp = vec![40, 45, 50, 55];
    g.memory_used = vec![1_073_741_824, 2_147_483_648, 3_221_225_472, 4_294_967_296];
    g.energy_mj = vec![1_000, 2_500, 4_000, 5_500];
    let setup = Setup::new(&nvml_shim::build(), &ShimState::with_gpus(vec![g]));
    // `once` reads twice and reports the second reading.
    let snap = setup.once();
    assert_eq!(snap.values("hw.temperature", &[]), vec![&json!(45)]);
    assert_eq!(
        snap.values("hw.gpu.memory.usage", &[]),
        vec![&json!(2_147_483_648u64)]
    );
    assert_eq!(snap.values("hw.energy", &[]), vec![&json!(2.5)]);
    // A running agent sees every tick's value.
    let out = setup.run(4);
    let stderr = text(&out.stderr);
    let gpu_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("gpu ")).collect();
    let temps: Vec<&str> = gpu_lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(temps, vec!["40°C", "45°C", "50°C", "55°C"], "{stderr}");
    assert!(
        gpu_lines[0].contains("vram 1.0 GiB/80.0 GiB"),
        "{}",
        gpu_lines[0]
    );
    assert!(
        gpu_lines[3].contains("vram 4.0 GiB/80.0 GiB"),
        "{}",
        gpu_lines[3]
    );
}

fn a_missing_symbol_disables_only_its_metrics() {
    let library = nvml_shim::build_without(&[
        "nvmlDeviceGetTotalEnergyConsumption",
        "nvmlDeviceGetComputeRunningProcesses_v3",
    ]);
    let mut g = ShimGpu::full(0);
    g.procs = Some(vec![(4242, 1024)]);
    let setup = Setup::new(&library, &ShimState::with_gpus(vec![g.clone()]));
    let snap = setup.once();
    assert_eq!(snap.health(), "ok", "{:?}", snap.reason());
    assert!(snap.values("hw.energy", &[]).is_empty());
    assert!(snap.values("process.gpu.memory.usage", &[]).is_empty());
    // Everything else is there, exactly.
    let expected: Vec<_> = expected_full(&g)
        .into_iter()
        .filter(|e| e.0 != "hw.energy")
        .collect();
    assert_eq!(snap.points().len(), expected.len());
    assert_eq!(snap.values("hw.power", &[]), vec![&json!(123.456)]);
    assert_eq!(snap.values("hw.temperature", &[]), vec![&json!(61)]);
    // Logged once per missing function, not once per tick.
    assert_eq!(
        snap.stderr.matches("lacks a function").count(),
        2,
        "{}",
        snap.stderr
    );
}
