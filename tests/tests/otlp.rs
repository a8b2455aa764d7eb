//! OTLP export against a real receiver (rotel), over gRPC and HTTP: metric names, units, kinds,
//! attribute values and resource attributes as received; alert log records delivered at least
//! once across a receiver outage; `hostwarden status` against the running daemon.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostwarden::exporters::config::{OtlpConfig, Protocol};
use hostwarden::exporters::identity;
use hostwarden::exporters::logs::lock;
use hostwarden::exporters::otlp::Otlp;
use hostwarden::exporters::resource::{self, HostFacts};
use hostwarden::exporters::settings::{self, Env};
use hostwarden::model::{InstrumentKind, MetricName, Snapshot};
use hostwarden::rules::event::{AlertEvent, AlertState, Severity};
use hostwarden::rules::outbox::Outbox;
use hostwarden_tests::bin;
use hostwarden_tests::harness::Harness;
use hostwarden_tests::need::Need;
use hostwarden_tests::rotel::{
    FIRES_AT_ONCE, Lines, Received, Rotel, free_port, rotel_agent, spawn_agent,
};
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(60);

/// The tests that export to a receiver.
const ROTEL: &[Need] = &[Need::RotelAgent];

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![
        h.test("metrics_and_resource_over_grpc", ROTEL, || {
            exports_over("grpc");
        }),
        h.test("metrics_and_resource_over_http_protobuf", ROTEL, || {
            exports_over("http/protobuf");
        }),
        h.test(
            "metric_export_resumes_after_the_receiver_restarts",
            ROTEL,
            metric_export_resumes_after_the_receiver_restarts,
        ),
        h.tokio_test(
            "alert_records_survive_a_receiver_outage",
            ROTEL,
            alert_records_survive_a_receiver_outage,
        ),
        h.test(
            "status_reports_what_the_daemon_sees_and_says_when_it_is_gone",
            &[],
            status_reports_what_the_daemon_sees_and_says_when_it_is_gone,
        ),
        h.test(
            "an_alert_from_a_rule_arrives_as_a_log_record",
            ROTEL,
            an_alert_from_a_rule_arrives_as_a_log_record,
        ),
        h.test(
            "an_alert_fired_while_the_receiver_is_down_arrives_after",
            ROTEL,
            an_alert_fired_while_the_receiver_is_down_arrives_after,
        ),
    ])
}

