//! The GPU's identity at a real OTLP receiver (issue 17): the running agent reads the NVML
//! stand-in (tests/shims/nvml) and exports over OTLP/gRPC to rotel, and every GPU device metric
//! rotel prints must carry `hw.vendor`, `hw.model`, `hw.driver_version` and `hw.serial_number`
//! with the stand-in's values, beside `hw.id`.

// The test waits on a real receiver's output on the wall clock.
#![allow(clippy::disallowed_types)]

#[path = "gpu_common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hostwarden_tests::daemon::Daemon;
use hostwarden_tests::rotel::{Received, Rotel, free_port, rotel_agent};

use common::*;

/// The stand-in's compiler (as `SHIM`) and the receiver.
const NEEDS: &[Need] = &[Need::CCompiler, Need::RotelAgent];

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![h.test(
        "gpu_identity_attributes_arrive_at_the_otlp_receiver",
        NEEDS,
        gpu_identity_attributes_arrive_at_the_otlp_receiver,
    )])
}

const DRIVER: &str = "550.54.15";

/// Identity attributes a GPU device metric must carry, per device index.
fn identity(index: usize) -> [(&'static str, String); 5] {
    let gpu = ShimGpu::full(index);
    let model = gpu.name.expect("the full GPU has a name");
    [
        ("hw.id", uuid(index)),
        ("hw.vendor", "NVIDIA".to_owned()),
        ("hw.model", model),
        ("hw.driver_version", DRIVER.to_owned()),
        (
            "hw.serial_number",
            gpu.serial.expect("the full GPU has a serial"),
        ),
    ]
}

/// The GPU device points of an export: `hw.*` metrics with `hw.type` = gpu.
fn gpu_points(got: &Received) -> Vec<(&str, &BTreeMap<String, String>)> {
    got.metrics
        .values()
        .flat_map(|m| {
            m.points
                .iter()
                .map(move |p| (m.name.as_str(), &p.attributes))
        })
        .filter(|(_, attrs)| attrs.get("hw.type").is_some_and(|t| t == "gpu"))
        .collect()
}

fn gpu_identity_attributes_arrive_at_the_otlp_receiver() {
    let rotel = Rotel::start(
        &rotel_agent().expect("rotel-agent (Need::RotelAgent)"),
        free_port(),
        free_port(),
    );
    let mut state = ShimState::with_gpus(vec![ShimGpu::full(0), ShimGpu::full(1)]);
    state.driver = Some(DRIVER.to_owned());
    let gpu = format!(
        "nvml_library = {:?}\n\n[export.otlp]\nendpoint = \"http://127.0.0.1:{}\"\n\
         protocol = \"grpc\"\ninterval = \"500ms\"",
        nvml_shim::build(),
        rotel.grpc_port
    );
    let setup = Setup::with_gpu_section(&gpu, &state);
    let mut cmd = setup.command(&["run", "--view", "never"]);
    cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    let _agent = Daemon::spawn(cmd);
    rotel.lines.wait_until(
        "an export with both GPUs' memory",
        Duration::from_secs(60),
        |lines| {
            let got = Received::parse(&lines.join("\n"));
            got.metrics
                .get("hw.gpu.memory.limit")
                .is_some_and(|m| m.points.len() >= 2)
        },
    );
    let got = rotel.received();
    let points = gpu_points(&got);
    let metrics: BTreeSet<&str> = points.iter().map(|(name, _)| *name).collect();
    assert!(
        metrics.len() >= 5,
        "too few GPU metrics received to hold to their identity: {metrics:?}"
    );
    for (name, attrs) in &points {
        let index = (0..2)
            .find(|i| attrs.get("hw.id") == Some(&uuid(*i)))
            .unwrap_or_else(|| panic!("{name}: no known hw.id in {attrs:?}"));
        for (key, want) in identity(index) {
            assert_eq!(
                attrs.get(key),
                Some(&want),
                "{name} of GPU {index}: {key} as received: {attrs:?}"
            );
        }
    }
    println!(
        "{} GPU points of {} metrics carry the identity: {metrics:?}",
        points.len(),
        metrics.len()
    );
}
