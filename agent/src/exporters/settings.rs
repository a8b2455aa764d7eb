//! Resolves what the exporter does from `[export.otlp]` and the standard `OTEL_*` variables.
//! Pure: the environment is passed in as a map, so every precedence rule has a unit test. The
//! file wins over the environment; a signal-specific variable (`..._METRICS_...`, `..._LOGS_...`)
//! wins over the general one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::config::{Compression, OtlpConfig, Protocol};
use super::tls::TlsClientConfig;

/// Export request timeout when neither the file nor the environment sets one (the spec's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment, as the variables the exporter reads.
pub type Env = BTreeMap<String, String>;

/// Reads the `OTEL_*` variables of this process (the only impure step).
pub fn process_env() -> Env {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("OTEL_"))
        .collect()
}

/// Where and how one signal (metrics or logs) is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalTarget {
    /// The full URL requests go to: for HTTP, a base endpoint has `/v1/metrics` or `/v1/logs`
    /// appended (as the spec does for OTEL_EXPORTER_OTLP_ENDPOINT); a signal-specific URL is
    /// used as it is.
    pub url: String,
    pub protocol: Protocol,
    pub timeout: Duration,
    pub headers: BTreeMap<String, String>,
    /// `None`: no compression.
    pub compression: Option<Compression>,
    /// Used for https:// URLs only.
    pub tls: TlsClientConfig,
}

/// The resolved export settings. A signal with no endpoint anywhere is `None`: not exported.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    pub metrics: Option<SignalTarget>,
    pub logs: Option<SignalTarget>,
    /// Metric export interval.
    pub interval: Duration,
}

impl ExportSettings {
    pub fn is_enabled(&self) -> bool {
        self.metrics.is_some() || self.logs.is_some()
    }
}

/// A variable that is set but unusable: reported once at start, then ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ignoring {var}={value:?}: {reason}")]
pub struct EnvWarning {
    pub var: String,
    pub value: String,
    pub reason: &'static str,
}

#[derive(Clone, Copy)]
enum Signal {
    Metrics,
    Logs,
}

impl Signal {
    fn var_part(self) -> &'static str {
        match self {
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }
    fn http_path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }
}

/// File first, then the environment; `default_interval` (agent.interval) when nothing sets
/// the export interval.
pub fn resolve(
    file: &OtlpConfig,
    env: &Env,
    default_interval: Duration,
) -> (ExportSettings, Vec<EnvWarning>) {
    let mut warnings = Vec::new();
    let interval = file.interval.unwrap_or_else(|| {
        millis(env, "OTEL_METRIC_EXPORT_INTERVAL", &mut warnings).unwrap_or(default_interval)
    });
    let metrics = resolve_signal(file, env, Signal::Metrics, &mut warnings);
    let logs = resolve_signal(file, env, Signal::Logs, &mut warnings);
    (
        ExportSettings {
            metrics,
            logs,
            interval,
        },
        warnings,
    )
}

fn resolve_signal(
    file: &OtlpConfig,
    env: &Env,
    signal: Signal,
    warnings: &mut Vec<EnvWarning>,
) -> Option<SignalTarget> {
    let sig = signal.var_part();
    let protocol = file.protocol.unwrap_or_else(|| {
        protocol_var(env, &format!("OTEL_EXPORTER_OTLP_{sig}_PROTOCOL"), warnings)
            .or_else(|| protocol_var(env, "OTEL_EXPORTER_OTLP_PROTOCOL", warnings))
            // The OTLP exporter specification's default.
            .unwrap_or(Protocol::HttpProtobuf)
    });
    let signal_url = get(env, &format!("OTEL_EXPORTER_OTLP_{sig}_ENDPOINT"));
    let url = match (&file.endpoint, signal_url) {
        (Some(base), _) => with_path(base, protocol, signal),
        (None, Some(url)) => url.to_owned(),
        (None, None) => with_path(get(env, "OTEL_EXPORTER_OTLP_ENDPOINT")?, protocol, signal),
    };
    let timeout = file.timeout.unwrap_or_else(|| {
        millis(env, &format!("OTEL_EXPORTER_OTLP_{sig}_TIMEOUT"), warnings)
            .or_else(|| millis(env, "OTEL_EXPORTER_OTLP_TIMEOUT", warnings))
            .unwrap_or(DEFAULT_TIMEOUT)
    });
    // Headers merge: general variable, then the signal's, then the file (last wins).
    let mut headers = BTreeMap::new();
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS".to_owned(),
        format!("OTEL_EXPORTER_OTLP_{sig}_HEADERS"),
    ] {
        if let Some(v) = get(env, &var) {
            headers.extend(parse_pairs(v));
        }
    }
    headers.extend(file.headers.clone());
    let compression = match file.compression {
        Some(c) => c,
        None => compression_var(
            env,
            &format!("OTEL_EXPORTER_OTLP_{sig}_COMPRESSION"),
            warnings,
        )
        .or_else(|| compression_var(env, "OTEL_EXPORTER_OTLP_COMPRESSION", warnings))
        .unwrap_or(Compression::None),
    };
    let path = |field: &Option<PathBuf>, part: &str| {
        field.clone().or_else(|| {
            get(env, &format!("OTEL_EXPORTER_OTLP_{sig}_{part}"))
                .or_else(|| get(env, &format!("OTEL_EXPORTER_OTLP_{part}")))
                .map(PathBuf::from)
        })
    };
    let tls = TlsClientConfig {
        certificate: path(&file.certificate, "CERTIFICATE"),
        client_certificate: path(&file.client_certificate, "CLIENT_CERTIFICATE"),
        client_key: path(&file.client_key, "CLIENT_KEY"),
    };
    Some(SignalTarget {
        url,
        protocol,
        timeout,
        headers,
        compression: (compression == Compression::Gzip).then_some(Compression::Gzip),
        tls,
    })
}

