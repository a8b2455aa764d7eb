//! The coordinator against a fake sys tree in a tempdir (the `[host] sys_root` seam): the boot
//! value restored at stop, after a crash, and when the feature is turned off.

use std::path::{Path, PathBuf};

use super::*;
use crate::collectors::ollama::{ModelView, UnitWatch};
use crate::tuner::apply::journal::JOURNAL_NAME;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// A 3 GiB guest's boot value as guest-init.sh sets it (half of RAM).
const BOOT: u64 = 1536 * MIB;

struct Host {
    _dir: tempfile::TempDir,
    sys: PathBuf,
    state: PathBuf,
}

impl Host {
    fn new(param: u64) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let state = dir.path().join("state");
        std::fs::create_dir_all(sys.join("module/zfs/parameters")).unwrap();
        let h = Host {
            sys,
            state,
            _dir: dir,
        };
        h.write(param);
        h
    }
    fn param(&self) -> u64 {
        Param::new(&self.sys).read().unwrap()
    }
    fn write(&self, v: u64) {
        std::fs::write(self.sys.join(param::PARAM), format!("{v}\n")).unwrap();
    }
    fn coordinator(&self, mode: ArcMode) -> ArcCoordinator {
        ArcCoordinator::new(&cfg(mode), &self.sys, &self.state)
    }
    fn journal(&self) -> Vec<ArcRecord> {
        journal_records(&self.state)
    }
}

