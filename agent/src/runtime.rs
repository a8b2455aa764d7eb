//! The daemon's life: ticks, reloads, signals, systemd notification and shutdown. Collection,
//! rules and export are called from here; each lives in its own module.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::cli::ViewMode;
use crate::collectors::ollama::OllamaHooks;
use crate::collectors::{self, Collector};
use crate::config::{self, Config, ReloadEvent, ReloadSource};
use crate::exporters::telemetry::Telemetry;
use crate::model::Snapshot;
use crate::rules::Alerting;
use crate::status::{ActuationReport, AlertReport};
use crate::sys::systemd;
use crate::sys::time::wall_ms;
use crate::tuner::driver::Tuner;
use crate::tuner::observe::{Advice, TunerObserver, advise};
use crate::view;

/// What `hostwarden run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config_path: Option<PathBuf>,
    pub view: ViewMode,
    /// Stop after this many ticks.
    pub ticks: Option<u64>,
}

/// One collection for `hostwarden once`. CPU utilisation needs two readings, so the collectors
/// are read twice, a quarter second apart, and the second reading is returned.
pub async fn once(config: &Config) -> Snapshot {
    once_report(config).await.snapshot
}

/// What `hostwarden once` prints: the snapshot and, when Ollama answered, the tuner's advice.
#[derive(Debug, serde::Serialize)]
pub struct OnceReport {
    #[serde(flatten)]
    pub snapshot: Snapshot,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuner: Option<Advice>,
}

/// `once`, with the tuner's recommendation from the same collection.
pub async fn once_report(config: &Config) -> OnceReport {
    let hooks = OllamaHooks {
        unit_source: systemd::client_for(&config.tuner.bus),
        ..OllamaHooks::default()
    };
    let mut list = collectors::from_config_with(config.collectors(), &hooks);
    let deadline = config.collector_deadline();
    let _first = collectors::collect_all(&mut list, deadline, wall_ms()).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let snapshot = collectors::collect_all(&mut list, deadline, wall_ms()).await;
    let tuner = advise(&snapshot, hooks.view.latest().as_deref(), &config.tuner);
    OnceReport { snapshot, tuner }
}

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

