//! The one rustls crypto provider (ring: no OpenSSL, no aws-lc C build) and the client
//! configuration for connections that never use TLS. rustls has no process-wide provider
//! installed, so every client (the exporters', Ollama's) is handed a configuration.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};

/// The ring provider every TLS configuration of the agent is built with.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A configuration for clients that never connect with TLS (http:// endpoints, Ollama).
pub(crate) fn plaintext_config() -> Result<ClientConfig, rustls::Error> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}