fn journal_records(state: &Path) -> Vec<ArcRecord> {
    let text = std::fs::read_to_string(state.join(JOURNAL_NAME)).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .filter_map(|e| match e.event {
            Event::ZfsArc(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn cfg(mode: ArcMode) -> ZfsArcConfig {
    ZfsArcConfig {
        mode,
        floor_mib: 128,
        min_max_mib: 256,
        reserve_mib: 256,
        ..ZfsArcConfig::default()
    }
}

/// MemAvailable, the ARC's size, c_min 94 MiB and c_max as arcstats says.
fn snap(available: u64, arc_size: u64, c_max: u64) -> Snapshot {
    let limit = |kind, v| {
        MetricPoint::new(
            MetricName::ZfsArcLimit,
            Attrs::new().with(AttrKey::ZfsArcLimitType, kind),
            v,
        )
    };
    Snapshot {
        points: vec![
            MetricPoint::new(
                MetricName::SystemMemoryLinuxAvailable,
                Attrs::new(),
                available,
            ),
            MetricPoint::new(MetricName::ZfsArcSize, Attrs::new(), arc_size),
            limit("min", 94 * MIB),
            limit("max", c_max),
        ],
        ..Snapshot::default()
    }
}

/// Ollama up with one model of `size` bytes, none of it in VRAM.
fn ollama(size: Option<u64>) -> OllamaView {
    let models = size.map(|s| {
        let ps = serde_json::from_value(serde_json::json!({
            "name": "llama3.1:8b", "size": s, "size_vram": 0
        }))
        .unwrap();
        vec![ModelView { ps, arch: None }]
    });
    OllamaView {
        url: "http://127.0.0.1:11434".into(),
        up: true,
        probe_seconds: None,
        problems: Vec::new(),
        version: Some("0.30.11".into()),
        models: models.or(Some(Vec::new())),
        unit: UnitWatch::NotWatched {
            reason: "test".into(),
        },
        process: None,
        at: tokio::time::Instant::now(),
    }
}

/// A 3 GiB guest: 1.2 GiB of ARC, 1.3 GiB available, and a model that needs 2 GiB of RAM:
/// 1.2 + 1.3 - 2 - 0.25 = 0.25 GiB, under c_min + floor: the lowest, 256 MiB.
fn squeezed(c: &mut ArcCoordinator, now_ms: u64) -> Vec<MetricPoint> {
    let s = snap(1331 * MIB, 1229 * MIB, BOOT);
    c.on_tick(now_ms, &s, Some(&ollama(Some(2 * GIB))))
}

fn target(points: &[MetricPoint]) -> Option<f64> {
    points
        .iter()
        .find(|p| {
            p.attributes
                .get(AttrKey::ZfsArcLimitType)
                .is_some_and(|v| v.as_text() == "tuner_target")
        })
        .map(|p| p.value.as_f64())
}

#[test]
fn apply_lowers_the_limit_and_stop_restores_the_boot_value() {
    let h = Host::new(BOOT);
    let mut c = h.coordinator(ArcMode::Apply);
    let points = squeezed(&mut c, 1_000);
    assert_eq!(h.param(), 256 * MIB);
    #[allow(clippy::cast_precision_loss)]
    let want = (256 * MIB) as f64;
    assert_eq!(target(&points), Some(want));
    let state = StateFile::new(&h.state).load().unwrap().unwrap();
    assert_eq!(
        state,
        Remembered {
            boot_param: BOOT,
            boot_c_max: BOOT,
            set: Some(256 * MIB)
        }
    );
    let set = &h.journal()[0];
    assert_eq!(
        (set.action.as_str(), set.from, set.to),
        ("set", BOOT, 256 * MIB)
    );
    assert!(
        set.reason
            .contains("llama3.1:8b 2.0 GiB of which 0 MiB in VRAM"),
        "{}",
        set.reason
    );
    assert_eq!(set.figures.mem_available, 1331 * MIB);

    c.stop();
    assert_eq!(h.param(), BOOT);
    assert!(!h.state.join(param::STATE_NAME).exists());
    let restored = h.journal().pop().unwrap();
    assert_eq!((restored.action.as_str(), restored.to), ("restored", BOOT));
}

#[test]
fn the_limit_comes_back_when_ollama_unloads_after_the_hold() {
    let h = Host::new(BOOT);
    let mut c = h.coordinator(ArcMode::Apply);
    squeezed(&mut c, 1_000);
    let shrunk = snap(2300 * MIB, 256 * MIB, 256 * MIB);
    // Unloaded 10 s later: within the 60 s hold, the limit stays.
    c.on_tick(11_000, &shrunk, Some(&ollama(None)));
    assert_eq!(h.param(), 256 * MIB);
    c.on_tick(61_000, &shrunk, Some(&ollama(None)));
    assert_eq!(h.param(), BOOT);
    let last = h.journal().pop().unwrap();
    assert_eq!((last.action.as_str(), last.to), ("set", BOOT));
    assert!(
        last.reason.contains("no Ollama model in host RAM"),
        "{}",
        last.reason
    );
}

#[test]
fn a_restart_after_a_crash_restores_the_value_the_host_had() {
    let h = Host::new(BOOT);
    let mut c = h.coordinator(ArcMode::Apply);
    squeezed(&mut c, 1_000);
    drop(c); // killed: no stop
    assert_eq!(h.param(), 256 * MIB);
    // The new run's first snapshot shows c_max at the agent's value; the state file knows better.
    let mut c = h.coordinator(ArcMode::Apply);
    c.on_tick(2_000, &snap(2300 * MIB, 256 * MIB, 256 * MIB), None);
    c.stop();
    assert_eq!(h.param(), BOOT);
}

#[test]
fn turned_off_at_start_or_by_a_reload_the_boot_value_is_restored() {
    let h = Host::new(BOOT);
    let mut c = h.coordinator(ArcMode::Apply);
    squeezed(&mut c, 1_000);
    drop(c);
    let _off = h.coordinator(ArcMode::Off);
    assert_eq!(
        h.param(),
        BOOT,
        "restored when the next run starts with mode = off"
    );

    let mut c = h.coordinator(ArcMode::Apply);
    squeezed(&mut c, 1_000);
    assert_eq!(h.param(), 256 * MIB);
    c.reconfigure(&cfg(ArcMode::Observe));
    assert_eq!(h.param(), BOOT, "restored by the reload");
    let last = h.journal().pop().unwrap();
    assert_eq!(last.reason, "turned off by a config reload");
}

#[test]
fn a_boot_value_of_zero_is_written_back_as_zero() {
    // OpenZFS's default: c_max is what arcstats says, and the parameter reads 0.
    let h = Host::new(0);
    let mut c = h.coordinator(ArcMode::Apply);
    squeezed(&mut c, 1_000);
    assert_eq!(h.param(), 256 * MIB);
    c.stop();
    assert_eq!(h.param(), 0);
}

#[test]
fn observe_mode_journals_what_it_would_set_and_never_writes() {
    let h = Host::new(BOOT);
    let mut c = h.coordinator(ArcMode::Observe);
    let points = squeezed(&mut c, 1_000);
    squeezed(&mut c, 3_000);
    assert_eq!(h.param(), BOOT);
    assert!(target(&points).is_some());
    let j = h.journal();
    assert_eq!(j.len(), 1, "once per change: {j:?}");
    assert_eq!((j[0].action.as_str(), j[0].to), ("would_set", 256 * MIB));
    c.stop();
    assert_eq!(h.param(), BOOT);
}

#[test]
fn an_operator_value_becomes_the_one_to_restore() {
    let h = Host::new(BOOT);
    let mut c = h.coordinator(ArcMode::Apply);
    squeezed(&mut c, 1_000);
    h.write(GIB);
    c.on_tick(
        2_000,
        &snap(1331 * MIB, 900 * MIB, GIB),
        Some(&ollama(Some(2 * GIB))),
    );
    assert_eq!(h.journal()[1].action, "adopted");
    c.stop();
    assert_eq!(h.param(), GIB);
}

#[test]
fn without_zfs_the_coordinator_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ArcCoordinator::new(&cfg(ArcMode::Apply), dir.path(), dir.path());
    let points = c.on_tick(1_000, &snap(GIB, GIB, BOOT), Some(&ollama(Some(2 * GIB))));
    assert!(points.is_empty());
    assert!(
        c.broken
            .as_deref()
            .is_some_and(|b| b.contains("no ZFS module")),
        "{:?}",
        c.broken
    );
    c.stop();
}
