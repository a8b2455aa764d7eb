//! The CLI's side of `hostwarden status`: read the daemon's report and print it.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::StatusReport;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no hostwarden daemon is listening on {} (is hostwarden.service running?)", .0.display())]
    NotRunning(PathBuf),
    #[error(
        "permission denied on {}: run as root or as a member of the socket's group",
        .0.display()
    )]
    PermissionDenied(PathBuf),
    #[error("cannot read the status from {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "the daemon on {} sent more than {} MiB; refused (a real status is a few KiB)",
        .0.display(),
        MAX_REPLY / (1024 * 1024)
    )]
    TooLarge(PathBuf),
    #[error("the daemon on {} sent an unreadable status: {source}", path.display())]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// `hostwarden status` on the socket at `path`. Returns the text to print.
pub fn run(path: &Path, format: crate::cli::Format) -> Result<String, String> {
    let report = fetch(path).map_err(|e| e.to_string())?;
    match format {
        crate::cli::Format::Table => Ok(render_table(&report)),
        crate::cli::Format::Json => serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .map_err(|e| format!("cannot encode the status: {e}")),
    }
}

/// How long the daemon has to answer.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest reply read. A status report is a few KiB (one line per collector, exporter and
/// firing alert); 16 MiB leaves room for thousands of alerts while a peer sending without end
/// (2 GB was seen) costs the CLI at most that.
const MAX_REPLY: u64 = 16 * 1024 * 1024;

/// Connects, reads the one JSON document the daemon writes, and decodes it.
pub fn fetch(path: &Path) -> Result<StatusReport, StatusError> {
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            StatusError::NotRunning(path.to_owned())
        }
        io::ErrorKind::PermissionDenied => StatusError::PermissionDenied(path.to_owned()),
        _ => StatusError::Io {
            path: path.to_owned(),
            source,
        },
    };
    let stream = UnixStream::connect(path).map_err(io_err)?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(io_err)?;
    let mut body = Vec::new();
    stream
        .take(MAX_REPLY + 1)
        .read_to_end(&mut body)
        .map_err(io_err)?;
    if body.len() as u64 > MAX_REPLY {
        return Err(StatusError::TooLarge(path.to_owned()));
    }
    serde_json::from_slice(&body).map_err(|source| StatusError::Decode {
        path: path.to_owned(),
        source,
    })
}

fn time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The table `hostwarden status` prints.
pub fn render_table(r: &StatusReport) -> String {
    let mut out = format!("hostwarden {} (pid {})", r.version, r.pid);
    if r.timestamp_ms == 0 {
        out.push_str(", no tick completed yet\n");
    } else {
        out.push_str(&format!(", snapshot of {}\n", time(r.timestamp_ms)));
    }
    out.push_str("\nCollectors\n");
    out.push_str(&r.summary);
    out.push_str("\nAlerts\n");
    if r.alerts.is_empty() {
        out.push_str("  none firing or pending\n");
    }
    for a in &r.alerts {
        let series: Vec<String> = a
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let threshold = a
            .threshold
            .map(|t| format!(" (threshold {t})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<8} {:<8} {} {{{}}}  value {}{threshold}, since {}\n",
            a.state.to_uppercase(),
            a.severity,
            a.rule,
            series.join(", "),
            a.value,
            time(a.since_ms)
        ));
    }
    out.push_str("\nActuations\n");
    if r.actuations.is_empty() {
        out.push_str("  none\n");
    }
    for a in &r.actuations {
        out.push_str(&format!(
            "  {}  {:<11} {}  {}\n",
            time(a.at_ms),
            a.result,
            a.unit,
            a.summary
        ));
    }
    let e = &r.export;
    out.push_str("\nExport\n");
    if e.otlp {
        out.push_str(&format!(
            "  otlp: {} failed exports; outbox {} queued, {} dropped\n",
            e.failures, e.outbox_depth, e.outbox_dropped
        ));
    } else {
        out.push_str("  otlp: no endpoint configured\n");
    }
    for a in &e.alertmanager {
        out.push_str(&alertmanager_line(a));
    }
    out
}

/// One Alertmanager member: queue, last success, last error.
fn alertmanager_line(a: &crate::status::AlertmanagerReport) -> String {
    let ok = a.last_success_ms.map_or_else(|| "never".to_owned(), time);
    let mut line = format!(
        "  alertmanager {}: {} firing; {} queued, {} delivered, {} dropped, {} failed; last success {ok}\n",
        a.url, a.firing, a.pending, a.delivered, a.dropped, a.failures
    );
    if let (Some(err), Some(at)) = (&a.last_error, a.last_error_ms)
        && a.last_success_ms.is_none_or(|ok| at > ok)
    {
        line.push_str(&format!("    failing since {}: {err}\n", time(at)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{AlertReport, ExportReport};

    #[test]
    fn a_reply_over_the_cap_is_refused_after_reading_the_cap() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // A peer that would send without end; it stops when the client hangs up.
        let peer = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0u64;
            while conn.write_all(&chunk).is_ok() {
                sent += chunk.len() as u64;
            }
            sent
        });
        let err = fetch(&path).unwrap_err();
        assert!(matches!(err, StatusError::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("more than 16 MiB"), "{err}");
        let sent = peer.join().unwrap();
        // The client stopped reading at the cap (plus what the socket buffers held).
        assert!(sent < 2 * MAX_REPLY, "{sent} bytes sent");
    }

    #[test]
    fn a_missing_socket_says_the_daemon_is_not_running() {
        let err = fetch(Path::new("/nonexistent/hostwarden/status.sock")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no hostwarden daemon is listening on /nonexistent/hostwarden/status.sock \
             (is hostwarden.service running?)"
        );
    }

    #[test]
    fn the_table_shows_alerts_and_export_state() {
        let r = StatusReport {
            version: "0.1.0".into(),
            pid: 7,
            timestamp_ms: 1_700_000_000_000,
            summary: "host    ok          cpu 5.0%\n".into(),
            alerts: vec![AlertReport {
                rule: "gpu_hot".into(),
                severity: "critical".into(),
                state: "firing".into(),
                attributes: [("hw.id".to_owned(), "GPU-0".to_owned())].into(),
                value: 91.0,
                threshold: Some(90.0),
                since_ms: 1_700_000_000_000,
            }],
            export: ExportReport {
                otlp: true,
                failures: 2,
                outbox_depth: 1,
                outbox_dropped: 0,
                alertmanager: vec![crate::status::AlertmanagerReport {
                    url: "http://am:9093".into(),
                    firing: 1,
                    pending: 2,
                    failures: 3,
                    last_error: Some("connection refused".into()),
                    last_error_ms: Some(1_700_000_000_000),
                    ..Default::default()
                }],
            },
            ..StatusReport::default()
        };
        let t = render_table(&r);
        assert!(t.contains("snapshot of 2023-11-14T22:13:20Z"), "{t}");
        assert!(
            t.contains(
                "FIRING   critical gpu_hot {hw.id=GPU-0}  value 91 (threshold 90), \
                 since 2023-11-14T22:13:20Z"
            ),
            "{t}"
        );
        assert!(t.contains("2 failed exports; outbox 1 queued"), "{t}");
        assert!(t.contains("Actuations\n  none"), "{t}");
        assert!(
            t.contains(
                "alertmanager http://am:9093: 1 firing; 2 queued, 0 delivered, 0 dropped, \
                 3 failed; last success never\n    failing since 2023-11-14T22:13:20Z: \
                 connection refused"
            ),
            "{t}"
        );
    }
}
