//! A Prometheus server of the test's own (Debian's `prometheus`), scraping given targets every
//! second, and a minimal client of its HTTP API. Killed on drop.

// Tests wait on real wall-clock time for real processes; tokio's virtual clock does not apply.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::rotel::free_port;

pub struct PrometheusServer {
    child: Child,
    pub addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// One `GET` answer.
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` from `addr` over HTTP/1.0 (the server closes after the reply), with `headers`.
/// Panics when the request fails.
pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    try_http_get(addr, path, headers).unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"))
}

/// `http_get` that reports a refused, reset or malformed exchange instead of panicking: for
/// readiness probes of a server that is still starting (it may accept and then reset).
pub fn try_http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Result<HttpReply, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("timeout: {e}"))?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send request: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read reply: {e}"))?;
    let raw = String::from_utf8(raw).map_err(|e| format!("utf-8 reply: {e}"))?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no header/body split")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("no status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(HttpReply {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Percent-encodes a query-string value.
pub fn encode_query(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl PrometheusServer {
    /// Starts `prometheus` scraping `targets` (host:port) as job `job` every second, with
    /// `honor_labels: true` so that the targets' own `job` and `instance` labels are kept, and
    /// with basic authentication when `basic_auth` (user, password) is given.
    pub fn start(
        job: &str,
        targets: &[&str],
        basic_auth: Option<(&str, &str)>,
    ) -> PrometheusServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let auth = basic_auth.map_or(String::new(), |(u, p)| {
            format!("    basic_auth:\n      username: \"{u}\"\n      password: \"{p}\"\n")
        });
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: \"{job}\"\n    honor_labels: true\n{auth}    \
             static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start prometheus");
        let server = PrometheusServer {
            child,
            addr,
            log,
            _dir: dir,
        };
        server.wait_until(Duration::from_secs(30), "Prometheus to be ready", || {
            TcpStream::connect(&server.addr).is_ok()
                && http_get(&server.addr, "/-/ready", &[]).status == 200
        });
        server
    }

    /// Polls `ready` (Prometheus has no event to wait on) until it holds or `timeout` passes.
    pub fn wait_until(&self, timeout: Duration, what: &str, ready: impl Fn() -> bool) {
        crate::wait::poll_until(timeout, Duration::from_millis(200), what, ready, || {
            format!("; prometheus log:\n{}", self.log())
        });
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `/api/v1/query` for an instant vector: each series' labels and value.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let reply = http_get(
            &self.addr,
            &format!("/api/v1/query?query={}", encode_query(promql)),
            &[],
        );
        assert_eq!(reply.status, 200, "query {promql}: {}", reply.body);
        let v: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"]
            .as_array()
            .expect("a vector result")
            .iter()
            .map(|s| {
                let labels = s["metric"].as_object().cloned().unwrap_or_default();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|x| x.parse().ok())
                    .expect("a sample value");
                (labels, value)
            })
            .collect()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}
