//! An Alertmanager of the test's own (Debian's `prometheus-alertmanager`): own config, own data
//! dir, a free port, clustering off (or with given peers), routing every alert to a receiver
//! that notifies no one. It can be killed and started again on the same port. Killed on drop.

// Tests wait on real wall-clock time for real processes; tokio's virtual clock does not apply.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::prometheus_server::{http_get, try_http_get};
use crate::rotel::free_port;

/// The program Debian installs.
pub const PROGRAM: &str = "prometheus-alertmanager";

const CONFIG: &str = "route:\n  receiver: \"null\"\n  group_wait: 1s\n  group_interval: 1s\n\
                      receivers:\n  - name: \"null\"\n";

pub struct AlertmanagerServer {
    child: Option<Child>,
    /// host:port of the HTTP API.
    pub addr: String,
    /// host:port of the cluster listener, when clustered.
    pub cluster: Option<String>,
    peers: Vec<String>,
    dir: tempfile::TempDir,
    runs: u32,
}

impl AlertmanagerServer {
    /// A single Alertmanager (clustering off).
    pub fn start() -> AlertmanagerServer {
        Self::start_with(None, &[])
    }

    /// `cluster`: this member's cluster listen address (None: clustering off); `peers`: the
    /// other members' cluster addresses.
    pub fn start_with(cluster: Option<String>, peers: &[String]) -> AlertmanagerServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("alertmanager.yml"), CONFIG).expect("write config");
        let mut server = AlertmanagerServer {
            child: None,
            addr: format!("127.0.0.1:{}", free_port()),
            cluster,
            peers: peers.to_vec(),
            dir,
            runs: 0,
        };
        server.spawn(true);
        server
    }

    /// A free address for a cluster listener.
    pub fn free_cluster_addr() -> String {
        format!("127.0.0.1:{}", free_port())
    }

    /// `http://host:port`, as the agent's config takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("alertmanager-{}.log", self.runs))
    }

    fn spawn(&mut self, wait: bool) {
        self.runs += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let mut cmd = Command::new(PROGRAM);
        cmd.arg(format!(
            "--config.file={}",
            self.dir.path().join("alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", self.data_dir().display()))
        .arg(format!("--web.listen-address={}", self.addr))
        .arg(format!(
            "--cluster.listen-address={}",
            self.cluster.as_deref().unwrap_or("")
        ));
        for p in &self.peers {
            cmd.arg(format!("--cluster.peer={p}"));
        }
        if self.cluster.is_some() {
            // Settle quickly: the test's members find each other on loopback at once.
            cmd.args([
                "--cluster.settle-timeout=1s",
                "--cluster.gossip-interval=100ms",
            ]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager");
        self.child = Some(child);
        if wait {
            self.wait_ready();
        }
    }

    /// Polls until the API answers ready (Alertmanager has no event to wait on).
    pub fn wait_ready(&self) {
        self.wait_until(Duration::from_secs(30), "Alertmanager to be ready", || {
            try_http_get(&self.addr, "/-/ready", &[]).is_ok_and(|r| r.status == 200)
        });
    }

    /// Kills the server (SIGKILL: nothing is flushed), keeping or wiping its data dir.
    pub fn kill(&mut self, keep_data: bool) {
        if let Some(mut c) = self.child.take() {
            let _killed = c.kill();
            let _reaped = c.wait();
        }
        if !keep_data {
            let _gone = std::fs::remove_dir_all(self.data_dir());
        }
    }

    /// Starts it again on the same port and waits until it is ready.
    pub fn restart(&mut self) {
        self.spawn(true);
    }

    pub fn wait_until(&self, timeout: Duration, what: &str, ready: impl Fn() -> bool) {
        crate::wait::poll_until(timeout, Duration::from_millis(50), what, ready, || {
            format!("; alertmanager log:\n{}", self.log())
        });
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The alerts `GET /api/v2/alerts` lists (active ones: Alertmanager leaves out alerts
    /// whose endsAt has passed).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let reply = http_get(&self.addr, "/api/v2/alerts", &[]);
        assert_eq!(reply.status, 200, "{}", reply.body);
        match serde_json::from_str(&reply.body).expect("alerts JSON") {
            serde_json::Value::Array(a) => a,
            other => panic!("alerts are not a list: {other}"),
        }
    }

    /// The listed alerts named `alertname`.
    pub fn alerts_named(&self, alertname: &str) -> Vec<serde_json::Value> {
        self.alerts()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == alertname)
            .collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for AlertmanagerServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _killed = c.kill();
            let _reaped = c.wait();
        }
    }
}
