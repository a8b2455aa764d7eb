//! Shared by the GPU test files: a temp config pointing `[gpu]` at the stand-in libnvidia-ml,
//! runs of the real binary, and the exact points a fully supported device must give.
// Each test file uses part of these helpers.
#![allow(dead_code)]

pub use std::path::{Path, PathBuf};
pub use std::process::{Command, ExitCode, Output};

pub use hostwarden_tests::bin;
pub use hostwarden_tests::harness::Harness;
pub use hostwarden_tests::need::Need;
pub use hostwarden_tests::nvml_shim::{self, STATE_ENV, ShimGpu, ShimState, uuid};
pub use serde_json::{Value, json};

/// A temp dir with a config pointing `[gpu]` at `library`, a proc root with process names,
/// and the shim's state file.
pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
}

impl Setup {
    pub fn new(library: &Path, state: &ShimState) -> Setup {
        Setup::with_gpu_section(&format!("nvml_library = {:?}", library), state)
    }

    pub fn with_gpu_section(gpu: &str, state: &ShimState) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path().join("proc");
        std::fs::create_dir_all(proc_root.join("4242")).unwrap();
        std::fs::write(proc_root.join("4242/comm"), "ollama_llama_se\n").unwrap();
        let config = dir.path().join("hostwarden.toml");
        let text = format!(
            r#"[agent]
# Generous: two cores shared by many test processes must never miss the deadline (which must
# stay below the interval).
interval = "600ms"
collector_deadline = "500ms"
state_dir = {state_dir:?}
status_socket = {socket:?}

[host]
enabled = false
proc_root = {proc_root:?}

[gpu]
{gpu}

[zfs]
enabled = false

[ollama]
enabled = false
"#,
            state_dir = dir.path().join("state"),
            socket = dir.path().join("status.sock"),
        );
        std::fs::write(&config, text).unwrap();
        let state = state.write(dir.path());
        Setup {
            _dir: dir,
            config,
            state,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .arg("--config")
            .arg(&self.config)
            .env(STATE_ENV, &self.state)
            .env("HOSTWARDEN_LOG", "info");
        cmd
    }