/// rotel-agent, which `Need::RotelAgent` found before the test started.
fn rotel_bin() -> PathBuf {
    rotel_agent().expect("rotel-agent (checked by Need::RotelAgent)")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn mem_total_bytes() -> i64 {
    let line = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .expect("MemTotal in /proc/meminfo")
        .to_owned();
    let kib: i64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn logical_cpus() -> usize {
    read("/proc/stat")
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
}

struct Daemon {
    child: Child,
    pub lines: Lines,
    pub socket: PathBuf,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(endpoint: Option<&str>, protocol: &str, extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/status.sock");
        let export = match endpoint {
            Some(e) => format!(
                "[export.otlp]\nendpoint = \"{e}\"\nprotocol = \"{protocol}\"\ninterval = \"500ms\"\n"
            ),
            None => String::new(),
        };
        let cfg = format!(
            "[agent]\ninterval = \"500ms\"\nstate_dir = \"{}\"\nstatus_socket = \"{}\"\n\n{export}\n{extra}",
            dir.path().display(),
            socket.display()
        );
        let cfg_path = dir.path().join("hostwarden.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let (child, lines) = spawn_agent(&cfg_path);
        Daemon {
            child,
            lines,
            socket,
            config: cfg_path,
            _dir: dir,
        }
    }

    /// SIGTERM, then wait: the daemon removes its socket and flushes on the way out.
    fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _killed = self.child.kill();
            let _waited = self.child.wait();
        }
    }
}

/// Waits until rotel has received a complete export: one that includes the self-metrics
/// appended after the collectors ran.
fn wait_for_full_export(rotel: &Rotel) -> Received {
    wait_for_export(rotel, |_| true)
}

/// Waits until the last export received holds every metric checked below and `also` holds.
fn wait_for_export(rotel: &Rotel, also: impl Fn(&Received) -> bool) -> Received {
    const NEEDED: [&str; 4] = [
        "hostwarden.collector.success",
        "process.memory.usage",
        // Utilisation needs two readings: present from the second tick on.
        "system.cpu.utilization",
        "system.memory.limit",
    ];
    rotel
        .lines
        .wait_until("a full metric export", LIMIT, |lines| {
            let got = Received::parse(&lines.join("\n"));
            NEEDED.iter().all(|n| got.metrics.contains_key(*n)) && also(&got)
        });
    rotel.received()
}

fn check_metrics(got: &Received) {
    // Every received metric is one of ours, with exactly its unit and kind.
    for m in got.metrics.values() {
        let name = MetricName::from_name(&m.name)
            .unwrap_or_else(|| panic!("received unknown metric {}", m.name));
        assert_eq!(m.unit, name.unit(), "unit of {}", m.name);
        let kind = match (m.data_type.as_str(), m.monotonic) {
            ("Gauge", _) => InstrumentKind::Gauge,
            ("Sum", Some(false)) => InstrumentKind::UpDownCounter,
            ("Sum", Some(true)) => InstrumentKind::Counter,
            other => panic!("{}: unexpected data type {other:?}", m.name),
        };
        assert_eq!(kind, name.kind(), "kind of {}", m.name);
    }
    let metric = |n: &str| {
        got.metrics
            .get(n)
            .unwrap_or_else(|| panic!("{n} not received; got {:?}", got.metrics.keys()))
    };
    let limit = metric("system.memory.limit");
    assert_eq!(limit.points[0].value, mem_total_bytes().to_string());
    let cpus = metric("system.cpu.logical.count");
    assert_eq!(cpus.points[0].value, logical_cpus().to_string());
    let states: Vec<_> = metric("system.memory.usage")
        .points
        .iter()
        .map(|p| p.attributes["system.memory.state"].clone())
        .collect();
    for s in ["used", "free", "cached", "buffers"] {
        assert!(
            states.iter().any(|x| x == s),
            "memory state {s} missing: {states:?}"
        );
    }
    // Whole host by mode; per CPU only in the time counter.
    let util = metric("system.cpu.utilization");
    assert!(
        util.points
            .iter()
            .all(|p| p.attributes.contains_key("cpu.mode")
                && !p.attributes.contains_key("cpu.logical_number"))
    );
    assert!(
        metric("system.cpu.time")
            .points
            .iter()
            .any(|p| p.attributes.contains_key("cpu.logical_number"))
    );
    let success = metric("hostwarden.collector.success");
    let host = success
        .points
        .iter()
        .find(|p| {
            p.attributes
                .get("hostwarden.collector.name")
                .map(String::as_str)
                == Some("host")
        })
        .expect("hostwarden.collector.name=host point");
    assert_eq!(host.value, "1");
    let rss: f64 = metric("process.memory.usage").points[0]
        .value
        .parse()
        .unwrap();
    assert!(rss > 1e6, "agent RSS {rss}");
    assert_eq!(metric("hostwarden.export.failures").data_type, "Sum");
}

fn check_resource(got: &Received) {
    let r = &got.resource;
    assert_eq!(r["service.name"], "hostwarden");
    assert_eq!(r["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["os.type"], "linux");
    assert_eq!(r["host.name"], read("/proc/sys/kernel/hostname").trim());
    // The machine id as systemd and D-Bus keep it; a host without one exports no host.id.
    let machine_id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .into_iter()
        .map(|p| read(p).trim().to_owned())
        .find(|id| !id.is_empty());
    assert_eq!(r.get("host.id"), machine_id.as_ref());
    // One stable id per host: a UUID v5 of the machine id (or one kept in state_dir without it).
    if let Some(m) = &machine_id {
        assert_eq!(r["service.instance.id"], identity::from_machine_id(m));
    } else {
        assert!(r.contains_key("service.instance.id"), "{r:?}");
    }
    if cfg!(target_arch = "x86_64") {
        assert_eq!(r["host.arch"], "amd64");
    }
    let wsl = read("/proc/sys/kernel/osrelease")
        .to_lowercase()
        .contains("microsoft");
    assert_eq!(r["host.wsl"], wsl.to_string());
}

fn exports_over(protocol: &str) {
    let rotel_bin = rotel_bin();
    let rotel = Rotel::start(&rotel_bin, free_port(), free_port());
    let endpoint = match protocol {
        "grpc" => format!("http://127.0.0.1:{}", rotel.grpc_port),
        _ => format!("http://127.0.0.1:{}", rotel.http_port),
    };
    let daemon = Daemon::start(Some(&endpoint), protocol, "");
    let got = wait_for_full_export(&rotel);
    check_metrics(&got);
    check_resource(&got);
    assert!(daemon.stop().success());
    let log = daemon_log_after_stop(&rotel);
    drop(log);
}

/// Nothing to check in the receiver after stop; kept so failures show rotel's output.
fn daemon_log_after_stop(rotel: &Rotel) -> String {
    rotel.lines.text()
}

fn metric_export_resumes_after_the_receiver_restarts() {
    let rotel_bin = rotel_bin();
    let (grpc, http) = (free_port(), free_port());
    let rotel = Rotel::start(&rotel_bin, grpc, http);
    let daemon = Daemon::start(Some(&format!("http://127.0.0.1:{grpc}")), "grpc", "");
    wait_for_full_export(&rotel);
    rotel.stop();
    // The agent notices the outage (one warning, then counting) ...
    daemon
        .lines
        .wait_until("the export failure warning", LIMIT, |l| {
            l.iter().any(|l| l.contains("OTLP metric export failed"))
        });
    // ... and exports to the receiver once it is back on the same port.
    let rotel = Rotel::start(&rotel_bin, grpc, http);
    // The failures of the outage are counted in what arrives after it.
    let got = wait_for_export(&rotel, |r| {
        r.metrics
            .get("hostwarden.export.failures")
            .and_then(|m| m.points.first())
            .is_some_and(|p| p.value != "0")
    });
    check_metrics(&got);
    assert!(daemon.stop().success());
}

fn event(id: u64, summary: &str) -> AlertEvent {
    AlertEvent {
        id,
        rule: "memory_limit_test".into(),
        metric: "system.memory.limit".into(),
        severity: Severity::Critical,
        state: AlertState::Firing,
        attributes: BTreeMap::from([("hw.id".to_owned(), "GPU-test".to_owned())]),
        value: 2.0,
        threshold: Some(1.0),
        baseline: None,
        since_ms: 1_700_000_000_000,
        at_ms: 1_700_000_000_500,
        summary: summary.to_owned(),
    }
}

/// True once rotel has printed a whole log record whose body contains `body`.
fn has_log(lines: &[String], body: &str) -> bool {
    Received::parse(&lines.join("\n"))
        .logs
        .iter()
        .any(|l| l.body.contains(body))
}

/// Re-checks a condition the sink task changes, yielding between checks (bounded by LIMIT).
async fn poll_until(cond: impl Fn() -> bool) {
    tokio::time::timeout(LIMIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("condition never held");
}

/// The real OTLP log sender and alert sink, fed through the outbox as the rules engine feeds
/// it: an event pushed while the receiver is down arrives after it comes back.
async fn alert_records_survive_a_receiver_outage() {
    let rotel_bin = rotel_bin();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let (grpc, http) = (free_port(), free_port());
        let port = if protocol == Protocol::Grpc {
            grpc
        } else {
            http
        };
        let file = OtlpConfig {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            protocol: Some(protocol),
            interval: Some(Duration::from_millis(500)),
            ..OtlpConfig::default()
        };
        let (mut export, _) = settings::resolve(&file, &Env::new(), Duration::from_millis(500));
        export.metrics = None;
        let res = resource::build(&HostFacts::read(Path::new("/")), &Env::new());
        let (wake, snapshots) = watch::channel(Arc::new(Snapshot::default()));
        let outbox = Arc::new(Mutex::new(Outbox::new(100)));
        let failures = Arc::new(AtomicU64::new(0));
        let otlp = Otlp::start(
            &export,
            Duration::from_millis(500),
            &res,
            &snapshots,
            outbox.clone(),
            failures.clone(),
            &Default::default(),
        )
        .unwrap();

        let rotel = tokio::task::spawn_blocking({
            let b = rotel_bin.clone();
            move || Rotel::start(&b, grpc, http)
        })
        .await
        .unwrap();
        lock(&outbox).push(event(1, "before the outage"));
        wake.send_modify(|_| {});
        let lines = rotel.lines.clone();
        tokio::task::spawn_blocking(move || {
            lines.wait_until("the first alert", LIMIT, |l| {
                has_log(l, "before the outage")
            })
        })
        .await
        .unwrap();
        let got = rotel.received();
        let rec = got
            .logs
            .iter()
            .find(|l| l.body == "before the outage")
            .unwrap();
        assert_eq!(rec.event_name, "hostwarden.alert");
        assert_eq!(rec.severity_text, "ERROR");
        assert_eq!(rec.attributes["alert.rule"], "memory_limit_test");
        assert_eq!(rec.attributes["alert.state"], "firing");
        assert_eq!(rec.attributes["alert.severity"], "critical");
        assert_eq!(rec.attributes["alert.metric"], "system.memory.limit");
        assert_eq!(rec.attributes["alert.value"], "2");
        assert_eq!(rec.attributes["alert.threshold"], "1");
        assert_eq!(rec.attributes["alert.since"], "2023-11-14T22:13:20.000Z");
        assert_eq!(rec.attributes["hw.id"], "GPU-test");
        assert_eq!(got.log_resource["service.name"], "hostwarden");
        // Delivered means acknowledged: only then is the receiver stopped.
        poll_until(|| lock(&outbox).depth() == 0).await;

        rotel.stop();
        lock(&outbox).push(event(2, "during the outage"));
        wake.send_modify(|_| {});
        // Wait until the sink has tried and failed: the event is still queued.
        poll_until(|| failures.load(std::sync::atomic::Ordering::Relaxed) > 0).await;
        assert_eq!(lock(&outbox).depth(), 1);
        let rotel = tokio::task::spawn_blocking({
            let b = rotel_bin.clone();
            move || Rotel::start(&b, grpc, http)
        })
        .await
        .unwrap();
        let lines = rotel.lines.clone();
        tokio::task::spawn_blocking(move || {
            lines.wait_until("the alert queued during the outage", LIMIT, |l| {
                has_log(l, "during the outage")
            })
        })
        .await
        .unwrap();
        // Acknowledged once the receiver answered.
        poll_until(|| lock(&outbox).depth() == 0).await;
        otlp.shutdown().await;
        rotel.stop();
    }
}

/// Runs `hostwarden status` with `args`; returns (success, stdout, stderr).
fn status(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .arg("status")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status_reports_what_the_daemon_sees_and_says_when_it_is_gone() {
    let daemon = Daemon::start(None, "grpc", FIRES_AT_ONCE);
    let socket = daemon.socket.to_str().unwrap().to_owned();
    // The daemon binds its socket at start and fills it from the first tick on: ask until a
    // report of a completed tick comes back (each answer is a whole report; no sleep needed).
    let deadline = std::time::SystemTime::now() + LIMIT;
    let report: serde_json::Value = loop {
        let (ok, out, err) = status(&["--format", "json", "--socket", &socket]);
        if ok {
            let r: serde_json::Value = serde_json::from_str(&out).unwrap();
            if r["timestamp_ms"].as_u64().is_some_and(|t| t > 0) {
                break r;
            }
        }
        assert!(
            std::time::SystemTime::now() < deadline,
            "no status report: {err}\n{}",
            daemon.lines.text()
        );
        std::thread::yield_now();
    };
    assert_eq!(report["pid"], daemon.child.id());
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["collectors"][0]["collector"], "host");
    assert_eq!(report["collectors"][0]["health"], "ok");
    let limit = report["key_values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "system.memory.limit")
        .expect("memory limit among the key values");
    assert_eq!(limit["value"].as_f64().unwrap(), mem_total_bytes() as f64);
    let alert = &report["alerts"][0];
    assert_eq!(alert["rule"], "memory_limit_test");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["threshold"], 1.0);
    assert_eq!(report["actuations"], serde_json::json!([]));
    assert_eq!(report["export"]["otlp"], false);
    // No endpoint: no exporter and not a word about OTLP in the log.
    assert!(
        !daemon.lines.text().contains("OTLP"),
        "{}",
        daemon.lines.text()
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&daemon.socket).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o660);

    // The table, with the socket taken from the config file.
    let (ok, table, err) = status(&["--config", daemon.config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(table.contains("Collectors\nhost"), "{table}");
    assert!(table.contains("otlp: no endpoint configured"), "{table}");
    assert!(
        table.contains("FIRING   critical memory_limit_test"),
        "{table}"
    );

    let socket_path = daemon.socket.clone();
    assert!(daemon.stop().success());
    assert!(!socket_path.exists(), "socket removed on shutdown");
    let (ok, _, err) = status(&["--socket", &socket]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "hostwarden: no hostwarden daemon is listening on {socket} \
             (is hostwarden.service running?)"
        )
    );
}

fn wait_for_alert(rotel: &Rotel) -> hostwarden_tests::rotel::LogRecord {
    rotel.lines.wait_until("the alert log record", LIMIT, |l| {
        has_log(l, "memory limit above one byte")
    });
    let got = rotel.received();
    let rec = got
        .logs
        .iter()
        .find(|l| l.attributes.get("alert.rule").map(String::as_str) == Some("memory_limit_test"))
        .expect("alert record parsed")
        .clone();
    assert_eq!(rec.event_name, "hostwarden.alert");
    assert_eq!(rec.severity_text, "ERROR");
    assert_eq!(rec.attributes["alert.state"], "firing");
    assert_eq!(rec.attributes["alert.severity"], "critical");
    assert_eq!(rec.attributes["alert.metric"], "system.memory.limit");
    assert_eq!(rec.attributes["alert.threshold"], "1");
    assert_eq!(rec.attributes["alert.value"], mem_total_bytes().to_string());
    assert!(
        rec.body.ends_with("memory limit above one byte"),
        "{}",
        rec.body
    );
    rec
}

fn an_alert_from_a_rule_arrives_as_a_log_record() {
    let rotel_bin = rotel_bin();
    for protocol in ["grpc", "http/protobuf"] {
        let rotel = Rotel::start(&rotel_bin, free_port(), free_port());
        let port = if protocol == "grpc" {
            rotel.grpc_port
        } else {
            rotel.http_port
        };
        let daemon = Daemon::start(
            Some(&format!("http://127.0.0.1:{port}")),
            protocol,
            FIRES_AT_ONCE,
        );
        wait_for_alert(&rotel);
        assert!(daemon.stop().success());
    }
}

/// A rule that holds at once but fires only after `for`: the receiver is stopped in between.
const FIRES_AFTER_4S: &str = r#"
[[rules]]
name = "memory_limit_test"
metric = "system.memory.limit"
op = ">"
critical = 1
for = "4s"
summary = "memory limit above one byte"
"#;

fn an_alert_fired_while_the_receiver_is_down_arrives_after() {
    let rotel_bin = rotel_bin();
    let (grpc, http) = (free_port(), free_port());
    let rotel = Rotel::start(&rotel_bin, grpc, http);
    let daemon = Daemon::start(
        Some(&format!("http://127.0.0.1:{grpc}")),
        "grpc",
        FIRES_AFTER_4S,
    );
    wait_for_full_export(&rotel);
    rotel.stop();
    // The rule fires while the receiver is down: the sink's first failed attempt proves the
    // event is waiting in the outbox (if it had fired before the stop, this line never comes).
    daemon
        .lines
        .wait_until("the alert export failure", LIMIT, |l| {
            l.iter().any(|l| l.contains("OTLP alert export failed"))
        });
    let rotel = Rotel::start(&rotel_bin, grpc, http);
    wait_for_alert(&rotel);
    assert!(daemon.stop().success());
}
