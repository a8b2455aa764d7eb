//! Parse cost of the ZFS collector's per-tick work for 1, 10 and 100 pools with vdevs.
//!
//! Inputs are built by replicating genuine OpenZFS 2.3.2 capture lines (pool `tank`: a mirror of
//! two files plus a log device; tests/fixtures/zfs/openzfs-2.3.2-qemu/) under new pool names.
//! Run: `cargo bench -p hostwarden --bench zfs_parse`. Prints a table; asserts nothing.

use std::hint::black_box;
use std::time::Duration;

use hostwarden::collectors::zfs::iostat::Reading;
use hostwarden::collectors::zfs::{metrics, parse, status};
use tokio::time::Instant;

const LIST: &str = include_str!("../../tests/fixtures/zfs/openzfs-2.3.2-qemu/list-Hp-v-o.txt");
const IOSTAT: &str = include_str!("../../tests/fixtures/zfs/openzfs-2.3.2-qemu/iostat-Hpl.txt");
const STATUS_JSON: &str =
    include_str!("../../tests/fixtures/zfs/openzfs-2.3.2-qemu/status-j-json-int.txt");
const STATUS_TEXT: &str = include_str!("../../tests/fixtures/zfs/openzfs-2.3.2-qemu/status.txt");

/// The lines of `text` that belong to pool `tank`, from its row up to the next pool row.
fn tank_block(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let pool_row = !line.starts_with('\t') && line.contains('\t');
        if pool_row {
            inside = line.starts_with("tank\t");
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

struct Inputs {
    list: String,
    iostat: String,
    status_json: String,
    status_text: String,
}

fn inputs(pools: usize) -> Inputs {
    let list_block = tank_block(LIST);
    let iostat_row = IOSTAT
        .lines()
        .find(|l| l.starts_with("tank\t"))
        .unwrap_or_default();
    let text_block = STATUS_TEXT
        .split("\n\n  pool: ")
        .nth(1)
        .map(|b| format!("  pool: {b}\n\n"))
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(STATUS_JSON).unwrap_or_default();
    let tank_json = json["pools"]["tank"].clone();

    let mut out = Inputs {
        list: String::new(),
        iostat: String::new(),
        status_json: String::new(),
        status_text: String::new(),
    };
    let mut json_pools = serde_json::Map::new();
    for i in 0..pools {
        let name = format!("pool{i:03}");
        out.list
            .push_str(&list_block.replacen("tank\t", &format!("{name}\t"), 1));
        out.iostat.push_str(&iostat_row.replacen("tank", &name, 1));
        out.iostat.push('\n');
        out.status_text.push_str(&text_block.replace("tank", &name));
        let mut p = tank_json.clone();
        p["name"] = name.clone().into();
        json_pools.insert(name, p);
    }
    let mut root = json.clone();
    root["pools"] = serde_json::Value::Object(json_pools);
    out.status_json = root.to_string();
    out
}

/// Mean nanoseconds of `f` over enough runs to fill ~150 ms.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut runs: u32 = 1;
    loop {
        let start = Instant::now();
        for _ in 0..runs {
            f();
        }
        let took = start.elapsed();
        if took >= Duration::from_millis(150) || runs >= 1 << 20 {
            return took.as_secs_f64() * 1e9 / f64::from(runs);
        }
        runs *= 4;
    }
}

fn main() {
    let sizes = [1usize, 10, 100];
    let mut rows = Vec::new();
    for &n in &sizes {
        let inp = inputs(n);
        let pools = parse::parse_list(&inp.list).unwrap_or_default();
        assert_eq!(pools.len(), n, "generated list parses to {n} pools");
        let list = time(|| {
            black_box(parse::parse_list(black_box(&inp.list)).ok());
        });
        let iostat = time(|| {
            black_box(parse::parse_iostat(black_box(&inp.iostat)).ok());
        });
        let json = time(|| {
            black_box(status::parse_status_json(black_box(&inp.status_json)).ok());
        });
        let text = time(|| {
            black_box(status::parse_status_text(black_box(&inp.status_text)).ok());
        });
        let statuses = status::parse_status_json(&inp.status_json).unwrap_or_default();
        let mut reading = Reading::default();
        reading.apply(
            parse::parse_iostat(&inp.iostat).unwrap_or_default(),
            false,
            Duration::from_secs(5),
        );
        let build = time(|| {
            let mut points = Vec::new();
            metrics::list_points(&pools, &mut points);
            metrics::status_points(&statuses, 0, &mut points);
            metrics::iostat_points(&reading, &pools, &mut points);
            black_box(points);
        });
        rows.push((n, [list, iostat, json, text, build]));
    }
    println!("ZFS parse cost per tick (pool = mirror of 2 + log, as in the 2.3.2 capture)");
    println!(
        "{:>6} | {:>14} | {:>14} | {:>16} | {:>16} | {:>14} | {:>12}",
        "pools",
        "list ns/pool",
        "iostat ns/pool",
        "status-j ns/pool",
        "status txt ns/pl",
        "points ns/pool",
        "tick total µs"
    );
    #[allow(clippy::cast_precision_loss)]
    for (n, t) in &rows {
        let per = |v: f64| v / *n as f64;
        let total: f64 = t.iter().sum::<f64>() - t[3]; // a tick reads JSON or text, not both
        println!(
            "{n:>6} | {:>14.0} | {:>14.0} | {:>16.0} | {:>16.0} | {:>14.0} | {:>12.1}",
            per(t[0]),
            per(t[1]),
            per(t[2]),
            per(t[3]),
            per(t[4]),
            total / 1e3
        );
    }
    if let (Some((_, t10)), Some((_, t100))) = (rows.get(1), rows.get(2)) {
        let slope = |i: usize| (t100[i] - t10[i]) / 90.0;
        println!(
            "slope 10→100 pools (ns per added pool): list {:.0}, iostat {:.0}, status-j {:.0}, status text {:.0}, points {:.0}",
            slope(0),
            slope(1),
            slope(2),
            slope(3),
            slope(4)
        );
    }
}
