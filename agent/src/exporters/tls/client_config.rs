//! The TLS client keys `[export.otlp]` and `[export.alertmanager]` share: `certificate`,
//! `client_certificate` and `client_key`, written once here and checked once by
//! [`super::check_files`].

use std::path::PathBuf;

/// The PEM files a client's TLS uses, as a section's keys give them (and, for OTLP, as a
/// signal resolves them with the `OTEL_*` variables); all unset means the system's trust store
/// and no client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClientConfig {
    /// CA certificate(s) the server's certificate must chain to.
    pub certificate: Option<PathBuf>,
    /// Client certificate (chain) for mTLS.
    pub client_certificate: Option<PathBuf>,
    /// The client certificate's private key.
    pub client_key: Option<PathBuf>,
}

impl TlsClientConfig {
    pub fn is_empty(&self) -> bool {
        self == &TlsClientConfig::default()
    }
}

/// Declares a config section struct with the TLS client keys as fields of its own, after the
/// ones given, and `tls()`, which gathers them into a [`TlsClientConfig`].
///
/// Not a `#[serde(flatten)]` field: serde reads a flattened struct from a buffer of the keys
/// the section does not know, so a mistyped key or a wrong value there would be reported
/// against the section's header, without the key, its line or the list of valid keys.
macro_rules! tls_client_section {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        pub struct $name {
            $($fields)*
            /// CA certificate file (PEM) the server's certificate must chain to, instead of
            /// the system's trust store. https:// only.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub certificate: Option<std::path::PathBuf>,
            /// Client certificate file (PEM) for mTLS; needs client_key.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub client_certificate: Option<std::path::PathBuf>,
            /// The client certificate's private key (PEM, PKCS#8, PKCS#1 or SEC1).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub client_key: Option<std::path::PathBuf>,
        }

        impl $name {
            /// The section's TLS keys.
            pub fn tls(&self) -> $crate::exporters::tls::TlsClientConfig {
                $crate::exporters::tls::TlsClientConfig {
                    certificate: self.certificate.clone(),
                    client_certificate: self.client_certificate.clone(),
                    client_key: self.client_key.clone(),
                }
            }
        }
    };
}
pub(crate) use tls_client_section;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::parse_str;

    fn errors(text: &str) -> String {
        parse_str(text, Path::new("/etc/x.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn both_sections_read_the_same_keys() {
        let text = "[export.otlp]\nendpoint = \"https://c:4318\"\n\
                    [export.alertmanager]\nurls = [\"https://a:9093\"]\n";
        let ca = "certificate = \"/nonexistent/ca.pem\"\n";
        let otlp = errors(&text.replacen("\n[", &format!("\n{ca}["), 1));
        assert!(
            otlp.starts_with("/etc/x.toml:3:15: export.otlp.certificate: cannot read "),
            "{otlp}"
        );
        let am = errors(&format!("{text}{ca}"));
        assert!(
            am.starts_with("/etc/x.toml:5:15: export.alertmanager.certificate: cannot read "),
            "{am}"
        );
        let config = parse_str(text, Path::new("x")).unwrap();
        assert!(config.export.otlp.tls().is_empty());
        assert!(config.export.alertmanager.tls().is_empty());
    }

    #[test]
    fn a_wrong_value_or_a_typo_is_located_at_its_own_key() {
        let wrong = errors("[export.alertmanager]\nurls = []\nclient_key = 5\n");
        assert!(
            wrong.starts_with("/etc/x.toml:3:14: export.alertmanager.client_key: invalid type"),
            "{wrong}"
        );
        let typo = errors("[export.otlp]\nclient_keys = \"/k\"\n");
        assert!(
            typo.starts_with("/etc/x.toml:2:1: export.otlp.client_keys: unknown field"),
            "{typo}"
        );
        assert!(typo.contains("`client_key`"), "{typo}");
    }

    #[test]
    fn tls_gathers_the_section_keys() {
        let text = "[export.alertmanager]\nurls = [\"http://a:9093\"]\nclient_key = \"/k\"\n";
        // Refused beside an http:// URL, but parsed into the one struct first.
        assert!(errors(text).contains("export.alertmanager.client_key: is set, but"));
        let c = crate::exporters::alertmanager::config::AlertmanagerConfig {
            client_key: Some(PathBuf::from("/k")),
            ..Default::default()
        };
        assert_eq!(c.tls().client_key, Some(PathBuf::from("/k")));
        assert_eq!(c.tls().certificate, None);
    }
}
