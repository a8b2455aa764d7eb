//! The running daemon: what it holds between ticks, and what it does on a tick and on a reload.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::cli::ViewMode;
use crate::collectors::ollama::OllamaHooks;
use crate::collectors::{self, Collector};
use crate::config::{self, Config, ReloadSource};
use crate::exporters::telemetry::Telemetry;
use crate::model::Snapshot;
use crate::rules::Alerting;
use crate::status::{ActuationReport, AlertReport};
use crate::sys::heap::HeapTrim;
use crate::sys::time::wall_ms;
use crate::sys::{residency, systemd};
use crate::tuner::arc::ArcCoordinator;
use crate::tuner::driver::Tuner;
use crate::tuner::observe::TunerObserver;
use crate::view;

use super::ticker::Ticker;

/// The live config and what was built from it.
struct Live {
    config: Config,
    collectors: Vec<Box<dyn Collector>>,
    /// Shared with the Ollama collector: its view for the tuner, and the systemd client.
    hooks: OllamaHooks,
    tuner: TunerObserver,
}

impl Live {
    fn new(config: Config) -> Self {
        let hooks = OllamaHooks {
            unit_source: systemd::client_for(&config.tuner.bus),
            ..OllamaHooks::default()
        };
        let collectors = collectors::from_config_with(config.collectors(), &hooks);
        let tuner = TunerObserver::new(hooks.view.clone());
        Live {
            config,
            collectors,
            hooks,
            tuner,
        }
    }

    /// Swaps in a new config. Collectors take it in place when they can, so a reload does not
    /// lose CPU counters, re-open NVML or restart `zpool iostat` needlessly.
    fn replace(&mut self, new: Config) {
        let c = &self.config;
        if c.host != new.host || c.gpu != new.gpu || c.zfs != new.zfs || c.ollama != new.ollama {
            collectors::reconfigure(&mut self.collectors, new.collectors(), &self.hooks);
        }
        self.config = new;
    }
}

/// Where the terminal view goes, if anywhere.
#[derive(Debug, Clone, Copy)]
struct ViewOutput {
    show: bool,
    clear_screen: bool,
}

/// The daemon between ticks.
pub(super) struct Daemon {
    live: Live,
    path: Option<PathBuf>,
    alerting: Alerting,
    tuner: Option<Tuner>,
    /// `[tuner.zfs_arc]`: zfs_arc_max lowered to make room for Ollama.
    arc: ArcCoordinator,
    telemetry: Telemetry,
    snapshots: watch::Sender<Arc<Snapshot>>,
    pub(super) ticker: Ticker,
    pub(super) ticks: u64,
    /// When the last tick was due: a new interval counts from there.
    last_tick: Option<Instant>,
    notifier: Notifier,
    view: ViewOutput,
    /// The tick after which the code start-up or a reload ran stops being mapped.
    code_settles_at: Option<u64>,
    heap: HeapTrim,
}

/// Ticks after start or a reload before the code mappings are dropped: the first tick builds
/// lazily what the collectors and exporters need (connections, caches), the next ones run the
/// steady path, which then faults back in alone.
const SETTLE_TICKS: u64 = 3;

impl Daemon {
    /// Builds everything the config asks for: collectors, rules, tuner, export, status socket.
    pub(super) fn start(config: Config, path: Option<PathBuf>, view: ViewMode) -> Daemon {
        let show = match view {
            ViewMode::Always => true,
            ViewMode::Never => false,
            ViewMode::Auto => {
                std::io::stderr().is_terminal() && config.export.otlp.endpoint.is_none()
            }
        };
        let view = ViewOutput {
            show,
            clear_screen: show && std::io::stderr().is_terminal(),
        };
        let alerting = Alerting::new(config.alerting());
        let live = Live::new(config);
        let tuner = start_tuner(&live.config);
        let arc = ArcCoordinator::new(
            &live.config.tuner.zfs_arc,
            &live.config.host.sys_root,
            &live.config.agent.state_dir,
        );
        let (snapshots, snapshots_rx) = watch::channel(Arc::new(Snapshot::default()));
        let telemetry = Telemetry::start(
            &live.config.export.otlp,
            &live.config.export.prometheus,
            &live.config.export.alertmanager,
            live.config.agent.interval,
            &live.config.agent.status_socket,
            &live.config.agent.state_dir,
            &snapshots_rx,
            alerting.outbox(),
        );
        let ticker = new_ticker(live.config.agent.interval);
        Daemon {
            live,
            path,
            alerting,
            tuner,
            arc,
            telemetry,
            snapshots,
            ticker,
            ticks: 0,
            last_tick: None,
            notifier: Notifier::from_env(),
            view,
            code_settles_at: Some(SETTLE_TICKS),
            heap: HeapTrim::default(),
        }
    }

