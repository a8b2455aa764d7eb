//! `[export.alertmanager]`: the Alertmanager(s) that firing alerts are posted to. An empty
//! `urls` means no sink. Several URLs are the members of one HA cluster: each gets every alert,
//! as Prometheus sends to every member, and the cluster deduplicates the notifications.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exporters::tls::{self, tls_client_section};
use crate::fields::{FieldError, check_duration};

/// Firing alerts are re-sent this often unless set: well inside Alertmanager's default
/// `resolve_timeout` (5m), after which an alert that is not re-sent counts as resolved.
pub const DEFAULT_RESEND: Duration = Duration::from_secs(60);
/// Alertmanager's default `resolve_timeout`; the resend interval must stay below it.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Alert changes queued per Alertmanager while it cannot be reached.
pub const DEFAULT_QUEUE: usize = 1_000;
/// Queued changes older than this are dropped (counted): a resolve from yesterday pages no one.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

tls_client_section! {
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Base URLs, e.g. `http://127.0.0.1:9093`; alerts go to `<url>/api/v2/alerts`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// How often firing alerts are re-sent (default 1m, below 5m).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub resend_interval: Option<Duration>,
    /// One request's timeout (default 10s).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Alert changes kept per URL while it is unreachable (default 1000); the oldest go first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,
    /// Queued changes older than this are dropped (default 24h).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Basic authentication user name; needs `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Sent as `Authorization: Bearer <token>`; not together with basic authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
}
}

impl AlertmanagerConfig {
    pub fn is_enabled(&self) -> bool {
        !self.urls.is_empty()
    }

    pub fn resend(&self) -> Duration {
        self.resend_interval.unwrap_or(DEFAULT_RESEND)
    }

    pub fn request_timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn capacity(&self) -> usize {
        self.queue_capacity.unwrap_or(DEFAULT_QUEUE)
    }

    pub fn age_limit(&self) -> Duration {
        self.max_age.unwrap_or(DEFAULT_MAX_AGE)
    }

    /// Checks relative to `[export.alertmanager]`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (i, url) in self.urls.iter().enumerate() {
            let field = format!("urls[{i}]");
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                errors.push(FieldError::new(
                    field,
                    format!("\"{url}\" is not an http:// or https:// URL"),
                ));
            } else if crate::sys::http::url::parse(url).is_err() {
                errors.push(FieldError::new(field, format!("\"{url}\" is not a URL")));
            } else if self.urls[..i].contains(url) {
                errors.push(FieldError::new(field, format!("\"{url}\" is listed twice")));
            }
        }
        if let Some(r) = self.resend_interval {
            // Below 5m, Alertmanager's default resolve_timeout: a slower resend would let it
            // resolve an alert that is still firing.
            check_duration(
                &mut errors,
                "resend_interval",
                r,
                Duration::from_millis(500),
                RESOLVE_TIMEOUT - Duration::from_secs(1),
            );
        }
        if let Some(t) = self.timeout {
            check_duration(
                &mut errors,
                "timeout",
                t,
                Duration::from_millis(100),
                Duration::from_secs(120),
            );
        }
        if self.queue_capacity == Some(0) {
            errors.push(FieldError::new("queue_capacity", "must be at least 1"));
        }
        if let Some(a) = self.max_age {
            check_duration(
                &mut errors,
                "max_age",
                a,
                Duration::from_secs(1),
                Duration::from_secs(30 * 24 * 3600),
            );
        }
        self.validate_auth(&mut errors);
        let plaintext = self.urls.iter().find(|u| u.starts_with("http://"));
        tls::check_files(&mut errors, &self.tls(), plaintext.map(String::as_str));
        errors
    }

    fn validate_auth(&self, errors: &mut Vec<FieldError>) {
        if let Some(user) = &self.username
            && (user.contains(':') || user.chars().any(char::is_control))
        {
            errors.push(FieldError::new(
                "username",
                "must not contain ':' or control characters",
            ));
        }
        match (&self.username, &self.password) {
            (Some(_), None) => errors.push(FieldError::new("username", "is set without password")),
            (None, Some(_)) => errors.push(FieldError::new("password", "is set without username")),
            _ => {}
        }
        if self.bearer_token.is_some() && self.username.is_some() {
            errors.push(FieldError::new(
                "bearer_token",
                "set either bearer_token or username/password, not both",
            ));
        }
        // A token with CR/LF would split the request.
        if let Some(t) = &self.bearer_token
            && (t.is_empty() || http::HeaderValue::from_str(&format!("Bearer {t}")).is_err())
        {
            errors.push(FieldError::new(
                "bearer_token",
                "must be non-empty, without control characters",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_urls(urls: &[&str]) -> AlertmanagerConfig {
        AlertmanagerConfig {
            urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            ..AlertmanagerConfig::default()
        }
    }

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn defaults_resend_inside_the_resolve_timeout() {
        let c = with_urls(&["http://127.0.0.1:9093"]);
        assert!(c.validate().is_empty());
        assert!(c.resend() < RESOLVE_TIMEOUT);
    }

    #[test]
    fn refuses_bad_urls_and_duplicates() {
        let c = with_urls(&["ftp://x", "http://a:9093", "http://a:9093"]);
        assert_eq!(paths(&c.validate()), vec!["urls[0]", "urls[2]"]);
    }

    #[test]
    fn refuses_a_resend_at_or_beyond_five_minutes() {
        let mut c = with_urls(&["http://a:9093"]);
        c.resend_interval = Some(Duration::from_secs(300));
        assert_eq!(paths(&c.validate()), vec!["resend_interval"]);
        c.resend_interval = Some(Duration::from_secs(299));
        assert!(c.validate().is_empty());
    }

    #[test]
    fn auth_needs_both_halves_and_only_one_kind() {
        let mut c = with_urls(&["http://a:9093"]);
        c.username = Some("u".into());
        assert_eq!(paths(&c.validate()), vec!["username"]);
        c.password = Some("p".into());
        c.bearer_token = Some("t\r\nX: y".into());
        assert_eq!(paths(&c.validate()), vec!["bearer_token", "bearer_token"]);
    }

    #[test]
    fn tls_files_beside_plain_http_are_refused() {
        let mut c = with_urls(&["http://a:9093"]);
        c.certificate = Some("/etc/ca.pem".into());
        assert_eq!(paths(&c.validate()), vec!["certificate"]);
    }
}
