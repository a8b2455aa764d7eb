//! Starting the stand-in Ollama server (`src/bin/ollama-standin`) from a test.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::workspace_root;

/// Path of the `ollama-standin` binary, built once per test process.
pub fn standin_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        crate::cargo_build(
            "hostwarden-tests",
            "ollama-standin",
            crate::built_as_release(),
        )
    })
    .clone()
}

/// The fixtures the stand-in serves by default (`tests/fixtures/ollama`).
pub fn fixtures() -> PathBuf {
    workspace_root().join("tests/fixtures/ollama")
}

/// A running stand-in on a free port; killed when dropped.
pub struct Standin {
    child: Child,
    pub addr: SocketAddr,
}

impl Standin {
    /// Starts `ollama-standin --listen 127.0.0.1:0 ARGS...` with `env` added to its environment,
    /// and waits for its "Listening on ADDR" line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Standin {
        let mut child = Command::new(standin_bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ollama-standin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the stand-in's first line");
        let addr = line
            .strip_prefix("Listening on ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("stand-in did not start: {line:?}"));
        Standin { child, addr }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            eprintln!("stand-in already gone: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("waiting for the stand-in: {e}");
        }
    }
}
