//! The tuner's side of operator drop-ins: each scan's overrides are compared with the ones
//! already reported, a new one (or a new version of its file) is reported once (log, journal,
//! warning alert naming the file), and the wanted environment holds an overridden key at what
//! our drop-in has, so the key never causes an apply, a failed verification or a rollback.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{info, warn};

use super::Tuner;
use crate::rules::event::{AlertEvent, AlertState, Severity};
use crate::sys::time::wall_ms;
use crate::tuner::apply::Applier;
use crate::tuner::apply::dropin::Env;
use crate::tuner::apply::journal::{Entry, Event};
use crate::tuner::apply::operator::{self, Override, Overrides, Scan};

/// Reads the unit's `DropInPaths` over D-Bus, then the files (off the async threads). `None`
/// when systemd does not answer.
pub(super) async fn scan_unit(a: Arc<Applier>) -> Option<Scan> {
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

    /// Starts a scan of the unit's drop-ins unless one runs.
    pub(super) fn start_scan(&mut self) {
        if self.scan_task.is_none() {
            let a = Arc::clone(&self.applier);
            self.scan_task = Some(tokio::spawn(scan_unit(a)));
        }
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