    /// One tick: collect, let the tuner act, judge the rules, export, show, publish.
    pub(super) async fn on_tick(&mut self, due: Instant) {
        self.ticks += 1;
        self.last_tick = Some(due);
        let started = Instant::now();
        let deadline = self.live.config.collector_deadline();
        let mut snapshot =
            collectors::collect_all(&mut self.live.collectors, deadline, wall_ms()).await;
        // Borrowed, not cloned: a clone copied every key, value and reason each tick (issue 20).
        let advice = self.live.tuner.observe(&snapshot, &self.live.config.tuner);
        let mut raised = Vec::new();
        let view = self.live.hooks.view.latest();
        if let Some(t) = self.tuner.as_mut() {
            // Only a unit systemd watches can be changed: advice-only stays advice.
            let decision = advice.filter(|a| !a.advice_only).map(|a| &a.decision);
            let points = t.on_tick(snapshot.timestamp_ms, &snapshot, decision);
            snapshot.points.extend(points);
            // `[tuner.resources]`: the unit's limits, from the same tick (live, no restart).
            t.limits_tick(
                snapshot.timestamp_ms,
                &snapshot,
                view.as_deref(),
                advice.map(|a| &a.decision),
            );
            for alert in t.take_alerts() {
                raised.push(self.alerting.raise(alert));
            }
        }
        let points = self
            .arc
            .on_tick(snapshot.timestamp_ms, &snapshot, view.as_deref());
        snapshot.points.extend(points);
        let mut events = self.alerting.on_tick(Instant::now(), &mut snapshot);
        events.extend(raised);
        self.telemetry.alerts(&events, &self.alerting.active());
        self.telemetry.finish_snapshot(&mut snapshot);
        debug!(
            tick = self.ticks,
            points = snapshot.points.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "Tick."
        );
        self.show(&snapshot);
        self.notifier.on_tick(&snapshot);
        let snapshot = Arc::new(snapshot);
        self.publish_status(Arc::clone(&snapshot));
        self.snapshots.send_replace(snapshot);
        self.heap.after_tick(due);
        if self.code_settles_at == Some(self.ticks) {
            self.code_settles_at = None;
            match residency::drop_code_mappings() {
                Ok(bytes) => debug!(
                    bytes,
                    "Code mappings dropped; the tick maps back what it runs."
                ),
                Err(e) => debug!(error = %e, "Code mappings kept: madvise failed."),
            }
        }
    }

    /// A reload (file watch or SIGHUP): a new config that loads takes effect everywhere.
    pub(super) fn on_reload(&mut self, source: ReloadSource) {
        let old_interval = self.live.config.agent.interval;
        if reload(&mut self.live, self.path.as_ref(), source) {
            let interval = self.live.config.agent.interval;
            if interval != old_interval {
                self.ticker = ticker_after(self.last_tick, interval);
            }
            self.alerting.replace_config(self.live.config.alerting());
            if let Some(t) = self.tuner.as_mut() {
                t.reconfigure(&self.live.config.tuner);
            }
            self.arc.reconfigure(&self.live.config.tuner.zfs_arc);
            self.code_settles_at = Some(self.ticks + SETTLE_TICKS);
        }
    }

