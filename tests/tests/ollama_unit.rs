//! The Ollama collector against a real `systemd --user` manager: a unit that exists but is not
//! running makes a silent Ollama "down" (`ollama_down` goes pending), while a unit name systemd
//! does not know, with nothing answering, is "absent" (no Ollama alert at all).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use hostwarden_tests::bin;
use hostwarden_tests::harness::Harness;
use hostwarden_tests::standin::standin_bin;
use hostwarden_tests::systemd_user::{self, UserManager};

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![h.test(
        "an_inactive_unit_is_down_and_an_unknown_unit_is_absent",
        systemd_user::NEEDS,
        an_inactive_unit_is_down_and_an_unknown_unit_is_absent,
    )])
}

fn write_config(dir: &Path, mgr: &UserManager, url: &str, unit: &str) -> PathBuf {
    let path = dir.join("hostwarden.toml");
    let text = format!(
        "[agent]\ninterval = \"300ms\"\nstate_dir = \"{state}\"\n\n\
         [gpu]\nenabled = false\n\n[zfs]\nenabled = false\n\n\
         [ollama]\nurl = \"{url}\"\nunit = \"{unit}\"\n\n\
         [tuner]\nbus = \"{bus}\"\n",
        state = dir.display(),
        bus = mgr.bus_address(),
    );
    std::fs::write(&path, text).expect("config");
    path
}

/// The log of `run --ticks 6`.
fn run_log(config: &Path) -> String {
    let out = Command::new(bin())
        .args(["run", "--view", "never", "--ticks", "6", "--config"])
        .arg(config)
        .env("HOSTWARDEN_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run hostwarden");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

fn ollama_down_events(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("rule=ollama_down") && l.contains("event_id="))
        .collect()
}

fn an_inactive_unit_is_down_and_an_unknown_unit_is_absent() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mgr = UserManager::start();
    // Installed, never started: LoadState=loaded, ActiveState=inactive, nothing listening.
    mgr.install_unit(
        "ollama.service",
        &format!(
            "[Service]\nType=exec\nExecStart={} --listen 127.0.0.1:{port}\n",
            standin_bin().display()
        ),
    );
    assert_eq!(mgr.property("ollama.service", "ActiveState"), "inactive");

    let dir = tempfile::tempdir().expect("dir");
    let log = run_log(&write_config(dir.path(), &mgr, &url, "ollama.service"));
    let events = ollama_down_events(&log);
    assert!(
        events
            .first()
            .is_some_and(|l| l.contains("state=\"pending\"")),
        "an installed but stopped Ollama is down:\n{log}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let log = run_log(&write_config(
        dir.path(),
        &mgr,
        &url,
        "no-such-ollama.service",
    ));
    assert!(
        mgr.property("no-such-ollama.service", "LoadState") == "not-found",
        "the unknown unit must not exist"
    );
    assert_eq!(ollama_down_events(&log), Vec::<&str>::new(), "{log}");
}
