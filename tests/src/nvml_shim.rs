//! The stand-in libnvidia-ml (tests/shims/nvml/nvml_shim.c): compiled here with the system C
//! compiler, once per test process and variant, and its device state written from Rust.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The environment variable naming the shim's state file.
pub const STATE_ENV: &str = "HOSTWARDEN_NVML_SHIM_STATE";

/// The shim with every entry point.
pub fn build() -> PathBuf {
    build_without(&[])
}

/// A variant with the given NVML entry points compiled out, so that `dlsym` fails for them as
/// it does on an older driver.
pub fn build_without(symbols: &[&str]) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let key = if symbols.is_empty() {
        "full".to_owned()
    } else {
        format!("without-{}", symbols.join("-"))
    };
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let dir = crate::target_profile_dir().join("nvml-shim").join(&key);
    std::fs::create_dir_all(&dir).expect("create shim dir");
    let out = dir.join("libnvidia-ml.so");
    // Another test process may be loading the library: build beside it, then rename over it.
    let tmp = dir.join(format!("libnvidia-ml.so.{}.tmp", std::process::id()));
    let src = source();
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".to_owned()));
    cmd.args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src);
    for s in symbols {
        cmd.arg(format!("-DOMIT_{s}"));
    }
    let output = cmd.output().expect("run the C compiler (cc)");
    assert!(
        output.status.success(),
        "compiling {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&tmp, &out).expect("move the shim into place");
    built.insert(key, out.clone());
    out
}

/// The shim's C source.
pub fn source() -> PathBuf {
    crate::workspace_root().join("tests/shims/nvml/nvml_shim.c")
}

