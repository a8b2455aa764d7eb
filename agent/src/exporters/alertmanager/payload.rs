//! The JSON Alertmanager's `POST /api/v2/alerts` takes (a list of `postableAlert`): labels that
//! identify the alert, annotations for people, and `startsAt`/`endsAt`. Pure, so the shape and
//! the label sanitising are tested without a server.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::rules::event::{AlertEvent, AlertState};
use crate::rules::summary::series_name;

/// Longest label value or annotation sent, in bytes: with at most `BATCH` alerts per request it
/// bounds a request body (a long pod name or a runaway summary cannot make one huge).
pub const MAX_TEXT: usize = 1024;
/// Alerts per request.
pub const BATCH: usize = 64;

/// Who the alerts are about, as labels on every alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// `instance`: the host's service.instance.id (what the Prometheus endpoint's series carry,
    /// so an alert joins its metrics), else the host name.
    pub instance: String,
    /// `host`: the host name, for the person reading the page.
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

/// The labels that identify an alert; an attribute of the same (sanitised) name gets the
/// `exported_` prefix, as Prometheus does with a clashing target label.
const OWN: [&str; 4] = ["alertname", "severity", "instance", "host"];

/// A Prometheus label name from an attribute key: `[a-zA-Z_][a-zA-Z0-9_]*`, so dots (and
/// anything else) become `_` and a leading digit gets a `_` before it.
pub fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Cuts `s` to at most `MAX_TEXT` bytes on a character boundary.
fn bounded(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_TEXT - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The labels of `e`: alertname, severity, instance, host, then the series' attributes.
pub fn labels(e: &AlertEvent, source: &Source) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("alertname".to_owned(), bounded(&e.rule));
    l.insert("severity".to_owned(), e.severity.as_str().to_owned());
    l.insert("instance".to_owned(), bounded(&source.instance));
    l.insert("host".to_owned(), bounded(&source.host));
    for (k, v) in &e.attributes {
        // An empty value is the same as no label to Alertmanager.
        if v.is_empty() {
            continue;
        }
        let mut name = label_name(k);
        if OWN.contains(&name.as_str()) {
            name.insert_str(0, "exported_");
        }
        l.entry(name).or_insert_with(|| bounded(v));
    }
    l
}

/// `description`: the figures behind the summary.
fn description(e: &AlertEvent, source: &Source) -> String {
    let mut d = format!(
        "{} on {}: {} = {}",
        e.rule,
        source.host,
        series_name(&e.metric, &e.attributes),
        e.value
    );
    if let Some(t) = e.threshold {
        d.push_str(&format!(", threshold {t}"));
    }
    if let Some(b) = e.baseline {
        d.push_str(&format!(", baseline {b}"));
    }
    d
}

/// The alert for a queued change. The queue holds events normalised by the ledger:
/// `since_ms` is the moment the alert started firing (`startsAt`), and a `Resolved` event's
/// `at_ms` is its `endsAt`.
pub fn alert(e: &AlertEvent, source: &Source) -> PostableAlert {
    let annotations = BTreeMap::from([
        ("summary".to_owned(), bounded(&e.summary)),
        ("description".to_owned(), bounded(&description(e, source))),
    ]);
    PostableAlert {
        labels: labels(e, source),
        annotations,
        starts_at: rfc3339(e.since_ms),
        ends_at: (e.state == AlertState::Resolved).then(|| rfc3339(e.at_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::event::Severity;

    fn event(state: AlertState, attrs: &[(&str, &str)]) -> AlertEvent {
        AlertEvent {
            id: 7,
            rule: "gpu_hot".to_owned(),
            metric: "hw.gpu.temperature".to_owned(),
            severity: Severity::Critical,
            state,
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value: 91.5,
            threshold: Some(90.0),
            baseline: None,
            since_ms: 1_700_000_000_000,
            at_ms: 1_700_000_060_000,
            summary: "GPU 0 at 91.5 °C".to_owned(),
        }
    }

    fn source() -> Source {
        Source {
            instance: "0f3c".to_owned(),
            host: "gpu-01".to_owned(),
        }
    }

    #[test]
    fn label_names_become_prometheus_names() {
        assert_eq!(label_name("hw.id"), "hw_id");
        assert_eq!(label_name("gen_ai.request.model"), "gen_ai_request_model");
        assert_eq!(label_name("9lives"), "_9lives");
        assert_eq!(label_name("zfs-pool name/ü"), "zfs_pool_name__");
        assert_eq!(label_name(""), "_");
        let valid = |s: &str| {
            s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        for k in ["a.b.c", "0", "-", "host.name", "ÄÖ", "x y"] {
            assert!(valid(&label_name(k)), "{k}");
        }
    }

    #[test]
    fn a_firing_alert_has_its_labels_annotations_and_no_end() {
        let a = alert(
            &event(AlertState::Firing, &[("hw.id", "GPU-1"), ("host", "x")]),
            &source(),
        );
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "labels": {
                    "alertname": "gpu_hot",
                    "severity": "critical",
                    "instance": "0f3c",
                    "host": "gpu-01",
                    "hw_id": "GPU-1",
                    "exported_host": "x",
                },
                "annotations": {
                    "summary": "GPU 0 at 91.5 °C",
                    "description": "gpu_hot on gpu-01: hw.gpu.temperature{host=x,hw.id=GPU-1} = 91.5, threshold 90",
                },
                "startsAt": "2023-11-14T22:13:20.000Z",
            })
        );
    }

    #[test]
    fn a_resolved_alert_ends_at_its_event() {
        let a = alert(&event(AlertState::Resolved, &[]), &source());
        assert_eq!(a.starts_at, "2023-11-14T22:13:20.000Z");
        assert_eq!(a.ends_at.as_deref(), Some("2023-11-14T22:14:20.000Z"));
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let mut e = event(AlertState::Firing, &[("k", &"é".repeat(2000))]);
        e.summary = "ü".repeat(5000);
        let a = alert(&e, &source());
        for v in a.labels.values().chain(a.annotations.values()) {
            assert!(v.len() <= MAX_TEXT, "{}", v.len());
        }
        assert!(a.annotations["summary"].ends_with('…'));
    }
}
