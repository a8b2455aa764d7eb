//! The real `hostwarden run` binary in apply mode against a real `systemd --user` manager: the
//! policy's decision from the stand-in Ollama reaches the restarted process, and an agent
//! SIGKILLed in the middle of an apply finishes it when started again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hostwarden_tests::bin;
use hostwarden_tests::harness::Harness;
use hostwarden_tests::standin::{fixtures, standin_bin};
use hostwarden_tests::systemd_user::{self, UserManager, process_env, tuner_journal};
use tokio::time::Instant;

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![h.test(
        "the_agent_applies_the_policy_and_finishes_an_apply_it_was_killed_in",
        systemd_user::NEEDS,
        the_agent_applies_the_policy_and_finishes_an_apply_it_was_killed_in,
    )])
}

const UNIT: &str = "ollama.service";

/// A running agent whose stderr lines arrive on a channel.
struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Agent {
    fn start(config: &Path) -> Agent {
        let mut child = Command::new(bin())
            .args(["run", "--view", "never", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hostwarden run");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("agent: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Agent { child, lines }
    }

    /// Waits (up to 60 s) for a stderr line containing `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(text) => return l,
                Ok(_) => {}
                Err(e) => panic!("no line with {text:?} from the agent: {e}"),
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            eprintln!("agent already gone: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("waiting for the agent: {e}");
        }
    }
}

fn write_config(dir: &Path, mgr: &UserManager, url: &str) -> PathBuf {
    let path = dir.join("hostwarden.toml");
    let text = format!(
        "[agent]\ninterval = \"300ms\"\nstate_dir = \"{state}\"\nstatus_socket = \"{state}/status.sock\"\n\n\
             [gpu]\nenabled = false\n\n[zfs]\nenabled = false\n\n\
             [ollama]\nurl = \"{url}\"\nunit = \"{UNIT}\"\n\n\
             [tuner]\nmode = \"apply\"\nbus = \"{bus}\"\ndropin_dir = \"{dropins}\"\nsettle = \"0s\"\n\
             cooldown = \"0s\"\nrestart_when = \"now\"\nverify_timeout = \"20s\"\n",
        state = dir.display(),
        bus = mgr.bus_address(),
        dropins = mgr.unit_dir().display(),
    );
    std::fs::write(&path, text).expect("config");
    path
}

fn the_agent_applies_the_policy_and_finishes_an_apply_it_was_killed_in() {
    let dir = tempfile::tempdir().expect("dir");
    let (fifo, open) = (dir.path().join("gate.fifo"), dir.path().join("gate.open"));
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    std::fs::write(&open, "").expect("gate open");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let fx = |n: &str| fixtures().join(n).display().to_string();
    let mgr = UserManager::start();
    mgr.install_unit(
            UNIT,
            &format!(
                "[Service]\nType=exec\n\
                 ExecStartPre=/bin/sh -c 'test -e {open} || cat {fifo} >/dev/null'\n\
                 ExecStart={standin} --listen 127.0.0.1:{port} --model llama3.1:8b=6544691200/3403239424/32768 \
                 --tags {tags} --show llama3.1:8b={show}\n",
                open = open.display(),
                fifo = fifo.display(),
                standin = standin_bin().display(),
                tags = fx("tags.json"),
                show = fx("show-llama3.1-8b-q4km-real.json"),
            ),
        );
    mgr.systemctl(&["start", UNIT]);
    let config = write_config(dir.path(), &mgr, &format!("http://127.0.0.1:{port}"));

    // Hold the restart job in ExecStartPre, and SIGKILL the agent there.
    std::fs::remove_file(&open).expect("close the gate");
    let agent = Agent::start(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while mgr.property(UNIT, "SubState") != "start-pre" {
        assert!(
            Instant::now() < deadline,
            "the agent never restarted the unit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(agent);
    let entries = tuner_journal(dir.path());
    let started = entries
        .iter()
        .find(|e| e["event"] == "apply_started")
        .expect("apply_started in the journal")
        .clone();
    assert!(!entries.iter().any(|e| e["event"] == "apply_finished"));
    std::fs::write(&open, "").expect("open the gate");
    std::fs::write(&fifo, "go\n").expect("release ExecStartPre");

    // The next agent verifies and records completion, and restarts nothing more.
    let agent = Agent::start(&config);
    agent.wait_for("Interrupted tuner apply found complete");
    let pid: u32 = mgr.property(UNIT, "MainPID").parse().expect("MainPID");
    let env = process_env(pid);
    let after = started["after"].as_object().expect("after");
    assert!(!after.is_empty());
    for (k, v) in after {
        assert_eq!(
            env.get(k).map(String::as_str),
            v.as_str(),
            "{k} in the process"
        );
    }
    let finished = tuner_journal(dir.path())
        .into_iter()
        .find(|e| e["event"] == "apply_finished")
        .expect("apply_finished");
    assert_eq!(finished["result"], "applied");
    assert_eq!(finished["id"], started["id"]);
    // A few more ticks: same decision, same process.
    agent.wait_for("Tuner decision.");
    assert_eq!(mgr.property(UNIT, "MainPID"), pid.to_string());
}
