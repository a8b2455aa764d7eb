//! The ARC coordination phase of the OpenZFS guest (issue 18; tests/zfs-vm/guest-init.sh): the
//! agent in apply mode lowers zfs_arc_max for a model the Ollama stand-in holds in RAM, the ARC
//! gives up what was asked within a minute, and zfs_arc_max is back at its boot value after the
//! agent stops. The shrink curve is printed for the record.

use serde_json::Value;

use super::{Guest, parse_arcstats};

/// One second of arc-curve.txt: unix time, ARC size, c, c_max, MemAvailable (KiB).
#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    size: u64,
    c: u64,
    c_max: u64,
    avail: u64,
}

fn curve(text: &str) -> Vec<Sample> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            let n = |i: usize| f.get(i)?.parse::<u64>().ok();
            Some(Sample {
                t: f.first()?.parse().ok()?,
                size: n(1)?,
                c: n(2)?,
                c_max: n(3)?,
                avail: n(4)? * 1024,
            })
        })
        .collect()
}

fn mib(b: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let m = b as f64 / f64::from(1u32 << 20);
    m
}

pub(super) fn check_coordination(guest: &Guest, version: &str) {
    guest.ok("coord-lo");
    let boot: u64 = guest
        .ok("coord-param-boot")
        .trim()
        .parse()
        .expect("boot zfs_arc_max");
    let boot_c_max = parse_arcstats(&guest.ok("coord-arcstats-before"))["c_max"];
    let entries: Vec<Value> = guest
        .ok("coord-journal")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "zfs_arc")
        .collect();
    let set = entries
        .iter()
        .find(|e| e["action"] == "set")
        .unwrap_or_else(|| panic!("OpenZFS {version}: no zfs_arc set in the journal: {entries:?}"));
    let to = set["to"].as_u64().expect("to");
    let at = set["at_ms"].as_f64().expect("at_ms") / 1000.0;
    let size_then = set["figures"]["arc_size"]
        .as_u64()
        .expect("figures.arc_size");
    let reason = set["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("llama3.1:8b") && reason.contains("MemAvailable"),
        "OpenZFS {version}: the journal's reason names neither the model nor MemAvailable: {reason}"
    );
    assert_eq!(
        set["from"].as_u64(),
        Some(boot_c_max),
        "set from the boot c_max"
    );
    let asked = size_then.saturating_sub(to);
    assert!(
        asked > 256 << 20,
        "OpenZFS {version}: only {asked} bytes asked: {set}"
    );

    let samples = curve(&guest.ok_file("arc-curve.txt"));
    eprintln!(
        "OpenZFS {version} ARC coordination: zfs_arc_max {:.0} -> {:.0} MiB at t=0, ARC {:.0} MiB \
         then (asked {:.0} MiB); reason: {reason}",
        mib(boot_c_max),
        mib(to),
        mib(size_then),
        mib(asked)
    );
    eprintln!("  t_s  size_MiB  c_MiB  c_max_MiB  MemAvailable_MiB");
    for s in samples.iter().filter(|s| s.t >= at - 3.0) {
        eprintln!(
            "{:5.1} {:9.0} {:6.0} {:10.0} {:17.0}",
            s.t - at,
            mib(s.size),
            mib(s.c),
            mib(s.c_max),
            mib(s.avail)
        );
    }
    // "At the target" as OpenZFS itself counts it: arc_is_overflowing() (module/zfs/arc.c, 2.1 and
    // 2.3) reports no overflow while size stays under arc_c + max(SPA_MAXBLOCKSIZE, arc_c >> 8) / 2;
    // what stays above arc_c within that is headers and buffers in use, which eviction skips
    // (2.1.11 settled 0.3 MiB above a 600 MiB arc_c here).
    let slack = (16u64 << 20).max(to >> 8) / 2;
    let reached = samples
        .iter()
        .find(|s| s.t >= at && s.t <= at + 60.0 && s.size <= to + slack);
    let lowest = samples
        .iter()
        .filter(|s| s.t >= at && s.t <= at + 60.0)
        .map(|s| s.size)
        .min();
    match reached {
        Some(s) => eprintln!(
            "OpenZFS {version}: the ARC gave up {:.1} MiB (asked {:.1}; lowest {:.1} MiB, the \
             target {:.0} MiB + OpenZFS's no-overflow band {:.0} MiB) {:.1} s after the change",
            mib(size_then - s.size),
            mib(asked),
            lowest.map(mib).unwrap_or(f64::NAN),
            mib(to),
            mib(slack),
            s.t - at
        ),
        None => panic!(
            "OpenZFS {version}: within a minute the ARC went down to {:?} MiB only, not to the \
             {:.0} MiB set (+ {:.0} MiB OpenZFS counts as no overflow; asked {:.0} MiB)",
            lowest.map(mib),
            mib(to),
            mib(slack),
            mib(asked)
        ),
    }

    // `hostwarden status` while the agent ran: the value wanted and the change.
    let status: Value = serde_json::from_str(&guest.ok("coord-status")).expect("coord-status JSON");
    let target = status["key_values"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| {
            k["name"] == "zfs.arc.limit" && k["attributes"]["zfs.arc.limit_type"] == "tuner_target"
        });
    assert!(target.is_some(), "status shows no tuner_target: {status}");
    let shown = status["actuations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| a["unit"] == "zfs_arc_max" && a["result"] == "set");
    assert!(
        shown,
        "status lists no zfs_arc_max change: {}",
        status["actuations"]
    );
    assert_eq!(
        guest.ok("coord-param-running").trim().parse::<u64>().ok(),
        Some(to),
        "zfs_arc_max while the agent ran"
    );

    // Stopped: the boot value back, and journaled.
    let after: u64 = guest
        .ok("coord-param-after")
        .trim()
        .parse()
        .expect("zfs_arc_max after");
    assert_eq!(
        after, boot,
        "OpenZFS {version}: zfs_arc_max after the agent stopped"
    );
    let c_max_after = parse_arcstats(&guest.ok("coord-arcstats-after"))["c_max"];
    assert_eq!(
        c_max_after, boot_c_max,
        "OpenZFS {version}: c_max after the agent stopped"
    );
    let restored = entries.iter().find(|e| e["action"] == "restored");
    assert!(
        restored.is_some_and(|r| r["to"].as_u64() == Some(boot_c_max)),
        "OpenZFS {version}: no restore journaled: {entries:?}"
    );
}
