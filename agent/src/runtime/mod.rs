//! The daemon's life: ticks, reloads, signals, systemd notification and shutdown. Collection,
//! rules and export are called from here; each lives in its own module.

mod daemon;
mod ticker;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::join_all;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::cli::ViewMode;
use crate::collectors::{self, ollama::OllamaHooks};
use crate::config::{self, Config, ReloadEvent, ReloadSource};
use crate::model::Snapshot;
use crate::sys::systemd;
use crate::sys::time::wall_ms;
use crate::tuner::observe::{Advice, advise};
use daemon::Daemon;

/// How long after a file change the config is read: editors write in several steps.
const RELOAD_SETTLE: Duration = Duration::from_millis(150);

/// Waits until `due`, or forever when no reload is pending.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What `hostwarden run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config_path: Option<PathBuf>,
    pub view: ViewMode,
    /// Stop after this many ticks.
    pub ticks: Option<u64>,
}

/// Pool I/O interval of `hostwarden once`, whatever `[zfs] iostat_interval` says: the figures
/// of `zpool iostat -y 1 1`, for one second more on a ZFS host.
const ONCE_IOSTAT_INTERVAL: Duration = Duration::from_secs(1);

/// One collection for `hostwarden once`. CPU utilisation needs two readings, so the collectors
/// are read twice, a quarter second apart (on a ZFS host, once the iostat child has reported one
/// interval), and the second reading is returned.
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
    let zfs = crate::collectors::zfs::ZfsConfig {
        iostat_interval: ONCE_IOSTAT_INTERVAL,
        ..config.zfs.clone()
    };
    let mut sections = config.collectors();
    sections.zfs = &zfs;
    let mut list = collectors::from_config_with(sections, &hooks);
    let deadline = config.collector_deadline();
    let _first = collectors::collect_all(&mut list, deadline, wall_ms()).await;
    let settle = join_all(list.iter_mut().map(|c| c.settle(deadline)));
    tokio::join!(tokio::time::sleep(Duration::from_millis(250)), settle);
    let snapshot = collectors::collect_all(&mut list, deadline, wall_ms()).await;
    let tuner = advise(&snapshot, hooks.view.latest().as_deref(), &config.tuner);
    OnceReport { snapshot, tuner }
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
    let _watcher = path.as_ref().and_then(|p| {
        config::watch_config(p, reload_tx.clone())
            .map_err(|e| warn!(config = %p.display(), error = %e, "Cannot watch the config; SIGHUP still reloads."))
            .ok()
    });
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut daemon = Daemon::start(config, path, opts.view);
    // A file change is read once the editor is done writing; the wait is a deadline in the
    // loop, not a sleep, so ticks due meanwhile are not held up.
    let mut reload_due: Option<(Instant, ReloadSource)> = None;
    loop {
        let due = reload_due.map(|(at, _)| at);
        tokio::select! {
            at = daemon.ticker.tick() => {
                daemon.on_tick(at).await;
                if opts.ticks.is_some_and(|n| daemon.ticks >= n) {
                    break;
                }
            }
            Some(ev) = reload_rx.recv() => {
                // Editors write in several steps: let them finish before reading the file.
                reload_due.get_or_insert((Instant::now() + RELOAD_SETTLE, ev.source));
            }
            () = sleep_until_due(due) => {
                if let Some((_, source)) = reload_due.take() {
                    daemon.on_reload(source);
                }
            }
            _ = sighup.recv() => daemon.on_reload(ReloadSource::Signal),
            _ = sigterm.recv() => { info!("SIGTERM received; stopping."); break; }
            _ = sigint.recv() => { info!("SIGINT received; stopping."); break; }
        }
    }
    daemon.stop().await;
    Ok(())
}
