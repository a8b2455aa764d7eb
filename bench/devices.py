#!/usr/bin/env python3
"""What the disk, filesystem and network collectors (issue 17) cost, beside node_exporter's same
collectors, in one window on this machine.

Three processes run side by side for --seconds, one tick or scrape per second each:
  - hostwarden, host collector with disks, filesystems and network (1 s tick, no export);
  - hostwarden, the same host collector with those three parts disabled;
  - node_exporter with `--collector.disable-defaults --collector.diskstats
    --collector.filesystem --collector.netdev` (its own default filters), scraped every second.
Each process's CPU (every thread's schedstat run time) is sampled once a second. The added
collectors' cost per tick is the per-second difference between the two hostwardens (median),
which cancels what the rest of the host collector and the tick loop cost; node_exporter's is its
CPU per scrape (the HTTP exchange included, as a Prometheus server would make it). Both are also
given per device, mount and interface each side reports, with the number of series each side
exports for them: `once --format json` points named system.disk.*, system.filesystem.*,
system.network.*, and node_exporter's node_disk_*, node_filesystem_*, node_network_* samples.

usage: devices.py --hostwarden BIN [--seconds N] [--json OUT]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

# Importing overhead.py must not leave a __pycache__ in the checkout.
sys.dont_write_bytecode = True
from hostonly import agent_conf, sample_seconds, wait_port  # noqa: E402
from overhead import Proc, stats  # noqa: E402
from ports import free_port  # noqa: E402

WITH, WITHOUT, NE = "hostwarden, host with disks/filesystems/network", "hostwarden, host without them", "node_exporter"
FAMILIES = (("disks", "system.disk.", "node_disk_", "device"),
            ("mounts", "system.filesystem.", "node_filesystem_", "mountpoint"),
            ("interfaces", "system.network.", "node_network_", "device"))
NE_ARGS = ["--collector.disable-defaults", "--collector.diskstats", "--collector.filesystem",
           "--collector.netdev"]


def conf(dir_, name, parts):
    """hostonly.py's host-only agent (no export), with or without the three parts."""
    path = agent_conf(dir_, name, None)
    on = "true" if parts else "false"
    with open(path, "a") as f:
        f.write(f"[host.disk]\nenabled = {on}\n[host.filesystem]\nenabled = {on}\n"
                f"[host.network]\nenabled = {on}\n")
    return path


def hostwarden_series(hostwarden, config):
    """Per family: (series, distinct devices/mounts/interfaces) of one `once`."""
    out = subprocess.run([hostwarden, "once", "--format", "json", "--config", config],
                         capture_output=True, text=True, check=True).stdout
    points = json.loads(out)["points"]
    keys = {"disks": "system.device", "mounts": "system.filesystem.mountpoint",
            "interfaces": "network.interface.name"}
    r = {}
    for fam, prefix, _, _ in FAMILIES:
        mine = [p for p in points if p["name"].startswith(prefix)]
        r[fam] = (len(mine), len({p["attributes"].get(keys[fam]) for p in mine} - {None}))
    return r


def ne_series(body):
    """Per family: (series, distinct devices/mounts/interfaces) of one node_exporter scrape."""
    r = {}
    for fam, _, prefix, label in FAMILIES:
        lines = [l for l in body.splitlines() if l.startswith(prefix)]
        names = set()
        for l in lines:
            at = l.find(f'{label}="')
            if at >= 0:
                names.add(l[at + len(label) + 2:].split('"', 1)[0])
        r[fam] = (len(lines), len(names))
    return r


def measure(hostwarden, seconds):
    ne_bin = shutil.which("prometheus-node-exporter")
    if not ne_bin:
        sys.exit("prometheus-node-exporter is missing: bash tests/ci/install-node-exporter.sh")
    tmp = tempfile.mkdtemp(prefix="hw-devices-")
    port = free_port()
    env = dict(os.environ, HOSTWARDEN_LOG="warn")
    env.pop("NOTIFY_SOCKET", None)
    with_conf, without_conf = conf(tmp, "with", True), conf(tmp, "without", False)
    procs = []
    try:
        procs = [
            Proc(WITH, [hostwarden, "run", "--view", "never", "--config", with_conf], env),
            Proc(WITHOUT, [hostwarden, "run", "--view", "never", "--config", without_conf], env),
            Proc(NE, [ne_bin, f"--web.listen-address=127.0.0.1:{port}"] + NE_ARGS),
        ]
        wait_port(port)
        url = f"http://127.0.0.1:{port}/metrics"
        time.sleep(3)  # warm-up: start-up and the first ticks are not steady
        for p in procs:
            if p.p.poll() is not None:
                sys.exit(f"{p.name} exited early with {p.p.returncode}")
        body = sample_seconds(procs, url, seconds)
    finally:
        for p in procs:
            p.stop()
    series = {"hostwarden": hostwarden_series(hostwarden, with_conf), NE: ne_series(body)}
    shutil.rmtree(tmp, ignore_errors=True)
    w, wo, ne = procs
    return {
        "added_ms": stats([a - b for a, b in zip(w.cpu, wo.cpu)])[0],
        "with_ms": stats(w.cpu)[0],
        "without_ms": stats(wo.cpu)[0],
        "ne_ms": stats(ne.cpu)[0],
        "series": series,
    }


def table(r):
    hw, ne = r["series"]["hostwarden"], r["series"][NE]
    hw_n = sum(n for _, n in hw.values())
    ne_n = sum(n for _, n in ne.values())
    print(f"CPU per tick: hostwarden's host collector {r['with_ms']:.3f} ms with disks, filesystems "
          f"and network, {r['without_ms']:.3f} ms without (medians of the same seconds).")
    print()
    print("| | CPU ms per tick or scrape (median) | per device/mount/interface | "
          "disks | mounts | interfaces | series (disk + filesystem + network) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ms, s, n in (("hostwarden, the three collectors (with - without)", r["added_ms"], hw, hw_n),
                           ("node_exporter diskstats + filesystem + netdev, per scrape", r["ne_ms"], ne, ne_n)):
        per = ms / n if n else float("nan")
        print(f"| {name} | {ms:.3f} | {per:.4f} | {s['disks'][1]} | {s['mounts'][1]} | "
              f"{s['interfaces'][1]} | {sum(c for c, _ in s.values())} "
              f"({s['disks'][0]} + {s['mounts'][0]} + {s['interfaces'][0]}) |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hostwarden", default="target/release/hostwarden")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    r = measure(a.hostwarden, a.seconds)
    table(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
