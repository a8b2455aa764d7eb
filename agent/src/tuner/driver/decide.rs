//! The tuner's decision on a tick: the gate's verdict on the policy's wish, the journal entry
//! when it changed, and the apply it starts.

use std::sync::Arc;

use tracing::info;

use super::{PS_POLL_TIMEOUT, TaskOutcome, Tuner, operator};
use crate::model::{MetricName, Snapshot};
use crate::sys::time::wall_ms;
use crate::tuner::apply::dropin::{ALLOWED_KEYS, Env};
use crate::tuner::apply::journal::Event;
use crate::tuner::apply::show;
use crate::tuner::config::{RestartWhen, TunerMode};
use crate::tuner::gate::idle::{PsObservation, judge_idle, loaded_models};
use crate::tuner::gate::{GateInput, HostFingerprint, Verdict, local_minute_of_day};
use crate::tuner::policy::decision::Decision;

impl Tuner {
    /// Runs the gate on the policy's decision, journals the decision when it changed, and
    /// starts an apply when the gate says go.
    pub(super) fn gate_and_apply(
        &mut self,
        now_ms: u64,
        snap: &Snapshot,
        d: &Decision,
        host: &HostFingerprint,
        cpu: Option<f64>,
    ) {
        let mut desired: Env = d
            .env()
            .into_iter()
            .filter(|(k, _)| ALLOWED_KEYS.contains(&k.as_str()))
            .collect();
        operator::hold(&mut desired, &self.current, &self.overrides);
        let mut d = d.clone();
        for (key, o) in &self.overrides {
            if let Some(k) = d.keys.get_mut(key) {
                k.reasons
                    .push(format!("left alone: {} sets it after ours", o.path));
            }
        }
        let verdict = self.verdict(now_ms, snap, &desired, host, cpu);
        self.journal_decision(&d, &desired, &verdict);
        if let Verdict::Go(why) = verdict {
            self.start_apply(now_ms, host, desired, why);
        }
    }

    /// Observe mode only recommends; apply mode asks the gate (idle check included).
    fn verdict(
        &mut self,
        now_ms: u64,
        snap: &Snapshot,
        desired: &Env,
        host: &HostFingerprint,
        cpu: Option<f64>,
    ) -> Verdict {
        if self.cfg.mode == TunerMode::Observe {
            return if *desired == self.current {
                Verdict::NoChange
            } else {
                Verdict::Wait(
                    "observe mode: recommendation only, the unit is not touched".to_owned(),
                )
            };
        }
        if self.cfg.restart_when == RestartWhen::Idle && *desired != self.current {
            self.poll_ps();
        }
        let gpu = snap
            .points_named(MetricName::HwGpuUtilization)
            .map(|p| p.value.as_f64())
            .reduce(f64::max);
        let idle = judge_idle(self.ps.0.as_ref(), self.ps.1.as_ref(), gpu, cpu);
        let input = GateInput {
            now_ms,
            desired,
            current: &self.current,
            host,
            local_minute: local_minute_of_day(i64::try_from(now_ms / 1000).unwrap_or(0)),
            idle,
        };
        self.gate.evaluate(&self.cfg, self.window, &input)
    }

    /// Journals when the wish or the kind of verdict changes, not when only its numbers move
    /// ("wanted for 40s of 10m", "next expiry in 4m 12s"): the key is the text before the
    /// first number.
    fn journal_decision(&mut self, d: &Decision, desired: &Env, verdict: &Verdict) {
        let verdict_text = match verdict {
            Verdict::NoChange => "no change: the unit has the wanted environment".to_owned(),
            Verdict::Wait(r) => format!("wait: {r}"),
            Verdict::Go(r) => format!("apply: {r}"),
        };
        let verdict_key: String = verdict_text
            .chars()
            .take_while(|c| !c.is_ascii_digit())
            .collect();
        if self.last_journaled.as_ref() == Some(&(desired.clone(), verdict_key.clone())) {
            return;
        }
        info!(unit = %self.applier.unit, desired = %show(desired), verdict = %verdict_text, "Tuner decision.");
        if self.cfg.mode == TunerMode::Observe && *verdict != Verdict::NoChange {
            self.counts.skipped += 1;
        }
        self.applier.journal(Event::Decision {
            desired: desired.clone(),
            current: self.current.clone(),
            reasons: d
                .keys
                .iter()
                .map(|(k, v)| (k.clone(), v.reasons.clone()))
                .collect(),
            verdict: verdict_text,
        });
        self.last_journaled = Some((desired.clone(), verdict_key));
    }

    /// Spawns the apply off the tick loop; its report comes back on a later tick.
    fn start_apply(&mut self, now_ms: u64, host: &HostFingerprint, desired: Env, why: String) {
        let a = Arc::clone(&self.applier);
        let changes = Arc::clone(&self.changes);
        let before = self.current.clone();
        // Unique across restarts even when the clock repeats (the journal pairs by id).
        let id = now_ms.max(self.last_id + 1);
        self.last_id = id;
        self.task_started_ms = now_ms;
        self.last_host = host.clone();
        self.task_env = desired.clone();
        self.task = Some(tokio::spawn(async move {
            // A drop-in added since the last scan: its keys are held too, and when nothing is
            // left to change, nothing is applied.
            let scan = operator::scan_unit(Arc::clone(&a), changes).await;
            let mut after = desired;
            if let Some(s) = &scan {
                operator::hold(&mut after, &before, &s.overrides);
            }
            let report = if after == before {
                None
            } else {
                Some(a.apply(id, before, after, why).await)
            };
            TaskOutcome { scan, report }
        }));
    }

    /// Starts an `/api/ps` poll for the idle check, unless one runs.
    pub(super) fn poll_ps(&mut self) {
        if self.ps_task.is_some() {
            return;
        }
        let api = self.applier.ollama.clone();
        self.ps_task = Some(tokio::spawn(async move {
            let models = api.ps_within(PS_POLL_TIMEOUT).await;
            PsObservation {
                at_ms: wall_ms(),
                models: models.ok().map(|m| loaded_models(&m)),
            }
        }));
    }

    /// Ollama's CPU use in cores, from the collector's process CPU-time counter.
    pub(super) fn ollama_cpu(&mut self, now_ms: u64, snap: &Snapshot) -> Option<f64> {
        let secs = snap
            .points_named(MetricName::OllamaProcessCpuTime)
            .next()?
            .value
            .as_f64();
        let prev = self.last_cpu.replace((now_ms, secs));
        let (t0, s0) = prev?;
        let dt = now_ms.checked_sub(t0).filter(|&d| d > 0)?;
        #[allow(clippy::cast_precision_loss)]
        Some((secs - s0).max(0.0) / (dt as f64 / 1000.0))
    }
}

/// GPU count and memory and host RAM: a change in these makes a rolled-back change worth
/// another try.
pub fn fingerprint(snap: &Snapshot) -> HostFingerprint {
    let gpus: Vec<i64> = snap
        .points_named(MetricName::HwGpuMemoryLimit)
        .map(|p| p.value.as_f64() as i64)
        .collect();
    HostFingerprint {
        gpu_count: u32::try_from(gpus.len()).unwrap_or(u32::MAX),
        gpu_memory_bytes: gpus.iter().sum(),
        ram_bytes: snap
            .points_named(MetricName::SystemMemoryLimit)
            .next()
            .map_or(0, |p| p.value.as_f64() as i64),
    }
}
