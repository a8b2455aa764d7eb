//! XID errors end to end: the running agent registers the stand-in GPUs for NVML XID events
//! (tests/shims/nvml), the test appends an XID to a device's history in the shim's state file
//! mid-run, and the shipped `gpu_xid` rule must page within one tick, with the XID in the
//! event. The latency from the write to the alert line is printed for the record.

// The test times a real process on the wall clock; tokio's virtual clock does not apply.
#![allow(clippy::disallowed_types)]

#[path = "gpu_common/mod.rs"]
mod common;

use std::time::Duration;

use hostwarden_tests::daemon::{Daemon, Line};

use common::*;

fn main() -> ExitCode {
    let h = Harness::new();
    h.run(vec![
        h.test(
            "an_xid_delivered_mid_run_pages_within_one_tick",
            SHIM,
            an_xid_delivered_mid_run_pages_within_one_tick,
        ),
        h.test(
            "xids_outside_the_paged_families_are_counted_but_do_not_page",
            SHIM,
            xids_outside_the_paged_families_are_counted_but_do_not_page,
        ),
    ])
}

/// The agent under `run --view always`, its output lines waited on as events (a 60 s guard).
fn start_agent(setup: &Setup) -> Daemon {
    let mut cmd = setup.command(&["run", "--view", "always"]);
    cmd.env("NO_COLOR", "1")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    Daemon::spawn(cmd)
}

const GUARD: Duration = Duration::from_secs(60);

fn is_tick(line: &str) -> bool {
    line.starts_with("gpu ")
}

fn an_xid_delivered_mid_run_pages_within_one_tick() {
    let mut state = ShimState::with_gpus(vec![ShimGpu::full(0), ShimGpu::full(1)]);
    let setup = Setup::new(&nvml_shim::build(), &state);
    let mut agent = start_agent(&setup);
    // Two ticks with the set registered and nothing pending.
    agent.wait_for(GUARD, "first tick", is_tick);
    agent.wait_for(GUARD, "second tick", is_tick);
    state.gpus[1].xids = vec![79];
    let mark = agent.seen.len();
    let written = std::time::Instant::now();
    state.write(setup.state.parent().unwrap());
    let Line { at, text: firing } = agent.wait_for(GUARD, "gpu_xid firing", |l| {
        l.contains("rule=gpu_xid") && l.contains("state=\"firing\"")
    });
    let latency = at.duration_since(written);
    eprintln!("XID write to alert: {} ms", latency.as_millis());
    // Within one tick: the tick that read the XID raised the alert, so at most that tick's
    // view line came between the write and the alert.
    let ticks = agent.seen[mark..].iter().filter(|l| is_tick(l)).count();
    assert!(
        ticks <= 1,
        "the alert came {ticks} ticks after the XID ({} ms):\n{}",
        latency.as_millis(),
        agent.seen.join("\n")
    );
    assert!(firing.contains("severity=\"critical\""), "{firing}");
    assert!(firing.contains("hw.gpu.xid=79"), "{firing}");
    assert!(firing.contains(&format!("hw.id={}", uuid(1))), "{firing}");
    // The XID itself is logged with its device.
    assert!(
        agent
            .seen
            .iter()
            .any(|l| l.contains("XID error") && l.contains("xid=79") && l.contains("index=1")),
        "{}",
        agent.seen.join("\n")
    );
}

fn xids_outside_the_paged_families_are_counted_but_do_not_page() {
    let mut state = ShimState::with_gpus(vec![ShimGpu::full(0)]);
    let setup = Setup::new(&nvml_shim::build(), &state);
    let mut agent = start_agent(&setup);
    agent.wait_for(GUARD, "first tick", is_tick);
    // XID 32 (a push-buffer stream error, an application fault): counted, not paged.
    state.gpus[0].xids = vec![32];
    state.write(setup.state.parent().unwrap());
    agent.wait_for(GUARD, "the XID log line", |l| l.contains("xid=32"));
    for _ in 0..3 {
        agent.wait_for(GUARD, "tick", is_tick);
    }
    assert!(
        !agent
            .seen
            .iter()
            .any(|l| l.contains("rule=gpu_xid") && l.contains("state=")),
        "{}",
        agent.seen.join("\n")
    );
    drop(agent);
    // `once` from a fresh agent sees no XID (events are not historical) and no xid series.
    let snap = setup.once();
    assert!(snap.values("hw.gpu.xid.errors", &[]).is_empty());
}