    pub fn once(&self) -> Snapshot {
        let out = self
            .command(&["once", "--format", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "once failed: {}", text(&out.stderr));
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        Snapshot {
            json,
            stderr: text(&out.stderr),
        }
    }

    pub fn run(&self, ticks: u32) -> Output {
        let out = self
            .command(&["run", "--view", "always", "--ticks", &ticks.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "run failed: {}", text(&out.stderr));
        out
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub struct Snapshot {
    pub json: Value,
    pub stderr: String,
}

impl Snapshot {
    pub fn gpu_status(&self) -> &Value {
        self.json["collectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["collector"] == "gpu")
            .expect("gpu collector status")
    }

    pub fn health(&self) -> &str {
        self.gpu_status()["health"].as_str().unwrap()
    }

    pub fn reason(&self) -> Option<&str> {
        self.gpu_status()["reason"].as_str()
    }

    pub fn points(&self) -> &Vec<Value> {
        self.json["points"].as_array().unwrap()
    }

    /// Points of one device (or, for processes, whose hw.id is `id`).
    pub fn of(&self, id: &str) -> Vec<&Value> {
        self.points()
            .iter()
            .filter(|p| p["attributes"]["hw.id"] == id)
            .collect()
    }

    /// The values of `name` whose attributes include all of `with`.
    pub fn values(&self, name: &str, with: &[(&str, Value)]) -> Vec<&Value> {
        self.points()
            .iter()
            .filter(|p| p["name"] == name)
            .filter(|p| with.iter().all(|(k, v)| &p["attributes"][*k] == v))
            .map(|p| &p["value"])
            .collect()
    }
}

/// What a test that loads the stand-in library needs: a C compiler to build it.
pub const SHIM: &[Need] = &[Need::CCompiler];

/// (name, unit, attributes beyond hw.id/hw.name/hw.type, value).
pub type Expected = (
    &'static str,
    &'static str,
    Vec<(&'static str, Value)>,
    Value,
);

/// Every point a fully supported device gives, with its exact value (and unit), as
/// (name, unit, extra attributes, value). Base attributes are checked separately.
pub fn expected_full(g: &ShimGpu) -> Vec<Expected> {
    let last = |v: &Vec<u64>| *v.last().unwrap();
    let used = last(&g.memory_used);
    let total = g.memory_total.unwrap();
    let mut e = vec![
        ("hw.status", "1", vec![("hw.state", json!("ok"))], json!(1)),
        (
            "hw.status",
            "1",
            vec![("hw.state", json!("degraded"))],
            json!(0),
        ),
        (
            "hw.status",
            "1",
            vec![("hw.state", json!("failed"))],
            json!(0),
        ),
        ("hw.gpu.memory.usage", "By", vec![], json!(used)),
        ("hw.gpu.memory.limit", "By", vec![], json!(total)),
        (
            "hw.gpu.memory.free",
            "By",
            vec![],
            json!(last(&g.memory_free)),
        ),
        (
            "hw.gpu.memory.reserved",
            "By",
            vec![],
            json!(g.memory_reserved.unwrap()),
        ),
        (
            "hw.gpu.memory.utilization",
            "1",
            vec![],
            json!(used as f64 / total as f64),
        ),
        (
            "hw.gpu.utilization",
            "1",
            vec![("hw.gpu.task", json!("general"))],
            json!(last(&g.util_gpu) as f64 / 100.0),
        ),
        (
            "hw.gpu.memory_controller.utilization",
            "1",
            vec![],
            json!(last(&g.util_memory) as f64 / 100.0),
        ),
        (
            "hw.temperature",
            "Cel",
            vec![("hw.sensor_location", json!("gpu"))],
            json!(last(&g.temp)),
        ),
        (
            "hw.temperature.limit",
            "Cel",
            vec![
                ("hw.sensor_location", json!("gpu")),
                ("hw.limit_type", json!("high.degraded")),
            ],
            json!(g.temp_slowdown.unwrap()),
        ),
        (
            "hw.temperature.limit",
            "Cel",
            vec![
                ("hw.sensor_location", json!("gpu")),
                ("hw.limit_type", json!("high.critical")),
            ],
            json!(g.temp_shutdown.unwrap()),
        ),
        (
            "hw.power",
            "W",
            vec![],
            json!(last(&g.power_mw) as f64 / 1000.0),
        ),
        (
            "hw.gpu.power.limit",
            "W",
            vec![],
            json!(g.power_limit_mw.unwrap() as f64 / 1000.0),
        ),
        (
            "hw.energy",
            "J",
            vec![],
            json!(last(&g.energy_mj) as f64 / 1000.0),
        ),
        (
            "hw.errors",
            "{error}",
            vec![
                ("error.type", json!("corrected")),
                ("hw.gpu.ecc.counter", json!("volatile")),
            ],
            json!(g.ecc_corrected.unwrap()),
        ),
        (
            "hw.errors",
            "{error}",
            vec![
                ("error.type", json!("uncorrected")),
                ("hw.gpu.ecc.counter", json!("volatile")),
            ],
            json!(g.ecc_uncorrected.unwrap()),
        ),
        (
            "hw.fan.speed_ratio",
            "1",
            vec![],
            json!(g.fan_percent.unwrap() as f64 / 100.0),
        ),
        (
            "hw.gpu.clock.frequency",
            "Hz",
            vec![("hw.gpu.clock", json!("sm"))],
            json!(g.clock_sm_mhz.unwrap() * 1_000_000),
        ),
        (
            "hw.gpu.clock.frequency",
            "Hz",
            vec![("hw.gpu.clock", json!("memory"))],
            json!(g.clock_mem_mhz.unwrap() * 1_000_000),
        ),
    ];
    let h = |key: &str| {
        g.health
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap()
    };
    for (kind, key) in [
        ("corrected", "ecc.corrected.aggregate"),
        ("uncorrected", "ecc.uncorrected.aggregate"),
    ] {
        e.push((
            "hw.errors",
            "{error}",
            vec![
                ("error.type", json!(kind)),
                ("hw.gpu.ecc.counter", json!("aggregate")),
            ],
            json!(h(key)),
        ));
    }
    e.push((
        "hw.gpu.pcie.replays",
        "{replay}",
        vec![],
        json!(h("pcie.replay")),
    ));
    for (dir, key) in [("transmit", "pcie.tx"), ("receive", "pcie.rx")] {
        e.push((
            "hw.gpu.pcie.throughput",
            "By/s",
            vec![("network.io.direction", json!(dir))],
            json!(h(key) * 1024),
        ));
    }
    for (task, key) in [("encoder", "util.encoder"), ("decoder", "util.decoder")] {
        e.push((
            "hw.gpu.utilization",
            "1",
            vec![("hw.gpu.task", json!(task))],
            json!(h(key) as f64 / 100.0),
        ));
    }
    for (kind, key) in [
        ("corrected", "remap.corrected"),
        ("uncorrected", "remap.uncorrected"),
    ] {
        e.push((
            "hw.gpu.memory.remapped_rows",
            "{row}",
            vec![("error.type", json!(kind))],
            json!(h(key)),
        ));
    }
    e.push((
        "hw.gpu.memory.remap.pending",
        "1",
        vec![],
        json!(h("remap.pending")),
    ));
    e.push((
        "hw.gpu.memory.remap.failed",
        "1",
        vec![],
        json!(h("remap.failure")),
    ));
    let bits = last(&g.throttle);
    for (i, reason) in [
        "gpu_idle",
        "applications_clocks_setting",
        "sw_power_cap",
        "hw_slowdown",
        "sync_boost",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
        "display_clock_setting",
    ]
    .into_iter()
    .enumerate()
    {
        let on = u64::from(bits & (1 << i) != 0);
        e.push((
            "hw.gpu.throttled",
            "1",
            vec![("hw.gpu.throttle_reason", json!(reason))],
            json!(on),
        ));
    }
    e
}

/// The identity attributes every point of device `g` carries (driver as the shim's default).
pub fn identity(g: &ShimGpu) -> Vec<(&'static str, Value)> {
    let mut with = vec![
        ("hw.id", json!(g.uuid.clone().unwrap())),
        ("hw.name", json!(g.name.clone().unwrap())),
        ("hw.model", json!(g.name.clone().unwrap())),
        ("hw.vendor", json!("NVIDIA")),
        ("hw.driver_version", json!("550.54.15")),
        ("hw.type", json!("gpu")),
    ];
    if let Some(serial) = &g.serial {
        with.push(("hw.serial_number", json!(serial)));
    }
    with
}

/// Asserts that device `g` reported exactly `expected_full(g)`, each point once, with its
/// identity (hw.id, hw.name, hw.model, hw.vendor, hw.driver_version, hw.serial_number, hw.type)
/// on every one.
pub fn assert_full_device(snap: &Snapshot, g: &ShimGpu) {
    let id = g.uuid.clone().unwrap();
    let device: Vec<_> = snap
        .of(&id)
        .into_iter()
        .filter(|p| p["name"] != "process.gpu.memory.usage")
        .collect();
    let expected = expected_full(g);
    assert_eq!(device.len(), expected.len(), "points of {id}: {device:#?}");
    for (name, unit, extra, value) in expected {
        let mut with = identity(g);
        with.extend(extra.clone());
        let found: Vec<_> = device
            .iter()
            .filter(|p| p["name"] == name)
            .filter(|p| with.iter().all(|(k, v)| &p["attributes"][*k] == v))
            .collect();
        assert_eq!(found.len(), 1, "{name} {extra:?} on {id}");
        assert_eq!(found[0]["value"], value, "{name} {extra:?} on {id}");
        assert_eq!(found[0]["unit"], unit, "{name} unit");
        let keys = found[0]["attributes"].as_object().unwrap().len();
        assert_eq!(
            keys,
            with.len(),
            "{name} has exactly the expected attributes"
        );
    }
}
