//! `hostwarden run` on hosts with and without Ollama: no Ollama alert where Ollama never lived
//! (nothing listening, no unit, no `ollama serve`), `ollama_down` where it answered and then
//! died, and no alert at all from the shipped defaults on this machine (no Ollama, no ZFS, no
//! GPU).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hostwarden_tests::bin;
use hostwarden_tests::daemon::{Daemon, tick_fields};
use hostwarden_tests::standin::Standin;

/// The shipped defaults, with a short tick, a private state dir and Ollama at `url`.
fn config(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("hostwarden.toml");
    let text = format!(
        "[agent]\ninterval = \"300ms\"\nstate_dir = \"{}\"\n\n[ollama]\nurl = \"{url}\"\n",
        dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A local port nothing listens on.
fn closed_url() -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    format!("http://{addr}")
}

/// The log of `run --ticks N`.
fn run_ticks(config: &Path, ticks: u32) -> String {
    let out = Command::new(bin())
        .args([
            "run",
            "--view",
            "never",
            "--ticks",
            &ticks.to_string(),
            "--config",
        ])
        .arg(config)
        .env("HOSTWARDEN_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("JOURNAL_STREAM")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

/// Alert events in a log: every one carries its `event_id`.
fn alert_events(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("event_id=")).collect()
}

#[test]
fn absent_ollama_raises_no_ollama_alert_over_several_ticks() {
    let dir = tempfile::tempdir().unwrap();
    // 10 ticks of 300 ms: `ollama_down` would be pending from the first tick with up = 0.
    let log = run_ticks(&config(dir.path(), &closed_url()), 10);
    let ollama: Vec<&str> = alert_events(&log)
        .into_iter()
        .filter(|l| l.contains("rule=ollama"))
        .collect();
    assert!(ollama.is_empty(), "{ollama:#?}\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("rule=ollama_down") && l.contains("Rule stays quiet")),
        "ollama_down should say its metric does not exist here:\n{log}"
    );
}

#[test]
fn ollama_that_answered_then_died_fires_ollama_down() {
    let dir = tempfile::tempdir().unwrap();
    let server = Standin::start(&[], &[]);
    let cfg = config(dir.path(), &server.url());
    let mut agent = Daemon::start(&cfg, &[], &[("NO_COLOR", "1")]);
    // Two ticks that saw it answer (a tick's log line), then it dies.
    for _ in 0..2 {
        agent.wait_for(Duration::from_secs(20), "a tick", |l| {
            tick_fields(l).is_some()
        });
    }
    drop(server);
    // `for = "10s"` from the first failed probe; 40 s is a failure guard, not a sleep.
    let fired = agent.wait_for(Duration::from_secs(40), "ollama_down firing", |l| {
        l.contains("rule=ollama_down") && l.contains("state=\"firing\"")
    });
    assert!(
        fired.text.contains("severity=\"critical\""),
        "{}",
        fired.text
    );
}

/// The "done when": on this machine `hostwarden run` with the shipped defaults raises no
/// alert. Nothing fires, and no rule about a component this host lacks (Ollama, ZFS, GPU) even
/// goes pending. `cpu_busy` may go pending while other builds share these cores: that is a true
/// reading of the CPU, and its `for = "5m"` cannot pass in 20 ticks.
#[test]
fn run_on_a_host_without_ollama_zfs_or_gpu_raises_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    let log = run_ticks(&config(dir.path(), &closed_url()), 20);
    let events = alert_events(&log);
    let wrong: Vec<&&str> = events
        .iter()
        .filter(|l| {
            l.contains("state=\"firing\"")
                || ["rule=ollama", "rule=zfs", "rule=gpu"]
                    .iter()
                    .any(|r| l.contains(r))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
