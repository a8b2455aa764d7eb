//! The collector against a real local HTTP server answering with the captured bodies, and
//! against nothing at all.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::config::DEFAULT_PROBE_TIMEOUT;
use super::*;
use crate::model::Value;
use crate::sys::systemd::{ActuateError, JobOutcome, UnitStatus};

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ollama")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A one-request-per-connection server answering by path, like Ollama's bodies.
async fn serve(routes: Vec<(&'static str, String)>) -> std::net::SocketAddr {
    serve_logged(routes).await.0
}

/// `serve`, also returning the log of the paths asked, in order.
async fn serve_logged(
    routes: Vec<(&'static str, String)>,
) -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let asked = log.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let routes = routes.clone();
            let asked = asked.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 65536];
                let n = s.read(&mut buf).await.unwrap();
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                asked.lock().unwrap().push(path.clone());
                let body = routes
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map_or_else(String::new, |(_, b)| b.clone());
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    body.len(),
                    if head.starts_with("HEAD") { "" } else { &body }
                );
                s.write_all(resp.as_bytes()).await.unwrap();
            });
        }
    });
    (addr, log)
}

fn config(url: String) -> OllamaConfig {
    OllamaConfig {
        url,
        ..OllamaConfig::default()
    }
}

fn value(points: &[MetricPoint], name: MetricName, attrs: &[(AttrKey, &str)]) -> Option<Value> {
    points
        .iter()
        .find(|p| {
            p.name == name
                && attrs
                    .iter()
                    .all(|(k, v)| p.attributes.get(*k).is_some_and(|a| a.as_text() == *v))
        })
        .map(|p| p.value)
}

/// A systemd that only answers status reads (the collector never reloads or restarts).
struct FakeUnit(Result<UnitStatus, String>);

#[async_trait]
impl UnitManager for FakeUnit {
    async fn daemon_reload(&self) -> Result<(), ActuateError> {
        unreachable!("the collector never reloads")
    }
    async fn restart(&self, _unit: &str, _timeout: Duration) -> Result<JobOutcome, ActuateError> {
        unreachable!("the collector never restarts")
    }
    async fn unit_status(&self, unit: &str) -> Result<UnitStatus, ActuateError> {
        self.0.clone().map_err(|why| ActuateError::Bus {
            op: "LoadUnit",
            unit: unit.to_owned(),
            source: zbus::Error::Failure(why),
        })
    }
    async fn set_properties(
        &self,
        _unit: &str,
        _runtime: bool,
        _props: &[(String, crate::sys::systemd::PropValue)],
    ) -> Result<(), ActuateError> {
        unreachable!("the collector never sets properties")
    }
    async fn unit_limits(
        &self,
        _unit: &str,
    ) -> Result<crate::sys::systemd::UnitLimits, ActuateError> {
        unreachable!("the collector reads no limits")
    }
}

#[tokio::test]
async fn reads_ps_show_and_version_and_publishes_the_view() {
    let addr = serve(vec![
        ("/", "Ollama is running".to_owned()),
        ("/api/version", fixture("version.json")),
        ("/api/ps", fixture("ps-partial-offload.SYNTHETIC.json")),
        ("/api/show", fixture("show-llama3.1-8b-q4km-real.json")),
    ])
    .await;
    let hooks = OllamaHooks::default();
    let empty = tempfile::tempdir().unwrap();
    let mut c = OllamaCollector::new(
        &config(format!("http://{addr}")),
        DEFAULT_PROBE_TIMEOUT,
        ProcReader::new(empty.path()),
        hooks.clone(),
    );
    let sample = c.collect().await.unwrap();
    let p = &sample.points;
    let llama = (AttrKey::GenAiRequestModel, "llama3.1:8b");
    assert_eq!(value(p, MetricName::OllamaUp, &[]), Some(Value::Int(1)));
    assert_eq!(
        value(p, MetricName::OllamaModelCount, &[]),
        Some(Value::Int(1))
    );
    assert_eq!(
        value(
            p,
            MetricName::OllamaModelMemoryUsage,
            &[llama, (AttrKey::OllamaMemoryLocation, "vram")]
        ),
        Some(Value::Int(3_403_239_424))
    );
    assert_eq!(
        value(
            p,
            MetricName::OllamaModelMemoryUsage,
            &[llama, (AttrKey::OllamaMemoryLocation, "ram")]
        ),
        Some(Value::Int(3_141_451_776))
    );
    assert_eq!(
        value(p, MetricName::OllamaModelContextLength, &[llama]),
        Some(Value::Int(32768))
    );
    assert!(value(p, MetricName::OllamaProbeLatency, &[]).is_some());
    assert_eq!(sample.degraded.as_deref(), Some(NO_SYSTEMD));
    let view = hooks.view.latest().unwrap();
    assert_eq!(view.version.as_deref(), Some("0.30.11"));
    assert!(view.advice_only());
    let models = view.models.as_ref().unwrap();
    assert_eq!(models[0].arch.as_ref().unwrap().block_count, 32);
    assert_eq!(c.arch_cache.len(), 1);
}

