//! `[export.prometheus]`: the scrape endpoint. Unset `listen` means no endpoint.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use super::auth::PasswordHash;
use crate::fields::FieldError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Address and port to serve `/metrics` on, e.g. `127.0.0.1:9464`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Basic authentication: user name -> `sha256:<hex>` of the password. Empty means none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub basic_auth_users: BTreeMap<String, PasswordHash>,
}

impl PrometheusConfig {
    /// Checks relative to `[export.prometheus]`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for user in self.basic_auth_users.keys() {
            // Basic auth joins user and password with the first ':'.
            if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    format!("basic_auth_users.{user}"),
                    "a user name must be non-empty, without ':' or control characters",
                ));
            }
        }
        errors
    }
}