fn compression_var(env: &Env, var: &str, warnings: &mut Vec<EnvWarning>) -> Option<Compression> {
    let v = get(env, var)?;
    match v {
        "gzip" => Some(Compression::Gzip),
        "none" => Some(Compression::None),
        _ => {
            warnings.push(EnvWarning {
                var: var.to_owned(),
                value: v.to_owned(),
                reason: "expected gzip or none",
            });
            None
        }
    }
}

fn get<'a>(env: &'a Env, var: &str) -> Option<&'a str> {
    env.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn with_path(base: &str, protocol: Protocol, signal: Signal) -> String {
    match protocol {
        Protocol::Grpc => base.to_owned(),
        Protocol::HttpProtobuf => format!("{}{}", base.trim_end_matches('/'), signal.http_path()),
    }
}

fn protocol_var(env: &Env, var: &str, warnings: &mut Vec<EnvWarning>) -> Option<Protocol> {
    let v = get(env, var)?;
    match v {
        "grpc" => Some(Protocol::Grpc),
        "http/protobuf" => Some(Protocol::HttpProtobuf),
        _ => {
            warnings.push(EnvWarning {
                var: var.to_owned(),
                value: v.to_owned(),
                reason: "expected grpc or http/protobuf",
            });
            None
        }
    }
}

fn millis(env: &Env, var: &str, warnings: &mut Vec<EnvWarning>) -> Option<Duration> {
    let v = get(env, var)?;
    match v.parse::<u64>() {
        Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
        _ => {
            warnings.push(EnvWarning {
                var: var.to_owned(),
                value: v.to_owned(),
                reason: "expected a positive number of milliseconds",
            });
            None
        }
    }
}

