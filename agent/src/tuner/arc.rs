//! ARC coordination (`[tuner.zfs_arc]`): on a ZFS host the ARC can hold half the RAM while
//! MemAvailable leaves it out, so Ollama refuses or spills a model the ARC would make room for
//! (ollama/ollama #5700). Each tick this lowers `zfs_arc_max` to what leaves Ollama the host
//! memory its loaded models still need, raises it again when they are gone, and restores the
//! value the host had when the agent stops or the feature is turned off. The boot value is kept
//! in the state dir, so an agent restarted after a crash restores the host's value, not its own.
//!
//! - `decide`: pure. The wanted value, its reason and figures, and the hysteresis.
//! - `param`: the module parameter under the sys root, and the remembered boot value.
//! - this file: the coordinator the runtime calls (`on_tick`, `reconfigure`, `stop`).

pub mod config;
pub mod decide;
pub mod param;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::collectors::ollama::OllamaView;
use crate::model::{AttrKey, Attrs, MetricName, MetricPoint, Snapshot};
use crate::tuner::apply::journal::{Entry, Event, Journal};
use crate::tuner::policy::memory::human;
use config::{ArcMode, ZfsArcConfig};
use decide::{Figures, HostMemory, Limits, OllamaNeed, Verdict, Want};
use param::{Param, ParamError, Remembered, StateFile};

/// The journal's `unit` for these entries.
pub const JOURNAL_UNIT: &str = "zfs_arc_max";

/// One journal entry of the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArcRecord {
    /// `set`, `would_set` (observe), `restored`, `failed`, `adopted` (an operator's value).
    pub action: String,
    pub from: u64,
    pub to: u64,
    pub reason: String,
    #[serde(default)]
    pub figures: Figures,
}

impl ArcRecord {
    /// One line for `hostwarden status`.
    pub fn summary(&self) -> String {
        #[allow(clippy::cast_precision_loss)]
        let h = |b: u64| human(b as f64);
        format!(
            "zfs_arc_max {} -> {}: {}",
            h(self.from),
            h(self.to),
            self.reason
        )
    }
}

pub struct ArcCoordinator {
    cfg: ZfsArcConfig,
    param: Param,
    state: StateFile,
    journal: Option<Journal>,
    /// Captured on the first tick with ARC figures.
    boot: Option<Remembered>,
    /// The value the agent holds in force (apply) or would (observe); `None`: the boot value.
    held: Option<u64>,
    last_change_ms: Option<u64>,
    last_want: Option<Want>,
    /// Why the coordinator gave up (no ZFS module, parameter unreadable), logged once.
    broken: Option<String>,
}

impl ArcCoordinator {
    /// Opens the journal; restores a value an earlier run left in force when the feature is no
    /// longer in apply mode.
    pub fn new(cfg: &ZfsArcConfig, sys_root: &Path, state_dir: &Path) -> ArcCoordinator {
        let journal = match Journal::open(state_dir) {
            Ok((j, _)) => Some(j),
            Err(e) => {
                warn!(error = %e, "ZFS ARC coordination cannot journal; it will not apply.");
                None
            }
        };
        let mut c = ArcCoordinator {
            cfg: cfg.clone(),
            param: Param::new(sys_root),
            state: StateFile::new(state_dir),
            journal,
            boot: None,
            held: None,
            last_change_ms: None,
            last_want: None,
            broken: None,
        };
        if cfg.mode != ArcMode::Apply {
            c.restore_leftover();
        }
        c
    }

    /// An earlier run died with its value in force, and this one does not apply: put the
    /// host's value back.
    fn restore_leftover(&mut self) {
        let Ok(Some(r)) = self.state.load() else {
            return;
        };
        match self.param.read() {
            Ok(now) if r.set == Some(now) => {
                self.boot = Some(r);
                self.held = Some(now);
                self.restore(
                    "an earlier run left its value and zfs_arc is no longer in apply mode",
                );
                self.boot = None;
            }
            _ => {
                // Not ours any more (a reboot, an operator): nothing to restore.
                if let Err(e) = self.state.remove() {
                    warn!(error = %e, "Cannot remove the ZFS ARC state file.");
                }
            }
        }
    }

