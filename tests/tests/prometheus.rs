//! The `/metrics` endpoint against a real Prometheus (Debian's `prometheus`): a server of the
//! test's own scrapes the real agent every second, and its HTTP API must return this host's
//! memory limit and per-CPU utilisation under this host's `instance`, scraping with basic
//! authentication. Also the endpoint's formats and refusals, read directly.

// Tests wait on real wall-clock time for real processes; tokio's virtual clock does not apply.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hostwarden::exporters::identity;
use hostwarden_tests::daemon::Daemon;
use hostwarden_tests::harness::Harness;
use hostwarden_tests::need::Need;
use hostwarden_tests::prometheus_server::{PrometheusServer, http_get};
use hostwarden_tests::strip_ansi;

const OPENMETRICS: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![
        h.test(
            "the_endpoint_serves_text_or_openmetrics_and_refuses_the_rest",
            &[],
            the_endpoint_serves_text_or_openmetrics_and_refuses_the_rest,
        ),
        h.test(
            "prometheus_reads_this_hosts_memory_limit_and_per_cpu_time",
            &[Need::Tool("prometheus")],
            prometheus_reads_this_hosts_memory_limit_and_per_cpu_time,
        ),
    ])
}

/// The agent with the endpoint on a port of the kernel's choosing, ticking every second.
struct Agent {
    daemon: Daemon,
    addr: String,
    _dir: tempfile::TempDir,
}

/// A user and password for the basic-auth tests, and the password's hash as the config takes it
/// (`printf %s 'correct horse battery staple' | sha256sum`).
const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse battery staple";
const PASSWORD_HASH: &str =
    "sha256:c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8a";

impl Agent {
    /// `extra` is appended to the `[export.prometheus]` section.
    fn start(extra: &str) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "[agent]\ninterval = \"1s\"\nstate_dir = \"{0}/state\"\nstatus_socket = \"{0}/status.sock\"\n\n\
             [gpu]\nenabled = false\n\n[zfs]\nenabled = false\n\n[ollama]\nenabled = false\n\n\
             [export.prometheus]\nlisten = \"127.0.0.1:0\"\n{extra}\n",
            dir.path().display()
        );
        let path = dir.path().join("hostwarden.toml");
        std::fs::write(&path, config).expect("write config");
        let mut daemon = Daemon::start(&path, &[], &[("NO_COLOR", "1")]);
        let line = daemon.wait_for(Duration::from_secs(30), "the endpoint", |l| {
            l.contains("Prometheus endpoint serving")
        });
        let addr = strip_ansi(&line.text)
            .split_whitespace()
            .find_map(|w| w.strip_prefix("listen=").map(str::to_owned))
            .expect("listen= in the log line");
        // A first tick, so that the endpoint has something to serve. The tick's log line comes
        // just before the snapshot is published: poll the endpoint for it.
        daemon.wait_for(Duration::from_secs(30), "a tick", |l| l.contains("Tick."));
        let deadline = Instant::now() + Duration::from_secs(10);
        let auth = format!("Basic {}", base64(&format!("{USER}:{PASSWORD}")));
        while !http_get(&addr, "/metrics", &[("Authorization", &auth)])
            .body
            .contains("system_memory_limit_bytes")
        {
            assert!(
                Instant::now() < deadline,
                "the endpoint never served a snapshot"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent {
            daemon,
            addr,
            _dir: dir,
        }
    }
}

