//! TLS for OTLP export, with rustls and its ring provider (no OpenSSL at run time). Loads the
//! PEM files `[export.otlp]` or the `OTEL_EXPORTER_OTLP_*CERTIFICATE`/`*CLIENT_KEY` variables
//! name, checks them the way a handshake would (a CA that parses, a key that matches its
//! certificate), and builds from them the rustls `ClientConfig` of the HTTP client, which
//! carries both protocols (its ALPN set by the client: HTTP/1.1, or h2 for gRPC).
//!
//! Trust: the CA file when one is set (only it: a private collector's CA should not widen to
//! every public CA, as the Go and Java SDKs do), else the system's trust store.

use std::path::{Path, PathBuf};

use rustls::InconsistentKeys;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

mod client_config;

pub use client_config::TlsClientConfig;
pub(crate) use client_config::tls_client_section;

/// Which file a problem is in, by its config field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsField {
    Certificate,
    ClientCertificate,
    ClientKey,
}

impl TlsField {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsField::Certificate => "certificate",
            TlsField::ClientCertificate => "client_certificate",
            TlsField::ClientKey => "client_key",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        field: TlsField,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { field: TlsField, path: PathBuf },
    #[error("{} holds no PEM private key", path.display())]
    NoKey { field: TlsField, path: PathBuf },
    #[error("{} is not a usable {what}: {reason}", path.display())]
    Invalid {
        field: TlsField,
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("the key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{} is set but {} is not: mTLS needs both", present.as_str(), missing.as_str())]
    HalfPair {
        present: TlsField,
        missing: TlsField,
    },
    #[error("the system's trust store has no usable certificate ({0}); set certificate")]
    NoSystemRoots(String),
    #[error("cannot build the TLS client: {0}")]
    Config(String),
}

impl TlsError {
    /// The config field the error is about.
    pub fn field(&self) -> TlsField {
        match self {
            TlsError::Read { field, .. }
            | TlsError::NoCertificate { field, .. }
            | TlsError::NoKey { field, .. }
            | TlsError::Invalid { field, .. } => *field,
            TlsError::KeyMismatch { .. } => TlsField::ClientKey,
            TlsError::HalfPair { present, .. } => *present,
            TlsError::NoSystemRoots(_) | TlsError::Config(_) => TlsField::Certificate,
        }
    }
}

/// The files' contents, parsed and checked.
#[derive(Debug)]
pub struct Loaded {
    /// The CA file's certificates, when one is set.
    ca: Option<Vec<CertificateDer<'static>>>,
    identity: Option<ClientIdentity>,
}

/// The client certificate chain and key, parsed.
#[derive(Debug)]
struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

use crate::fields::{FieldError, check_absolute_dir};
use crate::sys::tls::provider;

/// Checks a section's TLS files as `check-config` and a reload must (an unreadable file, a CA
/// that does not parse, a key that does not match its certificate), so an exporter never fails
/// every request on them. `plaintext_url` is an http:// URL of the section, if any: TLS files
/// beside it would be silently unused, so they are refused.
pub fn check_files(
    errors: &mut Vec<FieldError>,
    files: &TlsClientConfig,
    plaintext_url: Option<&str>,
) {
    let set = [
        ("certificate", &files.certificate),
        ("client_certificate", &files.client_certificate),
        ("client_key", &files.client_key),
    ];
    let before = errors.len();
    for (field, path) in set {
        if let Some(p) = path {
            check_absolute_dir(errors, field, p);
        }
    }
    if errors.len() > before {
        return;
    }
    if let Some(url) = plaintext_url
        && let Some((field, _)) = set.iter().find(|(_, p)| p.is_some())
    {
        errors.push(FieldError::new(
            *field,
            format!("is set, but the endpoint \"{url}\" is plaintext http://; use https:// (or remove it)"),
        ));
        return;
    }
    if files.is_empty() {
        return;
    }
    if let Err(e) = load(files) {
        errors.push(FieldError::new(e.field().as_str(), e.to_string()));
    }
}

fn read(field: TlsField, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        field,
        path: path.to_owned(),
        source,
    })
}