    /// Takes a reloaded config; leaving apply mode restores the boot value.
    pub fn reconfigure(&mut self, cfg: &ZfsArcConfig) {
        let was = self.cfg.mode;
        self.cfg = cfg.clone();
        if was == ArcMode::Apply && cfg.mode != ArcMode::Apply {
            self.restore("turned off by a config reload");
        }
        if was != cfg.mode {
            // What observe mode would have set was never in force.
            if was == ArcMode::Observe {
                self.held = None;
            }
            self.last_change_ms = None;
            self.last_want = None;
        }
    }

    /// At agent stop: the boot value back, the state file gone.
    pub fn stop(&mut self) {
        if self.cfg.mode == ArcMode::Apply {
            self.restore("the agent stops");
        }
    }

    /// The coordinator's newest `n` journal entries (for `hostwarden status`).
    pub fn last_actions(&self, n: usize) -> Vec<Entry> {
        let Some(j) = &self.journal else {
            return Vec::new();
        };
        let mut mine: Vec<Entry> = j
            .last(200)
            .into_iter()
            .filter(|e| matches!(e.event, Event::ZfsArc(_)))
            .collect();
        mine.drain(..mine.len().saturating_sub(n));
        mine
    }

    /// One tick: decide from the snapshot's memory and ARC figures and Ollama's view, maybe set
    /// the parameter. Returns the coordinator's points.
    pub fn on_tick(
        &mut self,
        now_ms: u64,
        snap: &Snapshot,
        view: Option<&OllamaView>,
    ) -> Vec<MetricPoint> {
        if self.cfg.mode == ArcMode::Off || self.broken.is_some() {
            return Vec::new();
        }
        let Some((mem, c_max)) = host_memory(snap) else {
            return Vec::new();
        };
        let Some(boot) = self.boot_or_capture(c_max) else {
            return Vec::new();
        };
        if self.cfg.mode == ArcMode::Apply {
            self.notice_operator(now_ms, c_max);
        }
        let boot = self.boot.unwrap_or(boot);
        let limits = Limits {
            boot: boot.boot_c_max,
            floor: self.cfg.floor(),
            min_max: self.cfg.min_max(),
            reserve: self.cfg.reserve(),
        };
        if let Some(want) = decide::want(&mem, &need_of(view), &limits) {
            let held = self.held.unwrap_or(boot.boot_c_max);
            let since = self
                .last_change_ms
                .map(|t| Duration::from_millis(now_ms.saturating_sub(t)));
            let verdict = decide::verdict(
                want.max,
                held,
                boot.boot_c_max,
                self.cfg.step(),
                self.cfg.hold,
                since,
            );
            if verdict == Verdict::Change {
                self.change(now_ms, held, &want);
            }
            self.last_want = Some(want);
        }
        self.points(boot.boot_c_max)
    }

