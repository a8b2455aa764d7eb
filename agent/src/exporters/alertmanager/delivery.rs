//! One Alertmanager member's delivery task: it posts its queue of alert changes (acknowledging
//! what the member accepted), and every resend interval re-asserts every firing alert, so the
//! member never resolves one on its own (`resolve_timeout`) while it still fires. After an
//! outage it resends at once: a member that restarted has forgotten the alerts it held
//! (Alertmanager keeps silences and the notification log on disk, not alerts).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::ledger::Ledger;
use super::payload::{self, BATCH, PostableAlert, Source};
use crate::exporters::diagnosis::{chain, refusal};
use crate::exporters::logs::Backoff;
use crate::rules::event::AlertEvent;
use crate::sys::http::Client;
use crate::sys::time::wall_ms;

/// How a request authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

impl Auth {
    /// The `Authorization` value, marked sensitive (kept out of hyper's debug output); an
    /// error when the password or token holds what no header may (a line break).
    fn header(&self) -> Result<Option<HeaderValue>, String> {
        let text = match self {
            Auth::None => return Ok(None),
            Auth::Basic { username, password } => {
                format!(
                    "Basic {}",
                    STANDARD.encode(format!("{username}:{password}"))
                )
            }
            Auth::Bearer(token) => format!("Bearer {token}"),
        };
        let mut value = HeaderValue::try_from(text)
            .map_err(|_| "the Alertmanager credentials cannot be sent in a header".to_owned())?;
        value.set_sensitive(true);
        Ok(Some(value))
    }
}

/// What every member's task shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub ledger: Arc<Mutex<Ledger>>,
    pub client: Client,
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
    pub endpoint: Uri,
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
        let mut request = Request::new(Bytes::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.endpoint.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(value) = self.shared.auth.header().map_err(|text| Failure {
            text,
            refused: false,
        })? {
            headers.insert(AUTHORIZATION, value);
        }
        let response = self
            .shared
            .client
            .send(request)
            .await
            .map_err(|e| Failure {
                text: chain(&e),
                refused: false,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(Failure {
            text: refusal(status.as_u16(), &String::from_utf8_lossy(response.body())),
            // Only a 400 says "this content, never": 401/403 may be fixed by the operator, 5xx
            // and 429 pass.
            refused: status == StatusCode::BAD_REQUEST,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_become_an_authorization_header() {
        let basic = Auth::Basic {
            username: "user".into(),
            password: "pass".into(),
        };
        let value = basic.header().unwrap().unwrap();
        assert_eq!(value, "Basic dXNlcjpwYXNz");
        assert!(value.is_sensitive());
        let bearer = Auth::Bearer("t0ken".into()).header().unwrap().unwrap();
        assert_eq!(bearer, "Bearer t0ken");
        assert_eq!(Auth::None.header(), Ok(None));
        assert!(Auth::Bearer("a\nb".into()).header().is_err());
    }
}
