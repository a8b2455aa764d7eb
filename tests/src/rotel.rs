//! A real OTLP receiver for the export tests: rotel (`pip install rotel`, see
//! tests/ci/install-otlp.sh) with its debug log printing every metric and log record it gets.
//! The test reads that output: `Received` parses it into metrics, log records and resource
//! attributes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::strip_ansi;

/// Finds `rotel-agent`: $ROTEL_AGENT, then PATH, then the pip package's own copy.
pub fn rotel_agent() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ROTEL_AGENT") {
        return Some(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("rotel-agent");
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.is_file().then_some(p)
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Output lines of a child, collected by reader threads; waiters are woken per line.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    pub fn collect_from(&self, stream: impl std::io::Read + Send + 'static) {
        let me = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (lock, cv) = &*me.0;
                lock.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(strip_ansi(&line));
                cv.notify_all();
            }
        });
    }

    pub fn text(&self) -> String {
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    /// Blocks until `done(all lines so far)` holds; panics with the output after `limit`
    /// (a safety net against a hung test, not a synchronisation).
    pub fn wait_until(&self, what: &str, limit: Duration, done: impl Fn(&[String]) -> bool) {
        let (lock, cv) = &*self.0;
        let deadline = SystemTime::now() + limit;
        let mut lines = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !done(&lines) {
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for {what}; output so far:\n{}",
                        lines.join("\n")
                    )
                });
            // A condition may look outside these lines (nginx's log, a file), so it is asked
            // again at least every 200 ms, not only when a new line arrives.
            lines = cv
                .wait_timeout(lines, left.min(Duration::from_millis(200)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A rule that fires on the first tick on any host (every host has a memory limit above one
/// byte), so an alert is queued before any export can succeed. Its record's body ends with
/// "memory limit above one byte".
pub const FIRES_AT_ONCE: &str = r#"
[[rules]]
name = "memory_limit_test"
metric = "system.memory.limit"
op = ">"
critical = 1
summary = "memory limit above one byte"
"#;

/// Starts `hostwarden run --view never --config <config>` at info level, with no `OTEL_*`
/// variable of the test's own environment leaking in (the config alone says where to export),
/// its stdout and stderr collected into one `Lines`.
pub fn spawn_agent(config: &Path) -> (Child, Lines) {
    let mut cmd = Command::new(crate::bin());
    cmd.args(["run", "--view", "never", "--config"])
        .arg(config)
        .env("HOSTWARDEN_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().expect("start hostwarden");
    let lines = Lines::default();
    lines.collect_from(child.stdout.take().expect("stdout"));
    lines.collect_from(child.stderr.take().expect("stderr"));
    (child, lines)
}

pub struct Rotel {
    child: Child,
    pub grpc_port: u16,
    pub http_port: u16,
    pub lines: Lines,
}

impl Rotel {
    /// Starts rotel on the given loopback ports and waits for its start line.
    pub fn start(bin: &PathBuf, grpc_port: u16, http_port: u16) -> Rotel {
        let mut child = Command::new(bin)
            .args(["start", "--otlp-grpc-endpoint"])
            .arg(format!("127.0.0.1:{grpc_port}"))
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{http_port}"))
            .args(["--exporter", "blackhole"])
            .args(["--debug-log", "metrics", "--debug-log", "logs"])
            .args(["--debug-log-verbosity", "detailed"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rotel-agent");
        let lines = Lines::default();
        lines.collect_from(child.stdout.take().expect("stdout"));
        lines.collect_from(child.stderr.take().expect("stderr"));
        lines.wait_until("rotel to start", Duration::from_secs(30), |l| {
            l.iter().any(|l| l.contains("Starting Rotel"))
        });
        // rotel prints its start line just before binding: wait until the ports answer.
        for port in [grpc_port, http_port] {
            wait_for_port(port);
        }
        Rotel {
            child,
            grpc_port,
            http_port,
            lines,
        }
    }

    pub fn received(&self) -> Received {
        Received::parse(&self.lines.text())
    }

    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Err(e) = self.child.kill() {
            eprintln!("rotel already gone: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("rotel wait: {e}");
        }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Connects until the port accepts (bounded): the listener appears right after the log line.
fn wait_for_port(port: u16) {
    let deadline = SystemTime::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        assert!(
            SystemTime::now() < deadline,
            "rotel never listened on {port}"
        );
        std::thread::yield_now();
    }
}

/// One received metric (the last occurrence wins when several exports were received).
#[derive(Debug, Clone, Default)]
pub struct Metric {
    pub name: String,
    pub unit: String,
    /// Gauge or Sum.
    pub data_type: String,
    pub monotonic: Option<bool>,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Default)]
pub struct Point {
    pub attributes: BTreeMap<String, String>,
    pub value: String,
}

#[derive(Debug, Clone, Default)]
pub struct LogRecord {
    pub event_name: String,
    pub severity_text: String,
    pub severity_number: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Received {
    /// Resource attributes of the last complete metric export.
    pub resource: BTreeMap<String, String>,
    /// Resource attributes of the last complete log record.
    pub log_resource: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, Metric>,
    pub logs: Vec<LogRecord>,
}

/// `-> key: Str(value)` / `Int(3)` / `Bool(true)` / `Double(1.5)` as (key, value).
fn arrow_pair(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("-> ")?;
    let (k, v) = rest.split_once(": ")?;
    let v = v.trim();
    let v = v
        .split_once('(')
        .and_then(|(_, inner)| inner.strip_suffix(')'))
        .unwrap_or(v);
    Some((k.to_owned(), v.to_owned()))
}

#[derive(PartialEq)]
enum Section {
    None,
    Resource,
    Descriptor,
    PointAttrs,
    LogAttrs,
}

impl Received {
    /// Parses rotel's debug output. Only complete items count: a metric export once the next
    /// export's header has been printed (rotel prints no end marker for one), a log record
    /// once its closing `Flags:` line has been printed. Later exports replace earlier values.
    pub fn parse(text: &str) -> Received {
        let mut r = Received::default();
        let mut section = Section::None;
        // The metric export being printed, and its resource attributes.
        let mut open: Option<(BTreeMap<String, String>, BTreeMap<String, Metric>)> = None;
        let mut resource = BTreeMap::new();
        let mut metric: Option<Metric> = None;
        let mut log: Option<LogRecord> = None;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("ResourceMetrics #") || t.starts_with("ResourceLog") {
                if let Some(m) = metric.take()
                    && let Some((_, ms)) = open.as_mut()
                {
                    ms.insert(m.name.clone(), m);
                }
                if let Some((res, ms)) = open.take() {
                    r.resource = res;
                    r.metrics.extend(ms);
                }
                if t.starts_with("ResourceMetrics #") {
                    open = Some((BTreeMap::new(), BTreeMap::new()));
                }
                resource = BTreeMap::new();
                log = None;
                section = Section::None;
            } else if t.starts_with("Resource attributes:") {
                section = Section::Resource;
            } else if t.starts_with("Metric #") {
                if let Some(m) = metric.take()
                    && let Some((_, ms)) = open.as_mut()
                {
                    ms.insert(m.name.clone(), m);
                }
                metric = Some(Metric::default());
                section = Section::None;
            } else if t.starts_with("LogRecord #") {
                log = Some(LogRecord::default());
                section = Section::None;
            } else if t.starts_with("Flags:") {
                if let Some(l) = log.take() {
                    r.logs.push(l);
                    r.log_resource = resource.clone();
                }
                section = Section::None;
            } else if t.starts_with("Descriptor:") {
                section = Section::Descriptor;
            } else if t.starts_with("NumberDataPoints #") {
                if let Some(m) = metric.as_mut() {
                    m.points.push(Point::default());
                }
                section = Section::None;
            } else if t.starts_with("Data point attributes:") {
                section = Section::PointAttrs;
            } else if t.starts_with("Attributes:") && log.is_some() {
                section = Section::LogAttrs;
            } else if let Some(v) = t.strip_prefix("Value: ") {
                if let Some(p) = metric.as_mut().and_then(|m| m.points.last_mut()) {
                    p.value = v.to_owned();
                }
            } else if let (Some(l), Some((k, v))) = (log.as_mut(), t.split_once(": "))
                && !t.starts_with("->")
            {
                match k {
                    "EventName" => l.event_name = v.to_owned(),
                    "SeverityText" => l.severity_text = v.to_owned(),
                    "SeverityNumber" => l.severity_number = v.to_owned(),
                    "Body" => {
                        l.body = arrow_pair(&format!("-> b: {v}"))
                            .map(|p| p.1)
                            .unwrap_or_default()
                    }
                    _ => {}
                }
            } else if let Some((k, v)) = arrow_pair(t) {
                match section {
                    Section::Resource => {
                        if let Some((res, _)) = open.as_mut() {
                            res.insert(k.clone(), v.clone());
                        }
                        resource.insert(k, v);
                    }
                    Section::Descriptor => {
                        if let Some(m) = metric.as_mut() {
                            match k.as_str() {
                                "Name" => m.name = v,
                                "Unit" => m.unit = v,
                                "DataType" => m.data_type = v,
                                "IsMonotonic" => m.monotonic = Some(v == "true"),
                                _ => {}
                            }
                        }
                    }
                    Section::PointAttrs => {
                        if let Some(p) = metric.as_mut().and_then(|m| m.points.last_mut()) {
                            p.attributes.insert(k, v);
                        }
                    }
                    Section::LogAttrs => {
                        if let Some(l) = log.as_mut() {
                            l.attributes.insert(k, v);
                        }
                    }
                    Section::None => {}
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // As printed by rotel 0.0.1-alpha10 with --debug-log-verbosity detailed (abridged).
    const OUTPUT: &str = "\
ResourceMetrics #0
Resource attributes:
     -> service.name: Str(hostwarden)
     -> os.description: Str(Linux 5.15 (WSL2))
ScopeMetrics #0
Metric #0
Descriptor:
     -> Name: system.memory.usage
     -> Description: Memory in use by state (used, free, cached, buffers).
     -> Unit: By
     -> DataType: Sum
     -> IsMonotonic: false
NumberDataPoints #0
Data point attributes:
     -> system.memory.state: Str(used)
Value: 12
ResourceLog #0
Resource attributes:
     -> service.name: Str(hostwarden)
LogRecord #0
SeverityText: WARN
EventName: hostwarden.alert
Body: Str(memory at 97%)
Attributes:
     -> alert.rule: Str(memory_high)
     -> alert.value: Double(0.97)
Flags: 0
ResourceMetrics #0
Metric #0
Descriptor:
     -> Name: system.memory.limit
";

    #[test]
    fn complete_exports_and_records_only() {
        let r = Received::parse(OUTPUT);
        assert_eq!(r.resource["os.description"], "Linux 5.15 (WSL2)");
        let m = &r.metrics["system.memory.usage"];
        assert_eq!((m.unit.as_str(), m.data_type.as_str()), ("By", "Sum"));
        assert_eq!(m.monotonic, Some(false));
        assert_eq!(m.points[0].attributes["system.memory.state"], "used");
        assert_eq!(m.points[0].value, "12");
        // The export still being printed is not counted.
        assert!(!r.metrics.contains_key("system.memory.limit"));
        assert_eq!(r.logs.len(), 1);
        assert_eq!(r.logs[0].body, "memory at 97%");
        assert_eq!(r.logs[0].attributes["alert.value"], "0.97");
        assert_eq!(r.log_resource["service.name"], "hostwarden");
        // A record whose closing line has not been printed yet is not counted.
        let cut = OUTPUT.split("Flags: 0").next().unwrap();
        assert!(Received::parse(cut).logs.is_empty());
    }
}