    /// The boot value, read on the first tick (the parameter, and c_max from the snapshot).
    fn boot_or_capture(&mut self, c_max: u64) -> Option<Remembered> {
        if let Some(b) = self.boot {
            return Some(b);
        }
        let param = match self.param.read() {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "ZFS ARC coordination off: cannot read zfs_arc_max.");
                self.broken = Some(e.to_string());
                return None;
            }
        };
        let remembered = self.state.load().unwrap_or_else(|e| {
            warn!(error = %e, "ZFS ARC state file unreadable; the value found now counts as the boot value.");
            None
        });
        let boot = param::boot_at_start(remembered, param, c_max);
        if boot.set.is_some() {
            warn!(
                boot = boot.boot_param,
                in_force = param,
                "zfs_arc_max still holds the value an earlier run set; the remembered boot value stays."
            );
        } else {
            info!(
                zfs_arc_max = param,
                c_max, "ZFS ARC coordination: boot value read."
            );
        }
        if self.cfg.mode == ArcMode::Apply
            && let Err(e) = self.state.save(&boot)
        {
            // Without it a crash would lose the boot value: do not change anything.
            warn!(error = %e, "ZFS ARC coordination off: cannot remember the boot value.");
            self.broken = Some(e.to_string());
            return None;
        }
        self.held = boot.set;
        self.boot = Some(boot);
        Some(boot)
    }

    /// An operator wrote zfs_arc_max while one of the agent's values was in force: theirs
    /// becomes the value to restore, and the agent starts again from it.
    fn notice_operator(&mut self, now_ms: u64, c_max: u64) {
        let Some(held) = self.held else {
            return;
        };
        let Ok(now) = self.param.read() else {
            return;
        };
        if now == held {
            return;
        }
        let boot = Remembered {
            boot_param: now,
            boot_c_max: c_max,
            set: None,
        };
        warn!(
            set = held,
            found = now,
            "zfs_arc_max was changed by someone else; it is the new value to restore."
        );
        self.journal(
            now_ms,
            ArcRecord {
                action: "adopted".to_owned(),
                from: held,
                to: now,
                reason: "written by someone else while the agent's value was in force; \
                         restored at stop from now on"
                    .to_owned(),
                figures: Figures::default(),
            },
        );
        if let Err(e) = self.state.save(&boot) {
            warn!(error = %e, "Cannot update the ZFS ARC state file.");
        }
        self.boot = Some(boot);
        self.held = None;
        self.last_change_ms = Some(now_ms);
    }

    fn change(&mut self, now_ms: u64, from: u64, want: &Want) {
        let Some(boot) = self.boot else {
            return;
        };
        let record = |action: &str, reason: String| ArcRecord {
            action: action.to_owned(),
            from,
            to: want.max,
            reason,
            figures: want.figures.clone(),
        };
        self.last_change_ms = Some(now_ms);
        if self.cfg.mode == ArcMode::Observe {
            info!(from, to = want.max, reason = %want.reason, "ZFS ARC: would set zfs_arc_max (observe mode).");
            self.journal(now_ms, record("would_set", want.reason.clone()));
            self.held = (want.max != boot.boot_c_max).then_some(want.max);
            return;
        }
        if self.journal.is_none() {
            return;
        }
        let result = if want.max == boot.boot_c_max {
            self.write_boot(&boot)
        } else {
            self.write_ours(&boot, want.max)
        };
        match result {
            Ok(()) => {
                info!(from, to = want.max, reason = %want.reason, "ZFS ARC: zfs_arc_max set.");
                self.held = (want.max != boot.boot_c_max).then_some(want.max);
                self.journal(now_ms, record("set", want.reason.clone()));
            }
            Err(e) => {
                warn!(from, to = want.max, error = %e, "ZFS ARC: zfs_arc_max not set.");
                self.journal(
                    now_ms,
                    record("failed", format!("{e}; wanted: {}", want.reason)),
                );
            }
        }
    }

    /// Remembers the value before writing it, so a crash right after still knows it is ours.
    fn write_ours(&mut self, boot: &Remembered, value: u64) -> Result<(), ParamError> {
        self.state.save(&Remembered {
            set: Some(value),
            ..*boot
        })?;
        let written = self.param.write(value);
        if written.is_err()
            && let Err(e) = self.state.save(&Remembered {
                set: self.held,
                ..*boot
            })
        {
            warn!(error = %e, "Cannot update the ZFS ARC state file.");
        }
        written
    }

    /// The boot limit back. A boot parameter of 0 (OpenZFS's default) does not reset the
    /// limit when written (OpenZFS ignores 0), so the boot c_max goes first, then the 0.
    fn write_boot(&mut self, boot: &Remembered) -> Result<(), ParamError> {
        if boot.boot_param == 0 {
            self.param.write(boot.boot_c_max)?;
        }
        self.param.write(boot.boot_param)?;
        self.state.save(&Remembered { set: None, ..*boot })
    }

    /// Restores the boot value if one of the agent's is in force, and forgets the state.
    fn restore(&mut self, why: &str) {
        let Some(boot) = self.boot else {
            return;
        };
        if let Some(held) = self.held {
            let now_ms = crate::sys::time::wall_ms();
            let record = |action: &str, reason: String| ArcRecord {
                action: action.to_owned(),
                from: held,
                to: boot.boot_c_max,
                reason,
                figures: Figures::default(),
            };
            match self.write_boot(&boot) {
                Ok(()) => {
                    info!(
                        from = held,
                        to = boot.boot_param,
                        why,
                        "ZFS ARC: zfs_arc_max restored to its boot value."
                    );
                    self.journal(now_ms, record("restored", why.to_owned()));
                    self.held = None;
                }
                Err(e) => {
                    warn!(error = %e, why, "ZFS ARC: boot value NOT restored.");
                    self.journal(now_ms, record("failed", format!("restore ({why}): {e}")));
                    return;
                }
            }
        }
        if let Err(e) = self.state.remove() {
            warn!(error = %e, "Cannot remove the ZFS ARC state file.");
        }
        self.boot = None;
    }

    fn journal(&mut self, at_ms: u64, r: ArcRecord) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let entry = Entry {
            at_ms,
            unit: JOURNAL_UNIT.to_owned(),
            event: Event::ZfsArc(r),
        };
        if let Err(e) = j.append(entry) {
            warn!(error = %e, "ZFS ARC change not journaled.");
        }
    }

    /// `zfs.arc.limit{limit_type=tuner_target}`: the value the coordinator wants (in apply mode
    /// arcstats' `max` follows it once written); `limit_type=boot`: the value it restores.
    fn points(&self, boot: u64) -> Vec<MetricPoint> {
        let point = |kind: &'static str, v: u64| {
            MetricPoint::new(
                MetricName::ZfsArcLimit,
                Attrs::new().with(AttrKey::ZfsArcLimitType, kind),
                v,
            )
        };
        let mut points = vec![point("boot", boot)];
        if let Some(w) = &self.last_want {
            points.push(point("tuner_target", w.max));
        }
        points
    }
}