fn certificates(field: TlsField, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            field,
            path: path.to_owned(),
            what: "PEM certificate file",
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            field,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads and checks the files: each parses, every CA certificate is one rustls accepts as a
/// trust anchor, the client key is one ring can sign with and matches the certificate.
pub fn load(files: &TlsClientConfig) -> Result<Loaded, TlsError> {
    let ca = match &files.certificate {
        Some(path) => {
            let certs = certificates(TlsField::Certificate, path)?;
            let mut roots = RootCertStore::empty();
            for c in &certs {
                roots.add(c.clone()).map_err(|e| TlsError::Invalid {
                    field: TlsField::Certificate,
                    path: path.clone(),
                    what: "CA certificate",
                    reason: e.to_string(),
                })?;
            }
            Some(certs)
        }
        None => None,
    };
    let identity = match (&files.client_certificate, &files.client_key) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(TlsError::HalfPair {
                present: TlsField::ClientCertificate,
                missing: TlsField::ClientKey,
            });
        }
        (None, Some(_)) => {
            return Err(TlsError::HalfPair {
                present: TlsField::ClientKey,
                missing: TlsField::ClientCertificate,
            });
        }
        (Some(cert_path), Some(key_path)) => {
            let chain = certificates(TlsField::ClientCertificate, cert_path)?;
            let key_pem = read(TlsField::ClientKey, key_path)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
                rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
                    field: TlsField::ClientKey,
                    path: key_path.clone(),
                },
                e => TlsError::Invalid {
                    field: TlsField::ClientKey,
                    path: key_path.clone(),
                    what: "PEM private key",
                    reason: e.to_string(),
                },
            })?;
            let signer = provider()
                .key_provider
                .load_private_key(key.clone_key())
                .map_err(|e| TlsError::Invalid {
                    field: TlsField::ClientKey,
                    path: key_path.clone(),
                    what: "private key",
                    reason: e.to_string(),
                })?;
            // Compares the key's public half with the certificate's (SubjectPublicKeyInfo).
            match CertifiedKey::new(chain.clone(), signer).keys_match() {
                Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
                Err(rustls::Error::InconsistentKeys(_)) => {
                    return Err(TlsError::KeyMismatch {
                        cert: cert_path.clone(),
                        key: key_path.clone(),
                    });
                }
                Err(e) => {
                    return Err(TlsError::Invalid {
                        field: TlsField::ClientCertificate,
                        path: cert_path.clone(),
                        what: "certificate",
                        reason: e.to_string(),
                    });
                }
            }
            Some(ClientIdentity { chain, key })
        }
    };
    Ok(Loaded { ca, identity })
}

/// A configuration for clients that never connect with TLS (http:// endpoints).
pub fn plaintext_config() -> Result<ClientConfig, TlsError> {
    crate::sys::tls::plaintext_config().map_err(|e| TlsError::Config(e.to_string()))
}

/// The system's trust store (the distribution's CA bundle, `SSL_CERT_FILE`/`SSL_CERT_DIR`).
fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(TlsError::NoSystemRoots(why));
    }
    Ok(roots)
}

impl Loaded {
    /// The rustls configuration for the HTTP client (which sets its own ALPN).
    pub fn rustls_config(&self) -> Result<ClientConfig, TlsError> {
        let roots = match &self.ca {
            Some(certs) => {
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(certs.iter().cloned());
                roots
            }
            None => system_roots()?,
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        match &self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| TlsError::Config(e.to_string())),
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tls")
            .join(name)
    }

    fn files(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> TlsClientConfig {
        TlsClientConfig {
            certificate: ca.map(fixture),
            client_certificate: cert.map(fixture),
            client_key: key.map(fixture),
        }
    }

    #[test]
    fn a_ca_and_a_matching_client_pair_build_a_config() {
        let loaded = load(&files(
            Some("ca.pem"),
            Some("client.pem"),
            Some("client.key"),
        ))
        .unwrap();
        let config = loaded.rustls_config().unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_refused() {
        let e = load(&files(None, Some("client.pem"), Some("other.key"))).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert_eq!(e.field(), TlsField::ClientKey);
        assert!(e.to_string().contains("other.key does not match"), "{e}");
    }

    #[test]
    fn a_key_file_is_not_a_certificate_and_a_certificate_is_not_a_key() {
        let e = load(&files(Some("client.key"), None, None)).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let e = load(&files(None, Some("client.pem"), Some("ca.pem"))).unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        assert_eq!(e.field(), TlsField::ClientKey);
    }

    #[test]
    fn half_a_client_pair_names_the_field_that_is_set() {
        let e = load(&files(None, None, Some("client.key"))).unwrap_err();
        assert_eq!(e.field(), TlsField::ClientKey);
        assert_eq!(
            e.to_string(),
            "client_key is set but client_certificate is not: mTLS needs both"
        );
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let e = load(&files(Some("absent.pem"), None, None)).unwrap_err();
        assert!(e.to_string().starts_with("cannot read "), "{e}");
        assert!(e.to_string().contains("absent.pem"), "{e}");
    }
}
