//! One Alertmanager member's delivery task: it posts its queue of alert changes (acknowledging
//! what the member accepted), and every resend interval re-asserts every firing alert, so the
//! member never resolves one on its own (`resolve_timeout`) while it still fires. After an
//! outage it resends at once: a member that restarted has forgotten the alerts it held
//! (Alertmanager keeps silences and the notification log on disk, not alerts).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::ledger::Ledger;
use super::payload::{self, BATCH, PostableAlert, Source};
use crate::exporters::diagnosis::{chain, refusal};
use crate::exporters::logs::Backoff;
use crate::rules::event::AlertEvent;
use crate::sys::time::wall_ms;

/// How a request authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

/// What every member's task shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub ledger: Arc<Mutex<Ledger>>,
    pub client: reqwest::Client,
    pub auth: Auth,
    pub source: Arc<Source>,
    pub resend: Duration,
    pub max_age: Duration,
    /// Failed requests to any member (hostwarden.alertmanager.failures).
    pub failures: Arc<AtomicU64>,
}

pub fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    // A panic while holding the lock leaves a consistent ledger: keep using it.
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct Member {
    /// The member's index in the ledger's queues.
    pub index: usize,
    /// `<url>/api/v2/alerts`.
    pub endpoint: reqwest::Url,
    pub shared: Shared,
}

impl Member {
    /// Posts until the wake-up channel closes (shutdown).
    pub async fn run(self, mut wake: watch::Receiver<u64>) {
        // Cap the retry delay by the resend interval: an outage is retried at least that often.
        let mut backoff = Backoff::new(self.shared.resend.min(Duration::from_secs(30)));
        // A fresh start re-asserts what fires: the member may have restarted meanwhile.
        let mut next_resend = Instant::now();
        let mut failing = false;
        loop {
            match self.step(&mut next_resend).await {
                Ok(worked) => {
                    backoff.reset();
                    if failing {
                        info!(url = %self.endpoint, "Alertmanager reachable again; queued alerts delivered, firing alerts re-sent.");
                        failing = false;
                        next_resend = Instant::now();
                        continue;
                    }
                    if !worked {
                        tokio::select! {
                            changed = wake.changed() => if changed.is_err() { return },
                            () = tokio::time::sleep_until(next_resend) => {}
                        }
                    }
                }
                Err(e) => {
                    self.shared.failures.fetch_add(1, Ordering::Relaxed);
                    let queued = {
                        let mut l = lock(&self.shared.ledger);
                        l.failed(self.index, e.clone(), wall_ms());
                        l.queues()[self.index].outbox.depth()
                    };
                    if failing {
                        debug!(url = %self.endpoint, queued, error = %e, "Alertmanager delivery failed.");
                    } else {
                        warn!(url = %self.endpoint, queued, error = %e, "Alertmanager delivery failed; alerts wait in its queue and are retried.");
                        failing = true;
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                    if wake.has_changed().is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Posts the oldest queued changes, or, when the queue is empty and a resend is due, every
    /// firing alert. Ok(false) when there was nothing to do; Err when the member should be
    /// retried later.
    async fn step(&self, next_resend: &mut Instant) -> Result<bool, String> {
        let cutoff = wall_ms().saturating_sub(ms(self.shared.max_age));
        let batch = lock(&self.shared.ledger).batch(self.index, cutoff, BATCH);
        if let Some(last) = batch.last().map(|e| e.id) {
            match self.post(&batch).await {
                Ok(()) => {}
                Err(f) if f.refused => self.refused(&f.text),
                Err(f) => return Err(f.text),
            }
            lock(&self.shared.ledger).ack(self.index, last, batch.len(), wall_ms());
            return Ok(true);
        }
        if Instant::now() < *next_resend {
            return Ok(false);
        }
        let firing = lock(&self.shared.ledger).firing();
        for chunk in firing.chunks(BATCH) {
            match self.post(chunk).await {
                Ok(()) => {}
                Err(f) if f.refused => self.refused(&f.text),
                Err(f) => return Err(f.text),
            }
        }
        if !firing.is_empty() {
            lock(&self.shared.ledger).succeeded(self.index, wall_ms());
        }
        *next_resend = Instant::now() + self.shared.resend;
        Ok(!firing.is_empty())
    }

    /// A request the member refused for its content (400 Bad Request: Alertmanager stores the
    /// valid alerts of a batch and refuses the batch if any is invalid). Sending it again would
    /// be refused again and block the queue behind it, so it counts as a failure and goes.
    fn refused(&self, text: &str) {
        self.shared.failures.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.ledger).failed(self.index, text.to_owned(), wall_ms());
        warn!(url = %self.endpoint, error = %text, "Alertmanager refused alerts; they are not sent again.");
    }

    async fn post(&self, events: &[AlertEvent]) -> Result<(), Failure> {
        let alerts: Vec<PostableAlert> = events
            .iter()
            .map(|e| payload::alert(e, &self.shared.source))
            .collect();
        let body = serde_json::to_vec(&alerts).map_err(|e| Failure {
            text: e.to_string(),
            refused: true,
        })?;
        let mut request = self
            .shared
            .client
            .post(self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        request = match &self.shared.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        };
        let response = request.send().await.map_err(|e| Failure {
            text: chain(&e),
            refused: false,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(Failure {
            text: refusal(status.as_u16(), &text),
            // Only a 400 says "this content, never": 401/403 may be fixed by the operator, 5xx
            // and 429 pass.
            refused: status == reqwest::StatusCode::BAD_REQUEST,
        })
    }
}

/// A failed request, and whether the member refused its content (not worth sending again).
struct Failure {
    text: String,
    refused: bool,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
