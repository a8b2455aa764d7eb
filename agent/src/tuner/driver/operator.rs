//! The tuner's side of operator drop-ins: each scan's overrides are compared with the ones
//! already reported, a new one (or a new version of its file) is reported once (log, journal,
//! warning alert naming the file), and the wanted environment holds an overridden key at what
//! our drop-in has, so the key never causes an apply, a failed verification or a rollback.
//!
//! When the scan runs: at start, after each of our own applies, after each daemon-reload the
//! manager announces (`UnitChanges`, from its `Reloading` signal), and every `SCAN_FALLBACK` in
//! case a signal was missed. Not every tick: a drop-in takes effect only at a daemon-reload
//! (systemd.unit(5): "Use systemctl daemon-reload or an equivalent command to reload unit
//! configuration while the unit is already loaded"), and `DropInPaths` is a `const` property
//! that a reload changes, so a scan made after the reload finished sees everything that reload
//! brought in. A file edited without a reload is not in force yet; the next reload's scan reads
//! it. The one drop-in listed without a reload is `systemctl set-property`'s `50-<name>.conf`,
//! which sorts before our `60-` file and so is never an override.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::Tuner;
use crate::rules::event::{AlertEvent, AlertState, Severity};
use crate::sys::systemd::{UnitChanges, ensure_watch};
use crate::sys::time::wall_ms;
use crate::tuner::apply::Applier;
use crate::tuner::apply::dropin::Env;
use crate::tuner::apply::journal::{Entry, Event};
use crate::tuner::apply::operator::{self, Override, Overrides, Scan};

/// The scan's cadence when no signal asks for one (a missed signal, a manager whose signals
/// cannot be received).
pub(super) const SCAN_FALLBACK: Duration = Duration::from_secs(60);

/// Reads the unit's `DropInPaths` over D-Bus, then the files (off the async threads). `None`
/// when systemd does not answer. Starts the change watch first (unless it runs), so a reload
/// after this read is seen.
pub(super) async fn scan_unit(a: Arc<Applier>, changes: Arc<UnitChanges>) -> Option<Scan> {
    ensure_watch(
        a.mgr.as_ref(),
        &a.unit,
        &changes,
        "the drop-in scan (every 60 s)",
    )
    .await;
    let status = a.mgr.unit_status(&a.unit).await.ok()?;
    tokio::task::spawn_blocking(move || operator::scan(&status.drop_in_paths))
        .await
        .ok()
}

/// Holds every overridden key of `desired` at its value in `current` (or leaves it out when our
/// drop-in does not set it): the operator's file decides it.
pub(super) fn hold(desired: &mut Env, current: &Env, theirs: &Overrides) {
    for key in theirs.keys() {
        match current.get(key) {
            Some(v) => desired.insert(key.clone(), v.clone()),
            None => desired.remove(key),
        };
    }
}

impl Tuner {
    /// The overrides the journal last reported, so an agent restart does not report them again.
    pub(super) fn restore_overrides(&mut self, entries: &[Entry]) {
        for e in entries {
            match &e.event {
                Event::OperatorOverride {
                    key,
                    path,
                    value,
                    file,
                } => {
                    self.overrides.insert(
                        key.clone(),
                        Override {
                            path: path.clone(),
                            value: value.clone(),
                            file: file.clone(),
                        },
                    );
                }
                Event::OperatorOverrideGone { key, .. } => {
                    self.overrides.remove(key);
                }
                _ => {}
            }
        }
    }

    /// Starts a scan of the unit's drop-ins when one is due (`scan_clock`) and none runs.
    pub(super) fn start_scan(&mut self) {
        if self.scan_task.is_none() && self.scan_clock.due(&self.changes) {
            self.scan_clock.started(&self.changes);
            let a = Arc::clone(&self.applier);
            let changes = Arc::clone(&self.changes);
            self.scan_task = Some(tokio::spawn(scan_unit(a, changes)));
        }
    }

    /// How many times systemd announced a change of the unit (a finished daemon-reload, a
    /// property change) since the tuner started watching.
    pub fn unit_changes(&self) -> u64 {
        self.changes.count()
    }

    /// Waits until systemd announced a change after `seen` (`unit_changes`): tests wait on
    /// this after a daemon-reload instead of sleeping.
    pub async fn unit_changed_since(&self, seen: u64) {
        self.changes.changed_since(seen).await;
    }

    /// Waits for a running scan and takes its result (tests).
    pub async fn settle_scan(&mut self) {
        if let Some(task) = self.scan_task.take()
            && let Ok(Some(scan)) = task.await
        {
            self.note_scan(scan);
        }
    }

    /// The keys a later drop-in sets now, with the file that does.
    pub fn operator_overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// Reports what changed since the last scan: new overrides (or new versions of their
    /// files) once each, and overrides that are gone.
    pub(super) fn note_scan(&mut self, scan: Scan) {
        for p in &scan.problems {
            if self.scan_problems.insert(p.clone()) {
                warn!(unit = %self.applier.unit, problem = %p, "Tuner cannot read all of the unit's drop-ins; keys they set are not known.");
            }
        }
        let old = std::mem::replace(&mut self.overrides, scan.overrides);
        let new: Vec<(String, Override)> = self
            .overrides
            .iter()
            .filter(|(k, o)| old.get(*k) != Some(*o))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for (key, o) in &new {
            self.report_override(key, o);
        }
        let gone: BTreeMap<&String, &Override> = old
            .iter()
            .filter(|(k, _)| !self.overrides.contains_key(*k))
            .collect();
        for (key, o) in gone {
            info!(unit = %self.applier.unit, key = %key, file = %o.path, "No later drop-in sets this key any more; the tuner manages it again.");
            self.applier.journal(Event::OperatorOverrideGone {
                key: key.clone(),
                path: o.path.clone(),
            });
        }
    }

    fn report_override(&mut self, key: &str, o: &Override) {
        let shown = o
            .value
            .as_deref()
            .map_or_else(|| "unsets it".to_owned(), |v| format!("sets {key}={v}"));
        warn!(unit = %self.applier.unit, key = %key, file = %o.path, value = o.value.as_deref().unwrap_or("-"), "An operator drop-in sorting after the tuner's overrides a key; the tuner leaves it alone until the file changes.");
        self.applier.journal(Event::OperatorOverride {
            key: key.to_owned(),
            path: o.path.clone(),
            value: o.value.clone(),
            file: o.file.clone(),
        });
        let now = wall_ms();
        self.alerts.push(AlertEvent {
            id: now,
            rule: "tuner_operator_override".to_owned(),
            metric: crate::model::MetricName::HostwardenTunerActions
                .as_str()
                .to_owned(),
            severity: Severity::Warning,
            state: AlertState::Firing,
            attributes: BTreeMap::from([
                ("systemd.unit".to_owned(), self.applier.unit.clone()),
                ("key".to_owned(), key.to_owned()),
                ("file".to_owned(), o.path.clone()),
            ]),
            value: 1.0,
            threshold: None,
            baseline: None,
            since_ms: now,
            at_ms: now,
            summary: format!(
                "{} {shown} after hostwarden's drop-in on {}; the tuner leaves {key} alone until that file changes",
                o.path, self.applier.unit
            ),
        });
    }
}