/// MemAvailable and the ARC's size, c_min and c_max from the snapshot; `None` without ZFS.
fn host_memory(s: &Snapshot) -> Option<(HostMemory, u64)> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let int = |v: f64| v.max(0.0) as u64;
    let one = |n| s.points_named(n).next().map(|p| int(p.value.as_f64()));
    let limit = |kind| {
        s.find(MetricName::ZfsArcLimit, &[(AttrKey::ZfsArcLimitType, kind)])
            .map(|p| int(p.value.as_f64()))
    };
    Some((
        HostMemory {
            available: one(MetricName::SystemMemoryLinuxAvailable)?,
            arc_size: one(MetricName::ZfsArcSize)?,
            arc_c_min: limit("min")?,
        },
        limit("max")?,
    ))
}

/// What Ollama holds in host RAM, from the collector's view.
pub fn need_of(view: Option<&OllamaView>) -> OllamaNeed {
    let Some(v) = view.filter(|v| v.up) else {
        return OllamaNeed::Down;
    };
    let Some(models) = &v.models else {
        return OllamaNeed::Unknown;
    };
    #[allow(clippy::cast_precision_loss)]
    let h = |b: u64| human(b as f64);
    let in_ram: Vec<_> = models
        .iter()
        .filter(|m| m.ps.size > m.ps.size_vram)
        .collect();
    OllamaNeed::Loaded {
        ram: in_ram.iter().map(|m| m.ps.size - m.ps.size_vram).sum(),
        resident: v.process.as_ref().map_or(0, |p| p.total().0),
        models: in_ram
            .iter()
            .map(|m| {
                format!(
                    "{} {} of which {} in VRAM",
                    m.ps.name,
                    h(m.ps.size),
                    h(m.ps.size_vram)
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
