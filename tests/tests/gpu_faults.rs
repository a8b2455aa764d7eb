//! The GPU collector when things go wrong, through the real binary and the stand-in
//! libnvidia-ml: a GPU lost mid-run, a hung NVML call, an absent library, an unloaded driver,
//! and the collector turned off.

#[path = "gpu_common/mod.rs"]
mod common;

use common::*;

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![
        h.test(
            "a_lost_gpu_is_failed_and_the_others_keep_reporting",
            SHIM,
            a_lost_gpu_is_failed_and_the_others_keep_reporting,
        ),
        h.test(
            "a_gpu_lost_while_running_stays_lost_and_is_logged_once",
            SHIM,
            a_gpu_lost_while_running_stays_lost_and_is_logged_once,
        ),
        h.test(
            "a_hung_nvml_call_is_not_piled_up_on",
            SHIM,
            a_hung_nvml_call_is_not_piled_up_on,
        ),
        h.test(
            "an_absent_library_makes_the_collector_unavailable_and_warns_once",
            &[],
            an_absent_library_makes_the_collector_unavailable_and_warns_once,
        ),
        h.test(
            "without_a_configured_library_the_soname_and_the_wsl2_path_are_tried",
            &[Need::NoSystemNvml],
            without_a_configured_library_the_soname_and_the_wsl2_path_are_tried,
        ),
        h.test(
            "a_driver_that_is_not_loaded_is_named_in_the_reason",
            SHIM,
            a_driver_that_is_not_loaded_is_named_in_the_reason,
        ),
        h.test(
            "disabled_in_config_reports_the_reason",
            &[],
            disabled_in_config_reports_the_reason,
        ),
    ])
}

fn a_lost_gpu_is_failed_and_the_others_keep_reporting() {
    let mut gpus: Vec<ShimGpu> = (0..3).map(ShimGpu::full).collect();
    // `once` reads twice: GPU 1 answers the first pass and falls off the bus before the second.
    gpus[1].lost_after = Some(1);
    let setup = Setup::new(&nvml_shim::build(), &ShimState::with_gpus(gpus.clone()));
    let snap = setup.once();
    assert_eq!(snap.health(), "degraded");
    assert_eq!(
        snap.reason(),
        Some(
            format!(
                "GPU 1 ({}) lost: fell off the bus (NVML GpuLost); other GPUs keep reporting",
                uuid(1)
            )
            .as_str()
        )
    );
    assert_full_device(&snap, &gpus[0]);
    assert_full_device(&snap, &gpus[2]);
    let lost = snap.of(&uuid(1));
    let states: Vec<_> = lost
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["attributes"]["hw.state"].as_str().unwrap(),
                p["value"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("hw.status", "ok", 0),
            ("hw.status", "degraded", 0),
            ("hw.status", "failed", 1)
        ]
    );
    assert_eq!(lost[2]["attributes"]["hw.name"], "NVIDIA A100-SXM4-80GB");
    assert_eq!(
        snap.stderr.matches("GPU fell off the bus").count(),
        1,
        "{}",
        snap.stderr
    );
}

fn a_gpu_lost_while_running_stays_lost_and_is_logged_once() {
    let mut gpus: Vec<ShimGpu> = (0..2).map(ShimGpu::full).collect();
    gpus[0].lost_after = Some(2);
    let setup = Setup::new(&nvml_shim::build(), &ShimState::with_gpus(gpus));
    let out = setup.run(5);
    let stderr = text(&out.stderr);
    let gpu_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("gpu ")).collect();
    assert_eq!(gpu_lines.len(), 5, "{stderr}");
    assert!(
        gpu_lines[..2].iter().all(|l| l.contains(" ok ")),
        "{gpu_lines:#?}"
    );
    for l in &gpu_lines[2..] {
        assert!(l.contains("DEGRADED"), "{l}");
        assert!(l.contains(&format!("GPU 0 ({}) lost", uuid(0))), "{l}");
        // GPU 1 still shows its memory and temperature.
        assert!(l.contains("vram 19.5 GiB/80.0 GiB 61°C"), "{l}");
    }
    assert_eq!(
        stderr.matches("GPU fell off the bus").count(),
        1,
        "{stderr}"
    );
}

fn a_hung_nvml_call_is_not_piled_up_on() {
    // The first tick's memory query blocks for 3 s; the deadline is 500 ms.
    let mut g = ShimGpu::full(0);
    g.delay_ms = vec![3000, 0];
    let setup = Setup::new(&nvml_shim::build(), &ShimState::with_gpus(vec![g]));
    let out = setup.run(3);
    let stderr = text(&out.stderr);
    let gpu_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("gpu ")).collect();
    assert_eq!(gpu_lines.len(), 3, "{stderr}");
    assert!(
        gpu_lines[0].contains("deadline of 500ms passed"),
        "{}",
        gpu_lines[0]
    );
    for l in &gpu_lines[1..] {
        assert!(l.contains("unavailable"), "{l}");
        assert!(l.contains("previous NVML call still running after"), "{l}");
        assert!(l.contains("not starting another"), "{l}");
    }
}

fn an_absent_library_makes_the_collector_unavailable_and_warns_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libnvidia-ml.so.1");
    let setup = Setup::with_gpu_section(
        &format!("nvml_library = {missing:?}\nretry_min = \"100ms\"\nretry_max = \"200ms\""),
        &ShimState::default(),
    );
    let snap = setup.once();
    assert_eq!(snap.health(), "unavailable");
    assert_eq!(
        snap.reason(),
        Some(format!("{} not found", missing.display()).as_str())
    );
    assert!(snap.points().is_empty());
    // Several ticks and retries, one warning.
    let out = setup.run(6);
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("NVML unavailable").count(), 1, "{stderr}");
    let gpu_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("gpu ")).collect();
    assert_eq!(gpu_lines.len(), 6);
    assert!(
        gpu_lines.iter().all(|l| l.contains("not found")),
        "{gpu_lines:#?}"
    );
}

fn without_a_configured_library_the_soname_and_the_wsl2_path_are_tried() {
    let setup = Setup::with_gpu_section("enabled = true", &ShimState::default());
    let snap = setup.once();
    assert_eq!(snap.health(), "unavailable");
    assert_eq!(
        snap.reason(),
        Some("libnvidia-ml.so.1 not found (also tried /usr/lib/wsl/lib/libnvidia-ml.so.1)")
    );
}

fn a_driver_that_is_not_loaded_is_named_in_the_reason() {
    let library = nvml_shim::build();
    let state = ShimState {
        init: Some("driver_not_loaded"),
        ..ShimState::default()
    };
    let snap = Setup::new(&library, &state).once();
    assert_eq!(snap.health(), "unavailable");
    assert_eq!(
        snap.reason(),
        Some(
            format!(
                "NVIDIA driver not loaded ({} found, but nvmlInit failed)",
                library.display()
            )
            .as_str()
        )
    );
}

fn disabled_in_config_reports_the_reason() {
    let setup = Setup::with_gpu_section("enabled = false", &ShimState::default());
    let snap = setup.once();
    assert_eq!(snap.health(), "unavailable");
    assert_eq!(
        snap.reason(),
        Some("disabled in config ([gpu] enabled = false)")
    );
}