/// Standard base64 with padding, for an Authorization header.
fn base64(text: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn mem_total_bytes() -> f64 {
    let kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal in /proc/meminfo");
    kib * 1024.0
}

/// The logical CPU numbers /proc/stat lists.
fn cpu_numbers() -> BTreeSet<String> {
    read("/proc/stat")
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.strip_prefix("cpu"))
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// This host's service.instance.id, as the agent derives it.
fn this_instance() -> String {
    let machine_id = read("/etc/machine-id");
    identity::from_machine_id(&machine_id)
}

fn the_endpoint_serves_text_or_openmetrics_and_refuses_the_rest() {
    let agent = Agent::start("");
    let text = http_get(&agent.addr, "/metrics", &[]);
    assert_eq!(text.status, 200, "{}", text.body);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        text.body.contains("# TYPE system_memory_limit_bytes gauge"),
        "{}",
        text.body
    );
    assert!(!text.body.contains("# EOF"));
    // Every family the endpoint serves has the name the collector's exporter would give it,
    // which is what the dashboard test holds the dashboard to.
    let (names, _) = hostwarden_tests::prometheus::exported();
    for family in text.body.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split_whitespace().next().expect("a name");
        assert!(
            name == "target_info" || names.iter().any(|n| n == name),
            "the endpoint's {name} is not the collector's name for any metric"
        );
    }
    let om = http_get(&agent.addr, "/metrics", &[("Accept", OPENMETRICS)]);
    assert_eq!(om.status, 200);
    assert!(
        om.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text; version=1.0.0")),
        "{:?}",
        om.headers
    );
    assert!(om.body.contains("# UNIT system_memory_limit_bytes bytes"));
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert_eq!(http_get(&agent.addr, "/", &[]).status, 404);
    assert_eq!(http_get(&agent.addr, "/metrics/x", &[]).status, 404);
    let oversized = "x".repeat(64 * 1024);
    let refused = std::panic::catch_unwind(|| {
        http_get(
            &agent.addr,
            "/metrics",
            &[("X-Padding", oversized.as_str())],
        )
        .status
    });
    // hyper answers 431 to headers beyond its buffer, or closes the connection outright.
    assert!(
        matches!(refused, Ok(431) | Err(_)),
        "oversized headers were served: {refused:?}"
    );
    drop(agent.daemon);
}

fn prometheus_reads_this_hosts_memory_limit_and_per_cpu_time() {
    let agent = Agent::start(&format!(
        "basic_auth_users = {{ {USER} = \"{PASSWORD_HASH}\" }}"
    ));
    let instance = this_instance();
    // The endpoint refuses a scraper without the password...
    let refused = http_get(&agent.addr, "/metrics", &[]);
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Basic realm=\"hostwarden\"")
    );
    let wrong = format!("Basic {}", base64(&format!("{USER}:not the password")));
    assert_eq!(
        http_get(&agent.addr, "/metrics", &[("Authorization", &wrong)]).status,
        401
    );
    // ...and Prometheus, given it, scrapes.
    let prom = PrometheusServer::start("hostwarden-scrape", &[&agent.addr], Some((USER, PASSWORD)));
    let limit_query = format!("system_memory_limit_bytes{{instance=\"{instance}\"}}");
    prom.wait_until(Duration::from_secs(60), "the first scrape", || {
        !prom.query(&limit_query).is_empty()
    });
    let up = prom.query("up");
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].1, 1.0, "the scrape failed: {up:?}\n{}", prom.log());

    let limit = prom.query(&limit_query);
    assert_eq!(limit.len(), 1, "{limit:?}");
    let (labels, value) = &limit[0];
    assert_eq!(labels["job"], "hostwarden", "{labels:?}");
    assert_eq!(labels["instance"], instance.as_str(), "{labels:?}");
    assert_eq!(*value, mem_total_bytes(), "memory limit vs /proc/meminfo");
    eprintln!("system_memory_limit_bytes{{instance={instance}}} = {value}");

    let per_cpu = prom.query(&format!(
        "system_cpu_time_seconds_total{{instance=\"{instance}\", cpu_mode=\"idle\"}}"
    ));
    let numbers: BTreeSet<String> = per_cpu
        .iter()
        .map(|(l, _)| {
            l["cpu_logical_number"]
                .as_str()
                .expect("a number")
                .to_owned()
        })
        .collect();
    assert_eq!(numbers, cpu_numbers(), "one series per CPU in /proc/stat");
    for (labels, v) in &per_cpu {
        assert!(*v > 0.0, "{labels:?} = {v}");
        assert_eq!(labels["job"], "hostwarden");
        eprintln!(
            "system_cpu_time_seconds_total{{cpu_logical_number={}, cpu_mode=idle}} = {v}",
            labels["cpu_logical_number"]
        );
    }

    // target_info ties the instance to this host's name and machine id.
    let info = prom.query(&format!("target_info{{instance=\"{instance}\"}}"));
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(
        info[0].0["host_name"],
        read("/proc/sys/kernel/hostname").trim(),
        "{info:?}"
    );
    assert_eq!(info[0].0["host_id"], read("/etc/machine-id").trim());
}
