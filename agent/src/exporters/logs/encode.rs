//! Alert events as an OTLP `ExportLogsServiceRequest`, encoded into protobuf bytes: one
//! resource, one scope ("hostwarden" and the agent's version), one log record per event with
//! the fields the SDK's log records had (event name, severity, timestamps, the summary as body,
//! the event's attributes). No trace context: an alert belongs to no span.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use prost::Message;

use crate::exporters::resource::Resource;
use crate::rules::event::{AlertEvent, AlertState, Severity as AlertSeverity};
use crate::sys::time::unix_nanos;

/// The log record's event name.
pub const EVENT_NAME: &str = "hostwarden.alert";

/// The instrumentation scope of every record (the SDK logger's name; with the version).
pub const SCOPE: &str = "hostwarden";

/// WARN for a firing warning, ERROR for a firing critical, INFO for pending and resolved.
pub fn severity(e: &AlertEvent) -> (SeverityNumber, &'static str) {
    match (e.state, e.severity) {
        (AlertState::Firing, AlertSeverity::Critical) => (SeverityNumber::Error, "ERROR"),
        (AlertState::Firing, AlertSeverity::Warning) => (SeverityNumber::Warn, "WARN"),
        (AlertState::Pending | AlertState::Resolved, _) => (SeverityNumber::Info, "INFO"),
    }
}

pub struct Encoder {
    /// The resource and scope, filled once; the record list only holds records in `encode`.
    request: ExportLogsServiceRequest,
}

impl Encoder {
    pub fn new(resource: &Resource) -> Self {
        let scope = ScopeLogs {
            scope: Some(InstrumentationScope {
                name: SCOPE.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..InstrumentationScope::default()
            }),
            log_records: Vec::new(),
            schema_url: String::new(),
        };
        Encoder {
            request: ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(resource.to_proto()),
                    scope_logs: vec![scope],
                    schema_url: String::new(),
                }],
            },
        }
    }

    /// Encodes `events` into `out` (cleared first), each observed at `observed`.
    pub fn encode(&mut self, events: &[AlertEvent], observed: SystemTime, out: &mut BytesMut) {
        out.clear();
        let observed = unix_nanos(observed);
        let Some(records) = records_of(&mut self.request) else {
            return;
        };
        records.extend(events.iter().map(|e| record(e, observed)));
        out.reserve(self.request.encoded_len());
        // Cannot fail: `out` was just given room for the whole message.
        let _room = self.request.encode(out);
        if let Some(records) = records_of(&mut self.request) {
            records.clear();
        }
    }
}

/// The record list of the request's one resource and scope.
fn records_of(request: &mut ExportLogsServiceRequest) -> Option<&mut Vec<LogRecord>> {
    request
        .resource_logs
        .first_mut()
        .and_then(|r| r.scope_logs.first_mut())
        .map(|s| &mut s.log_records)
}

/// One event's record; `observed` is when the sink picked it up, in Unix nanoseconds.
pub fn record(e: &AlertEvent, observed: u64) -> LogRecord {
    let (number, text) = severity(e);
    let mut attributes = vec![
        kv("alert.id", int(i64::try_from(e.id).unwrap_or(i64::MAX))),
        kv("alert.rule", string(&e.rule)),
        kv("alert.state", string(e.state.as_str())),
        kv("alert.severity", string(e.severity.as_str())),
        kv("alert.metric", string(&e.metric)),
        kv("alert.value", double(e.value)),
    ];
    if let Some(t) = e.threshold {
        attributes.push(kv("alert.threshold", double(t)));
    }
    if let Some(b) = e.baseline {
        attributes.push(kv("alert.baseline", double(b)));
    }
    let since = humantime::format_rfc3339_millis(at(e.since_ms)).to_string();
    attributes.push(kv("alert.since", string(&since)));
    attributes.extend(e.attributes.iter().map(|(k, v)| kv(k, string(v))));
    LogRecord {
        time_unix_nano: unix_nanos(at(e.at_ms)),
        observed_time_unix_nano: observed,
        severity_number: number as i32,
        severity_text: text.to_owned(),
        body: Some(string(&e.summary)),
        attributes,
        event_name: EVENT_NAME.to_owned(),
        ..LogRecord::default()
    }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
        key_strindex: 0,
    }
}

fn string(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    }
}

fn int(i: i64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(i)),
    }
}

fn double(d: f64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::DoubleValue(d)),
    }
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_millis(ms)
}