/// Runs the daemon until SIGTERM/SIGINT (or `--ticks`).
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let (config, path) =
        config::load_or_default(opts.config_path.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    match &path {
        Some(p) => info!(config = %p.display(), "Config loaded."),
        None => info!(
            "No config file at {}; built-in defaults in force.",
            config::DEFAULT_PATH
        ),
    }

    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadEvent>(1);
    // Kept alive for the daemon's life; dropping it stops the watch.
    let _watcher = match &path {
        Some(p) => match config::watch_config(p, reload_tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(config = %p.display(), error = %e, "Cannot watch the config; SIGHUP still reloads.");
                None
            }
        },
        None => None,
    };

    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

    let show_view = match opts.view {
        ViewMode::Always => true,
        ViewMode::Never => false,
        ViewMode::Auto => std::io::stderr().is_terminal() && config.export.otlp.endpoint.is_none(),
    };
    let clear_screen = show_view && std::io::stderr().is_terminal();
    let watchdog = sd_notify::watchdog_enabled();

    let mut alerting = Alerting::new(config.alerting());
    let mut live = Live::new(config);
    let mut tuner = start_tuner(&live.config);
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    let telemetry = Telemetry::start(
        &live.config.export.otlp,
        live.config.agent.interval,
        &live.config.agent.status_socket,
        &snap_rx,
        alerting.outbox(),
    );
    let mut ticker = new_ticker(live.config.agent.interval);
    let mut ticks: u64 = 0;
    let mut ready = false;

    loop {
        tokio::select! {
            _ = ticker.tick() => {
                ticks += 1;
                let started = Instant::now();
                let deadline = live.config.collector_deadline();
                let mut snapshot = collectors::collect_all(&mut live.collectors, deadline, wall_ms()).await;
                let advice = live.tuner.observe(&snapshot, &live.config.tuner).cloned();
                if let Some(t) = tuner.as_mut() {
                    // Only a unit systemd watches can be changed: advice-only stays advice.
                    let decision = advice.as_ref().filter(|a| !a.advice_only).map(|a| &a.decision);
                    let points = t.on_tick(snapshot.timestamp_ms, &snapshot, decision);
                    snapshot.points.extend(points);
                    for alert in t.take_alerts() {
                        alerting.raise(alert);
                    }
                }
                alerting.on_tick(Instant::now(), &mut snapshot);
                telemetry.finish_snapshot(&mut snapshot);
                debug!(tick = ticks, points = snapshot.points.len(), took_ms = started.elapsed().as_millis() as u64, "Tick.");
                if show_view {
                    let text = view::render_summary(&snapshot)
                        + &live.tuner.render()
                        + &view::render_alerts(&alerting.active());
                    if clear_screen {
                        eprint!("\x1b[H\x1b[2J{text}");
                    } else {
                        eprint!("{text}");
                    }
                }
                notify_systemd(&snapshot, &mut ready, watchdog.is_some());
                let mut report = telemetry.status_report(&snapshot);
                report.alerts = alerting.active().iter().map(AlertReport::from).collect();
                if let Some(t) = tuner.as_ref() {
                    report.actuations = t.last_actions(10).iter().map(ActuationReport::from).collect();
                }
                telemetry.publish_status(report);
                snap_tx.send_replace(Arc::new(snapshot));
                if opts.ticks.is_some_and(|n| ticks >= n) {
                    break;
                }
            }
            Some(ev) = reload_rx.recv() => {
                // Editors write in several steps: let them finish before reading the file.
                tokio::time::sleep(Duration::from_millis(150)).await;
                while reload_rx.try_recv().is_ok() {}
                if reload(&mut live, path.as_ref(), ev.source, &mut ticker) {
                    alerting.replace_config(live.config.alerting());
                    if let Some(t) = tuner.as_mut() { t.reconfigure(&live.config.tuner); }
                }
            }
            _ = sighup.recv() => {
                if reload(&mut live, path.as_ref(), ReloadSource::Signal, &mut ticker) {
                    alerting.replace_config(live.config.alerting());
                    if let Some(t) = tuner.as_mut() { t.reconfigure(&live.config.tuner); }
                }
            }
            _ = sigterm.recv() => { info!("SIGTERM received; stopping."); break; }
            _ = sigint.recv() => { info!("SIGINT received; stopping."); break; }
        }
    }
    alerting.save_all();
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Stopping]) {
        debug!(error = %e, "sd_notify failed.");
    }
    telemetry.shutdown().await;
    Ok(())
}

/// The Ollama tuner; without its state dir (no permission) the agent still monitors.
fn start_tuner(config: &Config) -> Option<Tuner> {
    match Tuner::from_config(
        &config.tuner,
        &config.ollama,
        &config.agent.state_dir,
        &config.host.proc_root,
    ) {
        Ok(t) => Some(t),
        Err(e) => {
            warn!(error = %e, "Ollama tuner not started; monitoring goes on.");
            None
        }
    }
}

fn new_ticker(interval: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(interval);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// Returns true when a new config took effect.
fn reload(
    live: &mut Live,
    path: Option<&PathBuf>,
    source: ReloadSource,
    ticker: &mut tokio::time::Interval,
) -> bool {
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
            let interval_changed = new.agent.interval != live.config.agent.interval;
            live.replace(new);
            if interval_changed {
                *ticker = new_ticker(live.config.agent.interval);
                ticker.reset();
            }
            info!(config = %path.display(), ?source, "Config reloaded; in force from the next tick.");
            true
        }
        Err(e) => {
            error!(config = %path.display(), ?source, "Config rejected; the last good config stays in force:\n{e}");
            false
        }
    }
}

/// READY=1 after the first complete snapshot, STATUS= with the collectors' states, WATCHDOG=1
/// every tick when the unit sets WatchdogSec. Outside systemd these are no-ops.
fn notify_systemd(snapshot: &Snapshot, ready: &mut bool, watchdog: bool) {
    let status = snapshot
        .collectors
        .iter()
        .map(|c| format!("{} {:?}", c.collector, c.health).to_lowercase())
        .collect::<Vec<_>>()
        .join(", ");
    let status = format!("{} points; {status}", snapshot.points.len());
    let mut states = vec![sd_notify::NotifyState::Status(&status)];
    if !*ready {
        states.push(sd_notify::NotifyState::Ready);
        *ready = true;
    }
    if watchdog {
        states.push(sd_notify::NotifyState::Watchdog);
    }
    if let Err(e) = sd_notify::notify(&states) {
        debug!(error = %e, "sd_notify failed.");
    }
}