/// A closed local port: nothing answers there.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

fn unit_hooks(load_state: &str, active_state: &str) -> OllamaHooks {
    OllamaHooks {
        unit_source: Some(Arc::new(FakeUnit(Ok(UnitStatus {
            load_state: load_state.to_owned(),
            active_state: active_state.to_owned(),
            ..UnitStatus::default()
        })))),
        ..OllamaHooks::default()
    }
}

/// No unit, no process, never answered: absent, unavailable with the reason, no `ollama.up`.
#[tokio::test]
async fn nothing_listening_and_no_unit_is_absent_without_up() {
    let addr = closed_port();
    let empty = tempfile::tempdir().unwrap();
    for hooks in [OllamaHooks::default(), unit_hooks("not-found", "inactive")] {
        let view = hooks.view.clone();
        let mut c = OllamaCollector::new(
            &config(format!("http://{addr}")),
            DEFAULT_PROBE_TIMEOUT,
            ProcReader::new(empty.path()),
            hooks,
        );
        let why = c.collect().await.unwrap_err().0;
        assert!(why.starts_with("absent: no "), "{why}");
        assert!(
            why.ends_with(&format!("nothing has answered at {addr} since start")),
            "{why}"
        );
        assert!(!view.latest().unwrap().up);
    }
}

/// The unit exists but is stopped (enabled or not): a silence is "down", `ollama.up = 0`.
#[tokio::test]
async fn an_existing_unit_makes_silence_down() {
    let addr = closed_port();
    let empty = tempfile::tempdir().unwrap();
    let mut c = OllamaCollector::new(
        &config(format!("http://{addr}")),
        DEFAULT_PROBE_TIMEOUT,
        ProcReader::new(empty.path()),
        unit_hooks("loaded", "inactive"),
    );
    let sample = c.collect().await.unwrap();
    assert_eq!(
        value(&sample.points, MetricName::OllamaUp, &[]),
        Some(Value::Int(0))
    );
    assert_eq!(
        sample.degraded,
        Some(format!("nothing listening on {addr}"))
    );
}

/// Ollama answered once, then its port closed: down, not absent, even with no unit.
#[tokio::test]
async fn answered_once_then_silent_is_down() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut c = OllamaCollector::new(
        &config(format!("http://{addr}")),
        DEFAULT_PROBE_TIMEOUT,
        ProcReader::new(empty.path()),
        OllamaHooks::default(),
    );
    // A real answer, then the port closes.
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0; 4096];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
    });
    c.answered_ever |= c.api.as_ref().unwrap().probe().await.is_ok();
    server.join().unwrap();
    assert!(c.answered_ever);
    let sample = c.collect().await.unwrap();
    assert_eq!(
        sample.points,
        vec![MetricPoint::new(MetricName::OllamaUp, Attrs::new(), 0i64)]
    );
    assert_eq!(
        sample.degraded,
        Some(format!("nothing listening on {addr}; {NO_SYSTEMD}"))
    );
}

#[tokio::test]
async fn unit_status_gives_service_metrics_and_the_main_pid() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let me = std::process::id();
    let hooks = OllamaHooks {
        unit_source: Some(Arc::new(FakeUnit(Ok(UnitStatus {
            active_state: "active".to_owned(),
            sub_state: "running".to_owned(),
            main_pid: me,
            n_restarts: 2,
            environment: vec!["OLLAMA_NUM_PARALLEL=2".to_owned()],
            ..UnitStatus::default()
        })))),
        ..OllamaHooks::default()
    };
    let mut c = OllamaCollector::new(
        &config(format!("http://{addr}")),
        DEFAULT_PROBE_TIMEOUT,
        ProcReader::new("/proc"),
        hooks.clone(),
    );
    let p = c.collect().await.unwrap().points;
    let unit = [(AttrKey::SystemdUnit, "ollama.service")];
    assert_eq!(
        value(&p, MetricName::OllamaServiceActive, &unit),
        Some(Value::Int(1))
    );
    assert_eq!(
        value(&p, MetricName::OllamaServiceRestarts, &unit),
        Some(Value::Int(2))
    );
    let pid = me.to_string();
    let rss = value(
        &p,
        MetricName::OllamaProcessMemoryUsage,
        &[(AttrKey::ProcessPid, &pid)],
    );
    assert!(rss.is_some_and(|v| v.as_f64() > 0.0));
    let view = hooks.view.latest().unwrap();
    assert!(!view.advice_only());
    let UnitWatch::Status(s) = &view.unit else {
        panic!("unit not watched")
    };
    assert_eq!(s.env("OLLAMA_NUM_PARALLEL"), Some("2"));

    let broken = OllamaHooks {
        unit_source: Some(Arc::new(FakeUnit(Err("unit not loaded".to_owned())))),
        ..OllamaHooks::default()
    };
    let mut c = OllamaCollector::new(
        &config(format!("http://{addr}")),
        DEFAULT_PROBE_TIMEOUT,
        ProcReader::new("/proc"),
        broken,
    );
    // The bus cannot tell the unit exists and nothing ever answered: absent, saying why.
    let why = c.collect().await.unwrap_err().0;
    assert!(
        why.contains(
            "ollama.service not found (unit ollama.service: systemd LoadUnit of ollama.service failed: unit not loaded; advice-only)"
        ),
        "{why}"
    );
}

