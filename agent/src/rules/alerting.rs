//! The rules as the daemon runs them: the engine, its saved state, the outbox and the sinks
//! that take every event at once (the log, the terminal view, the hostwarden.alert.count metric).
//! The OTLP log exporter drains the outbox (`outbox()`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::config::RuleConfig;
use super::engine::{Engine, EngineState};
use super::event::{AlertEvent, AlertState, Severity};
use super::outbox::{Outbox, Restore};
use super::persist;
use super::rule::ActiveAlert;
use super::summary::series_name;
use crate::model::{AttrKey, Attrs, MetricName, MetricPoint, Snapshot};

/// Rule state file, inside `[agent] state_dir`.
pub const STATE_FILE: &str = "rules.json";
/// Outbox file, inside `[agent] state_dir`.
pub const OUTBOX_FILE: &str = "outbox.json";

/// Baselines change every tick; they are saved at most this often (transitions at once).
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// What alerting is built from: the rules, and where its state and outbox live (the config
/// composes it from `[[rules]]` and `[agent]`).
#[derive(Debug, Clone, Copy)]
pub struct AlertingConfig<'a> {
    pub rules: &'a [RuleConfig],
    /// `[agent] state_dir`.
    pub state_dir: &'a Path,
    /// `[agent] outbox_capacity`.
    pub outbox_capacity: usize,
}

pub struct Alerting {
    engine: Engine,
    outbox: Arc<Mutex<Outbox>>,
    state_dir: PathBuf,
    saved_outbox_generation: u64,
    last_state_save: Option<Instant>,
    quiet_announced: BTreeSet<String>,
    last_save_error: Option<String>,
}

impl Alerting {
    /// Builds the engine from `config` and restores saved state and outbox from the state
    /// directory. A missing file is a fresh start; an unreadable one is logged and ignored.
    pub fn new(config: AlertingConfig<'_>) -> Self {
        let state_dir = config.state_dir.to_owned();
        let mut engine = Engine::new(config.rules);
        let state_path = state_dir.join(STATE_FILE);
        match persist::load::<EngineState>(&state_path) {
            Ok(Some(saved)) => {
                let n = engine.restore(saved);
                info!(path = %state_path.display(), restored = n, "Rule state restored.");
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "Rule state unreadable; starting fresh."),
        }
        let outbox_path = state_dir.join(OUTBOX_FILE);
        // The capacity applies while reading: an oversized outbox never sits in memory whole.
        let restore = Restore {
            capacity: config.outbox_capacity,
        };
        let outbox = match persist::load_seed(&outbox_path, restore) {
            Ok(o) => o.unwrap_or_else(|| Outbox::new(config.outbox_capacity)),
            Err(e) => {
                warn!(error = %e, "Outbox unreadable; starting empty.");
                Outbox::new(config.outbox_capacity)
            }
        };
        if outbox.depth() > 0 {
            info!(path = %outbox_path.display(), events = outbox.depth(), dropped = outbox.dropped(), "Outbox restored.");
        }
        if let Some(id) = outbox.last_id() {
            engine.ensure_next_id_after(id);
        }
        Alerting {
            engine,
            saved_outbox_generation: outbox.generation(),
            outbox: Arc::new(Mutex::new(outbox)),
            state_dir,
            last_state_save: None,
            quiet_announced: BTreeSet::new(),
            last_save_error: None,
        }
    }