/// True when a C compiler is on PATH (the GPU tests need one).
pub fn have_cc() -> bool {
    Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".to_owned()))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One stand-in device. Fields left `None` answer NVML_ERROR_NOT_SUPPORTED. Numeric fields take
/// a list of per-tick values (the last one sticks).
#[derive(Debug, Clone, Default)]
pub struct ShimGpu {
    pub uuid: Option<String>,
    pub name: Option<String>,
    /// `None` answers NotSupported (a GeForce board).
    pub serial: Option<String>,
    pub memory_total: Option<u64>,
    pub memory_reserved: Option<u64>,
    pub memory_free: Vec<u64>,
    pub memory_used: Vec<u64>,
    pub util_gpu: Vec<u64>,
    pub util_memory: Vec<u64>,
    pub temp: Vec<u64>,
    pub temp_slowdown: Option<u64>,
    pub temp_shutdown: Option<u64>,
    pub power_mw: Vec<u64>,
    pub power_limit_mw: Option<u64>,
    pub energy_mj: Vec<u64>,
    pub throttle: Vec<u64>,
    pub ecc_corrected: Option<u64>,
    pub ecc_uncorrected: Option<u64>,
    pub fan_percent: Option<u64>,
    pub clock_sm_mhz: Option<u64>,
    pub clock_mem_mhz: Option<u64>,
    /// (pid, bytes); `None` = not supported, `Some(vec![])` = no processes.
    pub procs: Option<Vec<(u32, u64)>>,
    /// The device falls off the bus after this many ticks (handle lookups).
    pub lost_after: Option<u64>,
    /// Per tick: how long the memory query blocks first (a hung driver call), in ms.
    pub delay_ms: Vec<u64>,
    /// Supported NVML event mask; `None` = NotSupported (as under WSL2).
    pub events: Option<u64>,
    /// XID history: each entry the shim has not yet seen becomes one XID event when the state
    /// file is read again (append one and rewrite the file to deliver one mid-run).
    pub xids: Vec<u64>,
    /// Further shim keys with one value each (`pcie.replay`, `util.encoder`,
    /// `remap.corrected`, `retired.sbe`, ...; see the shim's header); unset = NotSupported.
    pub health: Vec<(&'static str, u64)>,
}

impl ShimGpu {
    /// A fully supported datacenter GPU with fixed values (index-dependent UUID).
    pub fn full(index: usize) -> Self {
        ShimGpu {
            uuid: Some(uuid(index)),
            name: Some("NVIDIA A100-SXM4-80GB".to_owned()),
            serial: Some(format!("13211200{index:05}")),
            memory_total: Some(85_899_345_920),
            memory_reserved: Some(536_870_912),
            memory_free: vec![64_424_509_440],
            memory_used: vec![20_937_965_568],
            util_gpu: vec![42],
            util_memory: vec![17],
            temp: vec![61],
            temp_slowdown: Some(90),
            temp_shutdown: Some(95),
            power_mw: vec![123_456],
            power_limit_mw: Some(400_000),
            energy_mj: vec![987_654_321],
            throttle: vec![0x4],
            ecc_corrected: Some(3),
            ecc_uncorrected: Some(0),
            fan_percent: Some(55),
            clock_sm_mhz: Some(1410),
            clock_mem_mhz: Some(1593),
            procs: Some(vec![]),
            lost_after: None,
            delay_ms: vec![],
            // Single- and double-bit ECC, P-state, XID and clock events, as a datacenter GPU.
            events: Some(0x1f),
            xids: vec![],
            // As an A100: rows are remapped (retired pages are NotSupported since Ampere).
            health: vec![
                ("pcie.replay", 2),
                ("pcie.tx", 1200),
                ("pcie.rx", 3400),
                ("util.encoder", 0),
                ("util.decoder", 5),
                ("ecc.corrected.aggregate", 10),
                ("ecc.uncorrected.aggregate", 1),
                ("remap.corrected", 1),
                ("remap.uncorrected", 2),
                ("remap.pending", 0),
                ("remap.failure", 1),
            ],
        }
    }
}

/// The UUID the helpers give device `index`.
pub fn uuid(index: usize) -> String {
    format!("GPU-00000000-0000-4000-8000-{index:012}")
}

/// A whole shim state file.
#[derive(Debug, Clone, Default)]
pub struct ShimState {
    pub init: Option<&'static str>,
    pub driver: Option<String>,
    pub gpus: Vec<ShimGpu>,
}

impl ShimState {
    pub fn with_gpus(gpus: Vec<ShimGpu>) -> Self {
        ShimState {
            gpus,
            ..ShimState::default()
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(init) = self.init {
            writeln!(s, "init = {init}").ok();
        }
        writeln!(
            s,
            "driver = {}",
            self.driver.as_deref().unwrap_or("550.54.15")
        )
        .ok();
        writeln!(s, "count = {}", self.gpus.len()).ok();
        for (i, g) in self.gpus.iter().enumerate() {
            let mut kv = |key: &str, val: String| {
                writeln!(s, "gpu.{i}.{key} = {val}").ok();
            };
            let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            if let Some(u) = &g.uuid {
                kv("uuid", u.clone());
            }
            if let Some(n) = &g.name {
                kv("name", n.clone());
            }
            if let Some(n) = &g.serial {
                kv("serial", n.clone());
            }
            let singles = [
                ("memory.total", g.memory_total),
                ("memory.reserved", g.memory_reserved),
                ("temp.slowdown", g.temp_slowdown),
                ("temp.shutdown", g.temp_shutdown),
                ("power.limit", g.power_limit_mw),
                ("ecc.corrected", g.ecc_corrected),
                ("ecc.uncorrected", g.ecc_uncorrected),
                ("fan", g.fan_percent),
                ("clock.sm", g.clock_sm_mhz),
                ("clock.mem", g.clock_mem_mhz),
                ("lost_after", g.lost_after),
                ("events", g.events),
            ];
            for (key, v) in g.health.iter().map(|(k, v)| (*k, Some(*v))).chain(singles) {
                if let Some(v) = v {
                    kv(key, v.to_string());
                }
            }
            let lists: [(&str, &[u64]); 10] = [
                ("delay_ms", &g.delay_ms),
                ("xid", &g.xids),
                ("memory.free", &g.memory_free),
                ("memory.used", &g.memory_used),
                ("util.gpu", &g.util_gpu),
                ("util.memory", &g.util_memory),
                ("temp", &g.temp),
                ("power", &g.power_mw),
                ("energy", &g.energy_mj),
                ("throttle", &g.throttle),
            ];
            for (key, v) in lists {
                if !v.is_empty() {
                    kv(key, list(v));
                }
            }
            if let Some(procs) = &g.procs {
                let text = procs
                    .iter()
                    .map(|(pid, bytes)| format!("{pid}:{bytes}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                kv("procs", text);
            }
        }
        s
    }

    /// Writes the state file into `dir` and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("nvml-shim.state");
        std::fs::write(&path, self.render()).expect("write shim state");
        path
    }
}