/// Parses `k1=v1,k2=v2` (W3C baggage style, values percent-decoded) as the OTEL_*_HEADERS and
/// OTEL_RESOURCE_ATTRIBUTES variables are written. Malformed pairs are skipped.
pub fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            Some((k.to_owned(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const TICK: Duration = Duration::from_secs(5);

    #[test]
    fn nothing_set_means_no_export_and_no_warning() {
        let (s, w) = resolve(&OtlpConfig::default(), &Env::new(), TICK);
        assert!(!s.is_enabled());
        assert!(w.is_empty());
        assert_eq!(s.interval, TICK);
    }

    #[test]
    fn env_fills_what_the_file_leaves_unset() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20abc,x-team=gpu",
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
        ]);
        let (s, w) = resolve(&OtlpConfig::default(), &e, TICK);
        assert!(w.is_empty(), "{w:?}");
        let m = s.metrics.unwrap();
        assert_eq!(m.url, "http://collector:4318/v1/metrics");
        assert_eq!(m.protocol, Protocol::HttpProtobuf);
        assert_eq!(m.timeout, Duration::from_millis(2500));
        assert_eq!(m.headers["authorization"], "Bearer abc");
        assert_eq!(m.headers["x-team"], "gpu");
        assert_eq!(s.logs.unwrap().url, "http://collector:4318/v1/logs");
        assert_eq!(s.interval, Duration::from_secs(15));
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let file = OtlpConfig {
            endpoint: Some("http://file:4317".to_owned()),
            protocol: Some(Protocol::Grpc),
            interval: Some(Duration::from_secs(1)),
            timeout: Some(Duration::from_secs(3)),
            headers: [("x-team".to_owned(), "file".to_owned())].into(),
            ..OtlpConfig::default()
        };
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://env:4318/custom",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "100"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-team=env,x-other=1"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "60000"),
        ]);
        let (s, _) = resolve(&file, &e, TICK);
        let m = s.metrics.unwrap();
        assert_eq!(m.url, "http://file:4317");
        assert_eq!(m.protocol, Protocol::Grpc);
        assert_eq!(m.timeout, Duration::from_secs(3));
        assert_eq!(m.headers["x-team"], "file");
        assert_eq!(m.headers["x-other"], "1");
        assert_eq!(s.interval, Duration::from_secs(1));
    }

    #[test]
    fn signal_specific_variables_win_and_are_used_verbatim() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://logs:9999/ingest",
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700"),
        ]);
        let (s, _) = resolve(&OtlpConfig::default(), &e, TICK);
        let l = s.logs.unwrap();
        assert_eq!(l.url, "http://logs:9999/ingest");
        assert_eq!(l.protocol, Protocol::Grpc);
        let m = s.metrics.unwrap();
        assert_eq!(m.url, "http://general:4318/v1/metrics");
        assert_eq!(m.timeout, Duration::from_millis(700));
    }

    #[test]
    fn only_a_logs_endpoint_exports_only_logs_by_default_over_http() {
        let e = env(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:4318/v1/logs")]);
        let (s, _) = resolve(&OtlpConfig::default(), &e, TICK);
        assert!(s.metrics.is_none());
        let l = s.logs.unwrap();
        assert_eq!(l.protocol, Protocol::HttpProtobuf);
        assert_eq!(l.compression, None);
        assert_eq!(l.tls, TlsClientConfig::default());
    }

    #[test]
    fn tls_files_and_compression_come_from_the_file_then_the_signal_then_the_general_variable() {
        let file = OtlpConfig {
            endpoint: Some("https://c:4318".to_owned()),
            client_key: Some(PathBuf::from("/file/client.key")),
            ..OtlpConfig::default()
        };
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/env/ca.pem"),
            ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/env/logs-ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/env/client.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/env/client.key"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none"),
        ]);
        let (s, w) = resolve(&file, &e, TICK);
        assert!(w.is_empty(), "{w:?}");
        let (m, l) = (s.metrics.unwrap(), s.logs.unwrap());
        assert_eq!(m.tls.certificate, Some(PathBuf::from("/env/ca.pem")));
        assert_eq!(l.tls.certificate, Some(PathBuf::from("/env/logs-ca.pem")));
        assert_eq!(
            m.tls.client_certificate,
            Some(PathBuf::from("/env/client.pem"))
        );
        assert_eq!(m.tls.client_key, Some(PathBuf::from("/file/client.key")));
        assert_eq!(m.compression, None);
        assert_eq!(l.compression, Some(Compression::Gzip));
        let file = OtlpConfig {
            compression: Some(Compression::None),
            ..file
        };
        assert_eq!(resolve(&file, &e, TICK).0.logs.unwrap().compression, None);
    }

    #[test]
    fn bad_values_warn_and_fall_back() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
        ]);
        let (s, w) = resolve(&OtlpConfig::default(), &e, TICK);
        assert_eq!(s.metrics.unwrap().protocol, Protocol::HttpProtobuf);
        assert_eq!(s.interval, TICK);
        let vars: Vec<_> = w.iter().map(|w| w.var.as_str()).collect();
        assert!(vars.contains(&"OTEL_EXPORTER_OTLP_PROTOCOL"));
        assert!(vars.contains(&"OTEL_METRIC_EXPORT_INTERVAL"));
        assert!(vars.contains(&"OTEL_EXPORTER_OTLP_COMPRESSION"));
    }

    #[test]
    fn pairs_skip_malformed_entries_and_decode() {
        assert_eq!(
            parse_pairs("a=1,broken,=x, b = two%2Cthree ,c=%zz"),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "two,three".to_owned()),
                ("c".to_owned(), "%zz".to_owned()),
            ]
        );
    }
}
