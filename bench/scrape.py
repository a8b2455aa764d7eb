#!/usr/bin/env python3
"""Cost of one scrape of hostwarden's /metrics endpoint, beside one of prometheus-node-exporter.

Both run side by side for the same window. Seconds alternate: in one, this script scrapes both
once (as a Prometheus would at a 1 s scrape interval); in the next, neither. A process's CPU per
scrape is its mean CPU in scraping seconds minus its mean CPU in quiet seconds, so hostwarden's
own ticks (every second, in both kinds of second) cancel out, as does any steady background.
hostwarden ticks every second, so every scrape finds a new snapshot and pays a full encoding
(the cache only helps when scrapes outnumber ticks). Wall time per scrape is seen from here.

usage: scrape.py --seconds N [--hostwarden BIN]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request

from overhead import Proc, cpu_seconds
from ports import free_port


def fetch(url):
    t = time.monotonic()
    with urllib.request.urlopen(url, timeout=2) as r:
        body = r.read()
    ms = (time.monotonic() - t) * 1e3
    series = sum(1 for l in body.splitlines() if l and not l.startswith(b"#"))
    return ms, series, len(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--hostwarden", default="target/release/hostwarden")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="hw-scrape-")
    hw_port, ne_port = free_port(), free_port()
    config = os.path.join(tmp, "hostwarden.toml")
    with open(config, "w") as f:
        f.write(f'[agent]\ninterval = "1s"\nstate_dir = "{tmp}/state"\nstatus_socket = "{tmp}/status.sock"\n\n'
                f'[export.prometheus]\nlisten = "127.0.0.1:{hw_port}"\n')
    env = dict(os.environ, HOSTWARDEN_LOG="warn")
    env.pop("NOTIFY_SOCKET", None)
    procs = [
        Proc("hostwarden", [a.hostwarden, "run", "--view", "never", "--config", config], env),
        Proc("node_exporter", ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ne_port}"]),
    ]
    urls = {"hostwarden": f"http://127.0.0.1:{hw_port}/metrics", "node_exporter": f"http://127.0.0.1:{ne_port}/metrics"}
    cpu = {p.name: ([], []) for p in procs}  # (scraping seconds, quiet seconds)
    seen = {p.name: [] for p in procs}
    try:
        time.sleep(3)  # warm-up: the first ticks and the first scrapes are not steady state
        for p in procs:
            if p.p.poll() is not None:
                sys.exit(f"{p.name} exited early with {p.p.returncode}")
            fetch(urls[p.name])  # fails loudly if one does not serve
        last = {p.name: cpu_seconds(p.p.pid) for p in procs}
        next_t = time.monotonic()
        for i in range(2 * a.seconds):
            scraping = i % 2 == 0
            if scraping:
                for p in procs:
                    seen[p.name].append(fetch(urls[p.name]))
            next_t += 1.0
            time.sleep(max(0.0, next_t - time.monotonic()))
            for p in procs:
                now = cpu_seconds(p.p.pid)
                cpu[p.name][0 if scraping else 1].append(now - last[p.name])
                last[p.name] = now
    finally:
        for p in procs:
            p.stop()

    print("| endpoint | CPU ms per scrape (scraping s - quiet s, means) | wall ms per scrape, median | series | bytes | scrapes |")
    print("|---|---:|---:|---:|---:|---:|")
    for p in procs:
        busy, quiet = cpu[p.name]
        per = (statistics.mean(busy) - statistics.mean(quiet)) * 1e3
        s = seen[p.name]
        print(f"| {p.name} | {per:.3f} | {statistics.median(x[0] for x in s):.2f} | "
              f"{statistics.median(x[1] for x in s):.0f} | {statistics.median(x[2] for x in s):.0f} | {len(s)} |")
    print()
    print("- hostwarden ticks every second here, so each scrape encodes a fresh snapshot; at the "
          "default 5 s interval four scrapes in five are served from the cache.")


if __name__ == "__main__":
    main()