    /// The queue the OTLP log exporter drains (peek, export, ack).
    pub fn outbox(&self) -> Arc<Mutex<Outbox>> {
        Arc::clone(&self.outbox)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Pending and firing alerts, for the terminal view.
    pub fn active(&self) -> Vec<ActiveAlert> {
        self.engine.active()
    }

    /// A reloaded config: rules (unchanged ones keep their state), outbox bound, state dir.
    pub fn replace_config(&mut self, config: AlertingConfig<'_>) {
        self.engine.replace_rules(config.rules);
        self.lock_outbox().set_capacity(config.outbox_capacity);
        config.state_dir.clone_into(&mut self.state_dir);
        self.quiet_announced.clear();
        self.save_state();
    }

    /// Judges the rules against this tick's snapshot, sends the events to the log and the
    /// outbox, saves what changed, and appends hostwarden.alert.count and the outbox metrics to the
    /// snapshot so every consumer sees them.
    pub fn on_tick(&mut self, now: Instant, snapshot: &mut Snapshot) -> Vec<AlertEvent> {
        let events = self.engine.evaluate(now, snapshot.timestamp_ms, snapshot);
        self.announce_quiet();
        for ev in &events {
            log_event(ev);
        }
        {
            let mut outbox = self.lock_outbox();
            for ev in &events {
                outbox.push(ev.clone());
            }
        }
        let due = self
            .last_state_save
            .is_none_or(|at| now.saturating_duration_since(at) >= SAVE_EVERY);
        if !events.is_empty() || due {
            self.last_state_save = Some(now);
            self.save_state();
        }
        self.save_outbox_if_changed();
        self.append_metrics(snapshot);
        events
    }

    /// Sends an event raised outside the rules (a tuner rollback) to the same sinks as rule
    /// events: the log and the outbox, with an id from the same sequence. Returns it as queued,
    /// for the sinks fed outside the outbox (Alertmanager).
    pub fn raise(&mut self, mut event: AlertEvent) -> AlertEvent {
        event.id = self.engine.allocate_id();
        log_event(&event);
        self.lock_outbox().push(event.clone());
        self.save_outbox_if_changed();
        event
    }

    /// Saves everything (shutdown).
    pub fn save_all(&mut self) {
        self.save_state();
        self.save_outbox_if_changed();
    }

    fn lock_outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        // A panic while holding the lock leaves a consistent queue: keep using it.
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn announce_quiet(&mut self) {
        // Looked up borrowed: a name is copied once, when it is first announced, not every tick.
        for name in self.engine.quiet_rules() {
            if !self.quiet_announced.contains(name) {
                info!(rule = %name, "Rule stays quiet: its metric does not exist on this host.");
                self.quiet_announced.insert(name.to_owned());
            }
        }
    }

    fn save_state(&mut self) {
        let path = self.state_dir.join(STATE_FILE);
        let result = persist::save(&path, &self.engine.save());
        self.note_save(result);
    }

    fn save_outbox_if_changed(&mut self) {
        let (generation, saved) = {
            let o = self.lock_outbox();
            if o.generation() == self.saved_outbox_generation {
                return;
            }
            (o.generation(), o.to_saved())
        };
        let result = persist::save(&self.state_dir.join(OUTBOX_FILE), &saved);
        if result.is_ok() {
            self.saved_outbox_generation = generation;
        }
        self.note_save(result);
    }

    /// Logs a failed save once per distinct error, so a read-only state dir is not a WARN
    /// every tick.
    fn note_save(&mut self, result: Result<(), persist::StateError>) {
        match result {
            Ok(()) => self.last_save_error = None,
            Err(e) => {
                let msg = e.to_string();
                if self.last_save_error.as_deref() != Some(msg.as_str()) {
                    warn!(error = %msg, "Alert state not saved; it will not survive a restart.");
                    self.last_save_error = Some(msg);
                }
            }
        }
    }

    fn append_metrics(&self, snapshot: &mut Snapshot) {
        for (rule, sev, n) in self.engine.firing_counts() {
            let attrs = Attrs::new()
                .with(AttrKey::AlertRule, rule)
                .with(AttrKey::AlertSeverity, sev.as_str());
            snapshot
                .points
                .push(MetricPoint::new(MetricName::HostwardenAlertCount, attrs, n));
        }
        let o = self.lock_outbox();
        snapshot.points.push(MetricPoint::new(
            MetricName::HostwardenOutboxDepth,
            Attrs::new(),
            o.depth() as u64,
        ));
        snapshot.points.push(MetricPoint::new(
            MetricName::HostwardenOutboxDropped,
            Attrs::new(),
            o.dropped(),
        ));
    }
}

/// The log sink: WARN for a warning firing, ERROR for a critical one, INFO otherwise.
fn log_event(ev: &AlertEvent) {
    let series = series_name(&ev.metric, &ev.attributes);
    let threshold = ev.threshold.unwrap_or(f64::NAN);
    macro_rules! emit {
        ($level:ident) => {
            $level!(
                rule = %ev.rule,
                state = ev.state.as_str(),
                severity = ev.severity.as_str(),
                series = %series,
                value = ev.value,
                threshold,
                since_ms = ev.since_ms,
                at_ms = ev.at_ms,
                event_id = ev.id,
                "{}",
                ev.summary
            )
        };
    }
    match (ev.state, ev.severity) {
        (AlertState::Firing, Severity::Critical) => emit!(error),
        (AlertState::Firing, Severity::Warning) => emit!(warn),
        _ => emit!(info),
    }
}

#[cfg(test)]
mod tests;
