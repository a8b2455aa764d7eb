//! The Alertmanager sink: firing alerts posted to `/api/v2/alerts` of every configured member,
//! re-sent while they fire, resolved with `endsAt`. The daemon feeds it each tick (`observe`);
//! the ledger keeps the firing set and a durable queue per member; one task per member
//! delivers (see `delivery`).

pub mod config;
mod delivery;
mod ledger;
pub mod payload;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use self::config::AlertmanagerConfig;
use self::delivery::{Auth, Member, Shared, lock};
use self::ledger::{Ledger, SavedLedger};
use self::payload::Source;
use super::tls::{self, TlsError};
use crate::rules::ActiveAlert;
use crate::rules::event::AlertEvent;
use crate::rules::persist;
use crate::status::AlertmanagerReport;
use crate::sys::http::url;
use crate::sys::time::wall_ms;

/// The sink's file inside `[agent] state_dir`.
pub const STATE_FILE: &str = "alertmanager.json";

pub struct Alertmanager {
    ledger: Arc<Mutex<Ledger>>,
    wake: watch::Sender<u64>,
    tasks: Vec<JoinHandle<()>>,
    path: PathBuf,
    saved_generation: Mutex<u64>,
    failures: Arc<AtomicU64>,
}

impl Alertmanager {
    /// Restores the ledger from `state_dir` and starts one delivery task per URL. Fails only on
    /// TLS files that cannot be used (validation has checked them; they may have changed).
    pub fn start(
        config: &AlertmanagerConfig,
        state_dir: &Path,
        source: Source,
    ) -> Result<Self, TlsError> {
        let files = config.tls();
        let loaded = if files.is_empty() {
            None
        } else {
            Some(tls::load(&files)?)
        };
        let client = super::http_client::client(loaded.as_ref(), config.request_timeout())?;
        let path = state_dir.join(STATE_FILE);
        let saved = match persist::load::<SavedLedger>(&path) {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                warn!(error = %e, "Alertmanager queue unreadable; starting empty.");
                SavedLedger::default()
            }
        };
        let ledger = Ledger::new(&config.urls, config.capacity(), saved);
        let saved_generation = Mutex::new(ledger.generation());
        let ledger = Arc::new(Mutex::new(ledger));
        let failures = Arc::new(AtomicU64::new(0));
        let shared = Shared {
            ledger: Arc::clone(&ledger),
            client,
            auth: auth(config),
            source: Arc::new(source),
            resend: config.resend(),
            max_age: config.age_limit(),
            failures: Arc::clone(&failures),
        };
        let (wake, _) = watch::channel(0u64);
        let mut tasks = Vec::new();
        for (index, url) in config.urls.iter().enumerate() {
            let Some(endpoint) = endpoint(url) else {
                warn!(url = %url, "Not a base URL; no alerts go there.");
                continue;
            };
            let member = Member {
                index,
                endpoint,
                shared: shared.clone(),
            };
            tasks.push(tokio::spawn(member.run(wake.subscribe())));
        }
        info!(urls = ?config.urls, resend = %humantime::format_duration(config.resend()), "Alertmanager sink started.");
        Ok(Alertmanager {
            ledger,
            wake,
            tasks,
            path,
            saved_generation,
            failures,
        })
    }

    /// Takes a tick's alert events and the alerts active after it; wakes the members when
    /// something was queued, and saves the ledger when it changed.
    pub fn observe(&self, events: &[AlertEvent], active: &[ActiveAlert]) {
        let queued = lock(&self.ledger).observe(wall_ms(), events, active);
        if queued {
            self.wake.send_modify(|n| *n = n.wrapping_add(1));
        }
        self.save_if_changed();
    }

    fn save_if_changed(&self) {
        let mut last = self
            .saved_generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Copied out only when it changed: a tick with nothing new costs no clone.
        let (generation, saved) = {
            let l = lock(&self.ledger);
            if l.generation() == *last {
                return;
            }
            (l.generation(), l.to_saved())
        };
        match persist::save(&self.path, &saved) {
            Ok(()) => *last = generation,
            Err(e) => {
                warn!(error = %e, "Alertmanager queue not saved; it will not survive a restart.");
            }
        }
    }

    /// Failed requests to any member.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Per member: queue, last success, last error.
    pub fn report(&self) -> Vec<AlertmanagerReport> {
        let l = lock(&self.ledger);
        let firing = l.firing().len() as u64;
        l.queues()
            .iter()
            .map(|q| AlertmanagerReport {
                url: q.url.clone(),
                firing,
                pending: q.outbox.depth() as u64,
                dropped: q.outbox.dropped(),
                delivered: q.delivery.delivered,
                failures: q.delivery.failures,
                last_success_ms: q.delivery.last_success_ms,
                last_error: q.delivery.last_error.clone(),
                last_error_ms: q.delivery.last_error_ms,
            })
            .collect()
    }

    /// Stops the members and saves what is still queued.
    pub fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.save_if_changed();
    }
}

fn auth(config: &AlertmanagerConfig) -> Auth {
    match (&config.username, &config.password, &config.bearer_token) {
        (Some(username), Some(password), _) => Auth::Basic {
            username: username.clone(),
            password: password.clone(),
        },
        (_, _, Some(token)) => Auth::Bearer(token.clone()),
        _ => Auth::None,
    }
}

/// `<base>/api/v2/alerts`, keeping a path prefix the base may have (a member behind a proxy).
fn endpoint(base: &str) -> Option<http::Uri> {
    url::join(&url::parse(base).ok()?, "/api/v2/alerts").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_keeps_a_path_prefix() {
        assert_eq!(
            endpoint("http://127.0.0.1:9093").unwrap().to_string(),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
        assert_eq!(
            endpoint("https://am.example/alertmanager/")
                .unwrap()
                .to_string(),
            "https://am.example/alertmanager/api/v2/alerts"
        );
    }
}
