//! `[tuner.resources]` on the tuner's tick: the limits wanted from this tick's host figures,
//! Ollama's loaded models and the policy's plan, handed to the limits driver with the tuner's
//! own gate inputs (restart window, idle judgement).

use std::path::Path;

use super::Tuner;
use crate::collectors::ollama::OllamaView;
use crate::model::{AttrKey, MetricName, Snapshot};
use crate::status::ActuationReport;
use crate::tuner::apply::journal::ActionResult;
use crate::tuner::config::RestartWhen;
use crate::tuner::gate::idle::judge_idle;
use crate::tuner::policy::decision::Decision;
use crate::tuner::policy::memory::human;
use crate::tuner::resources::apply::LimitsApplier;
use crate::tuner::resources::auto::resolve;
use crate::tuner::resources::drive::LimitsTick;
use crate::tuner::resources::inputs::{host_facts, ollama_need};

impl Tuner {
    /// Reads the unit's cgroup files below `root` (`<[host] sys_root>/fs/cgroup`).
    pub fn set_cgroup_root(&mut self, root: &Path) {
        let a = self.limits.applier();
        let applier = LimitsApplier {
            mgr: std::sync::Arc::clone(&a.mgr),
            unit: a.unit.clone(),
            dropin_dir: a.dropin_dir.clone(),
            proc_root: a.proc_root.clone(),
            cgroup_root: root.to_path_buf(),
            verify_timeout: a.verify_timeout,
            journal: std::sync::Arc::clone(&a.journal),
        };
        self.limits.set_applier(applier);
    }

    /// The limits part of a tick (after `on_tick`, which measured Ollama's CPU use). `view` is
    /// the Ollama collector's view of this tick; `decision` the policy's plan.
    pub fn limits_tick(
        &mut self,
        now_ms: u64,
        snap: &Snapshot,
        view: Option<&OllamaView>,
        decision: Option<&Decision>,
    ) {
        if self.cfg.resources.is_empty() && !self.limits.busy() {
            return;
        }
        let need = view
            .and_then(|v| v.models.as_deref())
            .map(|m| ollama_need(m, decision));
        let wanted = resolve(&self.cfg.resources, &host_facts(snap), need.as_ref());
        if self.cfg.restart_when == RestartWhen::Idle {
            self.poll_ps();
        }
        let gpu = snap
            .points_named(MetricName::HwGpuUtilization)
            .map(|p| p.value.as_f64())
            .reduce(f64::max);
        let idle = judge_idle(self.ps.0.as_ref(), self.ps.1.as_ref(), gpu, self.last_cores);
        let host = super::fingerprint(snap);
        self.limits.on_tick(
            &LimitsTick {
                now_ms,
                cfg: &self.cfg,
                window: self.window,
                host: &host,
                wanted: &wanted,
                idle,
            },
            self.task.is_some(),
        );
        let (results, alerts) = self.limits.take();
        for r in results {
            match r {
                ActionResult::Applied => self.counts.applied += 1,
                ActionResult::RolledBack | ActionResult::RollbackFailed => {
                    self.counts.rolled_back += 1;
                }
                ActionResult::Skipped => self.counts.skipped += 1,
            }
        }
        self.alerts.extend(alerts);
    }

    /// The line `hostwarden status` shows for the unit's limits: the last limits decision, and
    /// the unit's memory against its limits from this snapshot's `ollama.unit.*` points.
    pub fn limits_status(&self, snap: &Snapshot) -> Option<ActuationReport> {
        let verdict = self.limits.last_verdict.as_deref()?;
        let h = |n: f64| human(n);
        let mut figures: Vec<String> = snap
            .points_named(MetricName::OllamaUnitMemoryLimit)
            .map(|p| {
                let kind = p
                    .attributes
                    .get(AttrKey::OllamaUnitLimitType)
                    .map_or(String::new(), |v| v.as_text());
                format!("memory {kind} {}", h(p.value.as_f64()))
            })
            .collect();
        if let Some(p) = snap.points_named(MetricName::OllamaUnitMemoryUsage).next() {
            figures.insert(0, format!("uses {}", h(p.value.as_f64())));
        }
        let figures = if figures.is_empty() {
            String::new()
        } else {
            format!(" [{}]", figures.join(", "))
        };
        Some(ActuationReport {
            at_ms: snap.timestamp_ms,
            unit: self.limits.applier().unit.clone(),
            result: "limits".to_owned(),
            summary: format!("{verdict}{figures}"),
        })
    }

    /// Waits for a running limits change (tests and shutdown).
    pub async fn settle_limits(&mut self) {
        self.limits.settle_task().await;
    }
}