    /// Saves the rules' state, tells systemd, flushes export.
    pub(super) async fn stop(mut self) {
        self.arc.stop();
        self.alerting.save_all();
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Stopping]) {
            debug!(error = %e, "sd_notify failed.");
        }
        self.telemetry.shutdown().await;
    }

    /// The terminal view on stderr.
    fn show(&self, snapshot: &Snapshot) {
        if !self.view.show {
            return;
        }
        let text = view::render_summary(snapshot)
            + &self.live.tuner.render()
            + &view::render_alerts(&self.alerting.active());
        if self.view.clear_screen {
            eprint!("\x1b[H\x1b[2J{text}");
        } else {
            eprint!("{text}");
        }
    }

    /// What `hostwarden status` reads.
    fn publish_status(&self, snapshot: Arc<Snapshot>) {
        let mut source = self.telemetry.status_source(snapshot);
        source.alerts = self
            .alerting
            .active()
            .iter()
            .map(AlertReport::from)
            .collect();
        if let Some(t) = self.tuner.as_ref() {
            source.actuations = t
                .last_actions(10)
                .iter()
                // The ARC's entries come from its own handle (below), not twice.
                .filter(|e| !matches!(e.event, crate::tuner::apply::journal::Event::ZfsArc(_)))
                .map(ActuationReport::from)
                .collect();
        }
        // The ARC coordinator's entries, merged in time order; the newest 10 of both.
        source
            .actuations
            .extend(self.arc.last_actions(10).iter().map(ActuationReport::from));
        source.actuations.sort_by_key(|a| a.at_ms);
        let extra = source.actuations.len().saturating_sub(10);
        source.actuations.drain(..extra);
        // The unit's limits against its usage, and the last limits decision: always shown, not
        // crowded out of the newest 10.
        if let Some(line) = self
            .tuner
            .as_ref()
            .and_then(|t| t.limits_status(&source.snapshot))
        {
            source.actuations.push(line);
        }
        self.telemetry.publish_status(source);
    }
}

/// The Ollama tuner; without its state dir (no permission) the agent still monitors.
fn start_tuner(config: &Config) -> Option<Tuner> {
    match Tuner::from_config(
        &config.tuner,
        &config.ollama,
        &config.agent.state_dir,
        &config.host.proc_root,
    ) {
        Ok(mut t) => {
            t.set_cgroup_root(&config.host.sys_root.join("fs/cgroup"));
            Some(t)
        }
        Err(e) => {
            warn!(error = %e, "Ollama tuner not started; monitoring goes on.");
            None
        }
    }
}

fn new_ticker(interval: Duration) -> Ticker {
    Ticker::starting_at(Instant::now(), interval)
}

/// The ticker for a new `interval`: its first tick is one new interval after the last tick (at
/// once if that is past), never a full interval after the reload, so reloads in a row cannot
/// hold ticks off.
fn ticker_after(last_tick: Option<Instant>, interval: Duration) -> Ticker {
    let now = Instant::now();
    let first = last_tick.map_or(now, |t| (t + interval).max(now));
    Ticker::starting_at(first, interval)
}

/// Returns true when a new config took effect.
fn reload(live: &mut Live, path: Option<&PathBuf>, source: ReloadSource) -> bool {
    let Some(path) = path else {
        info!("Reload asked, but no config file is in use; built-in defaults stay.");
        return false;
    };
    match config::load_file(path) {
        Ok(new) if new == live.config => {
            debug!(config = %path.display(), ?source, "Config unchanged.");
            false
        }
        Ok(new) => {
            live.replace(new);
            info!(config = %path.display(), ?source, "Config reloaded; in force from the next tick.");
            true
        }
        Err(e) => {
            error!(config = %path.display(), ?source, "Config rejected; the last good config stays in force:\n{e}");
            false
        }
    }
}

/// What the daemon tells systemd: READY=1 after the first complete snapshot, STATUS= with the
/// collectors' states when they change, WATCHDOG=1 every tick when the unit sets WatchdogSec.
/// Outside systemd (no NOTIFY_SOCKET) nothing is built: every tick formatted the status line
/// for nobody (issue 20).
struct Notifier {
    enabled: bool,
    ready: bool,
    watchdog: bool,
    last_status: String,
}

impl Notifier {
    fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            ready: false,
            watchdog: sd_notify::watchdog_enabled().is_some(),
            last_status: String::new(),
        }
    }

    fn on_tick(&mut self, snapshot: &Snapshot) {
        if !self.enabled {
            return;
        }
        let status = snapshot
            .collectors
            .iter()
            .map(|c| format!("{} {:?}", c.collector, c.health).to_lowercase())
            .collect::<Vec<_>>()
            .join(", ");
        let status = format!("{} points; {status}", snapshot.points.len());
        let mut states = Vec::with_capacity(3);
        if status != self.last_status {
            states.push(sd_notify::NotifyState::Status(&status));
        }
        if !self.ready {
            states.push(sd_notify::NotifyState::Ready);
        }
        if self.watchdog {
            states.push(sd_notify::NotifyState::Watchdog);
        }
        if states.is_empty() {
            return;
        }
        match sd_notify::notify(&states) {
            Ok(()) => {
                self.ready = true;
                drop(states);
                self.last_status = status;
            }
            Err(e) => debug!(error = %e, "sd_notify failed."),
        }
    }
}