#[tokio::test]
async fn a_slow_ps_is_reported_as_a_possible_load() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Answers HEAD / and /api/version; never answers /api/ps.
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                if head.contains("/api/ps") {
                    std::future::pending::<()>().await;
                }
                let body = if head.contains("/api/version") {
                    r#"{"version":"0.33.0"}"#
                } else {
                    ""
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
            });
        }
    });
    let cfg = OllamaConfig {
        probe_timeout: Some(Duration::from_millis(300)),
        ..config(format!("http://{addr}"))
    };
    let empty = tempfile::tempdir().unwrap();
    let mut c = OllamaCollector::new(
        &cfg,
        Duration::from_millis(300),
        ProcReader::new(empty.path()),
        OllamaHooks::default(),
    );
    let sample = c.collect().await.unwrap();
    assert_eq!(
        value(&sample.points, MetricName::OllamaUp, &[]),
        Some(Value::Int(1))
    );
    assert_eq!(
        value(&sample.points, MetricName::OllamaModelCount, &[]),
        None
    );
    let why = sample.degraded.unwrap();
    assert!(
        why.starts_with("/api/ps did not answer within 300ms"),
        "{why}"
    );
}

/// Without systemd the server is found by scanning proc_root; a scan that finds nothing is not
/// repeated every tick (it reads every process's cmdline), only after `RESCAN_AFTER_MISS`.
#[tokio::test(start_paused = true)]
async fn a_missed_scan_waits_before_scanning_proc_again() {
    let root = tempfile::tempdir().unwrap();
    let mut c = OllamaCollector::new(
        &config("http://127.0.0.1:9".to_owned()),
        DEFAULT_PROBE_TIMEOUT,
        ProcReader::new(root.path()),
        OllamaHooks::default(),
    );
    let unit = UnitWatch::NotWatched {
        reason: NO_SYSTEMD.to_owned(),
    };
    assert!(c.process(&unit).is_none());

    // The server starts: copies of this test process's stat and status under PID 4242.
    let dir = root.path().join("4242");
    std::fs::create_dir(&dir).unwrap();
    for f in ["stat", "status"] {
        std::fs::copy(std::path::Path::new("/proc/self").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("cmdline"), b"/usr/bin/ollama\0serve\0").unwrap();
    tokio::time::advance(RESCAN_AFTER_MISS / 2).await;
    assert!(c.process(&unit).is_none(), "rescanned too early");

    tokio::time::advance(RESCAN_AFTER_MISS / 2).await;
    let found = c.process(&unit).unwrap().unwrap();
    assert_eq!(found.pid, 4242);
    // Found once, it is checked by its own cmdline every tick, not by a scan.
    assert_eq!(c.process(&unit).unwrap().unwrap().pid, 4242);
}

/// `/api/version` is asked once, not every tick; a new main PID (a restart) asks again.
#[tokio::test]
async fn the_version_is_asked_once_per_server_process() {
    let (addr, asked) = serve_logged(vec![
        ("/api/version", r#"{"version":"0.30.11"}"#.to_owned()),
        ("/api/ps", r#"{"models":[]}"#.to_owned()),
    ])
    .await;
    let empty = tempfile::tempdir().unwrap();
    let hooks = OllamaHooks::default();
    let mut c = OllamaCollector::new(
        &config(format!("http://{addr}")),
        DEFAULT_PROBE_TIMEOUT,
        ProcReader::new(empty.path()),
        hooks.clone(),
    );
    for _ in 0..3 {
        c.collect().await.unwrap();
        assert_eq!(
            hooks.view.latest().unwrap().version.as_deref(),
            Some("0.30.11")
        );
    }
    let versions = asked
        .lock()
        .unwrap()
        .iter()
        .filter(|p| *p == "/api/version")
        .count();
    assert_eq!(versions, 1);

    // Known PIDs: the same one keeps the answer, another one (a restart) does not.
    c.version_cache = Some((Some(100), Instant::now(), "0.30.11".to_owned()));
    assert_eq!(c.cached_version(Some(100)).as_deref(), Some("0.30.11"));
    assert_eq!(c.cached_version(Some(101)), None);
    assert_eq!(c.cached_version(None), None);
}

#[tokio::test]
async fn at_most_four_api_show_requests_are_in_flight() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const MODELS: usize = 40;
    let models: Vec<String> = (0..MODELS)
        .map(|i| format!("{{\"name\":\"m{i}:latest\",\"size\":1,\"digest\":\"d{i}\"}}"))
        .collect();
    let ps = format!("{{\"models\":[{}]}}", models.join(","));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let shows = Arc::new(AtomicUsize::new(0));
    let (f, m, n) = (in_flight.clone(), most.clone(), shows.clone());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let (ps, f, m, n) = (ps.clone(), f.clone(), m.clone(), n.clone());
            tokio::spawn(async move {
                let mut buf = vec![0; 65536];
                let len = s.read(&mut buf).await.unwrap();
                let head = String::from_utf8_lossy(&buf[..len]).to_string();
                let body = if head.contains(" /api/show ") {
                    let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    n.fetch_add(1, Ordering::SeqCst);
                    // Slow enough that an unbounded client would have them all open at once.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    f.fetch_sub(1, Ordering::SeqCst);
                    "{}".to_owned()
                } else if head.contains(" /api/ps ") {
                    ps
                } else {
                    String::new()
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _gone = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    let empty = tempfile::tempdir().unwrap();
    let mut c = OllamaCollector::new(
        &config(format!("http://{addr}")),
        DEFAULT_PROBE_TIMEOUT,
        ProcReader::new(empty.path()),
        OllamaHooks::default(),
    );
    let _sample = c.collect().await.unwrap();
    assert_eq!(shows.load(Ordering::SeqCst), MODELS);
    let most = most.load(Ordering::SeqCst);
    assert!(
        (1..=MAX_SHOWS_IN_FLIGHT).contains(&most),
        "{most} /api/show requests in flight at once"
    );
}

/// Issue 14: with `probe_timeout` unset, a short interval cuts the probe to half the collector
/// deadline, so an Ollama that answered once and then hangs is reported `ollama.up = 0` inside
/// the tick. With a fixed 2 s probe under a 0.8 s deadline the collector was cut off first and
/// exported no `ollama.up` at all, which `ollama_down` never sees.
#[tokio::test]
async fn a_hung_ollama_is_reported_down_within_a_short_ticks_deadline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut answered = false;
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let answer = !answered;
            answered = true;
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                // Whatever was asked, the answer is the same.
                drop(s.read(&mut buf).await);
                if !answer {
                    std::future::pending::<()>().await;
                }
                drop(
                    s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await,
                );
            });
        }
    });
    let mut config = crate::config::Config::default();
    config.agent.interval = Duration::from_secs(1);
    config.ollama.url = format!("http://{addr}");
    config.host.enabled = false;
    config.gpu.enabled = false;
    config.zfs.enabled = false;
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    let deadline = config.collector_deadline();
    assert_eq!(
        config.ollama.probe_timeout_within(deadline),
        Duration::from_millis(400)
    );
    let mut list = crate::collectors::from_config(config.collectors());
    let up =
        |s: &crate::model::Snapshot| s.points_named(MetricName::OllamaUp).next().map(|p| p.value);
    let first = crate::collectors::collect_all(&mut list, deadline, 0).await;
    assert_eq!(up(&first), Some(Value::Int(1)));
    let second = crate::collectors::collect_all(&mut list, deadline, 1).await;
    assert_eq!(up(&second), Some(Value::Int(0)), "{:?}", second.collectors);
}

#[test]
fn an_unset_probe_timeout_is_two_seconds_or_half_the_deadline() {
    let c = OllamaConfig::default();
    assert_eq!(
        c.probe_timeout_within(Duration::from_secs(4)),
        DEFAULT_PROBE_TIMEOUT
    );
    assert_eq!(c.probe_timeout_within(Duration::MAX), DEFAULT_PROBE_TIMEOUT);
    assert_eq!(
        c.probe_timeout_within(Duration::from_millis(800)),
        Duration::from_millis(400)
    );
    let set = OllamaConfig {
        probe_timeout: Some(Duration::from_millis(700)),
        ..OllamaConfig::default()
    };
    assert_eq!(
        set.probe_timeout_within(Duration::from_millis(800)),
        Duration::from_millis(700)
    );
}
