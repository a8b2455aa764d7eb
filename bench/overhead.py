#!/usr/bin/env python3
"""Overhead of hostwarden against Debian's prometheus-node-exporter and collectd, side by side.

All three run at the same time for the same window on the same machine, so a noisy neighbour
hits them alike; ratios are computed pair by pair from per-second samples of that one run.
hostwarden ticks every second; the two peers are scraped every second by this script.

For each process tree (the process and every descendant, e.g. hostwarden's `zpool iostat`
child) it samples, once a second, the CPU time (every thread's /proc/*/task/*/schedstat run time,
in nanoseconds, plus what reaped children left in cutime/cstime) and the RSS. CPU per tick is the CPU spent over a second divided by the ticks or
scrapes in that second. Series per tick: hostwarden's `points=` in its debug tick line, the
peers' sample lines per scrape.

usage: overhead.py --seconds N --hostwarden-config FILE [--hostwarden BIN] [--json OUT]
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid):
    """Direct and indirect children of pid, from /proc/*/stat ppid fields."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parent[int(d)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                pass
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        frontier += kids
    return out


def cpu_seconds(pid):
    """CPU of pid and its live descendants in ns precision (every thread's schedstat), plus
    what reaped children left in the parent's cutime/cstime (clock-tick precision)."""
    total = 0.0
    for i, p in enumerate([pid] + children_of(pid)):
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    total += int(f.read().split()[0]) / 1e9
            if i == 0:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[13]) + int(fields[14])) / CLK
        except (OSError, IndexError, ValueError):
            continue
    return total


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Proc:
    def __init__(self, name, argv, env=None, stderr_lines=False):
        self.name = name
        self.lines = []
        self.p = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE if stderr_lines else subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        if stderr_lines:
            threading.Thread(target=self._read, daemon=True).start()
        self.cpu, self.rss, self.events, self.series = [], [], [], []

    def _read(self):
        for raw in self.p.stderr:
            self.lines.append(raw.decode(errors="replace"))

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(timeout=5)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)


def scrape(url):
    with urllib.request.urlopen(url, timeout=2) as r:
        body = r.read().decode(errors="replace")
    return sum(1 for l in body.splitlines() if l and not l.startswith("#"))


def collectd_conf(dir_, port):
    conf = os.path.join(dir_, "collectd.conf")
    with open(conf, "w") as f:
        f.write(
            f"""Interval 1
BaseDir "{dir_}"
PIDFile "{dir_}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin cpu
LoadPlugin load
LoadPlugin memory
LoadPlugin swap
LoadPlugin interface
LoadPlugin disk
LoadPlugin df
LoadPlugin write_prometheus
<Plugin cpu>
  ReportByCpu true
  ValuesPercentage true
</Plugin>
<Plugin write_prometheus>
  Port "{port}"
</Plugin>
"""
        )
    return conf


def stats(xs):
    xs = sorted(xs)
    if not xs:
        return (float("nan"),) * 3
    q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))]
    return statistics.median(xs), q(0.1), q(0.9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--hostwarden", default="target/release/hostwarden")
    ap.add_argument("--hostwarden-config", required=True)
    ap.add_argument("--hostwarden-env", action="append", default=[], help="KEY=VALUE")
    ap.add_argument("--json")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="hw-overhead-")
    ne_port, cd_port = free_port(), free_port()
    env = dict(os.environ, HOSTWARDEN_LOG="hostwarden=debug")
    env.pop("NOTIFY_SOCKET", None)
    for kv in a.hostwarden_env:
        k, v = kv.split("=", 1)
        env[k] = v
    procs = [
        Proc("hostwarden", [a.hostwarden, "run", "--view", "never", "--config", a.hostwarden_config], env, stderr_lines=True),
        Proc("node_exporter", ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ne_port}"]),
        Proc("collectd", ["collectd", "-f", "-C", collectd_conf(tmp, cd_port)]),
    ]
    urls = {"node_exporter": f"http://127.0.0.1:{ne_port}/metrics", "collectd": f"http://127.0.0.1:{cd_port}/metrics"}
    tick_re = re.compile(r"Tick\..*tick=(\d+) points=(\d+)")
    try:
        time.sleep(3)  # warm-up: first scrapes and the first ticks are not steady state
        for p in procs:
            if p.p.poll() is not None:
                sys.exit(f"{p.name} exited early with {p.p.returncode}")
        seen_lines = len(procs[0].lines)
        last_cpu = {p.name: cpu_seconds(p.p.pid) for p in procs}
        next_t = time.monotonic()
        for _ in range(a.seconds):
            for p in procs[1:]:
                try:
                    p.series.append(scrape(urls[p.name]))
                    p.events.append(1)
                except OSError:
                    p.events.append(0)
            next_t += 1.0
            time.sleep(max(0.0, next_t - time.monotonic()))
            hw = procs[0]
            new = hw.lines[seen_lines:]
            seen_lines += len(new)
            ticks = [tick_re.search(l) for l in new]
            ticks = [m for m in ticks if m]
            hw.events.append(len(ticks))
            hw.series += [int(m.group(2)) for m in ticks]
            for p in procs:
                now = cpu_seconds(p.p.pid)
                p.cpu.append(now - last_cpu[p.name])
                last_cpu[p.name] = now
                r = rss_kib(p.p.pid)
                if r:
                    p.rss.append(r)
    finally:
        for p in procs:
            p.stop()

    rows = {}
    for p in procs:
        per_event = [c / e * 1e3 for c, e in zip(p.cpu, p.events) if e]
        series = statistics.median(p.series) if p.series else 0
        half = p.rss[len(p.rss) // 2:]
        rows[p.name] = {
            "cpu_ms_per_tick": stats(per_event),
            "series": series,
            "cpu_us_per_series": statistics.median(per_event) * 1e3 / series if series else float("nan"),
            "rss_mib": statistics.median(half) / 1024 if half else float("nan"),
            "rss_growth_kib": (p.rss[-1] - p.rss[min(5, len(p.rss) - 1)]) if len(p.rss) > 1 else 0,
            "ticks": sum(p.events),
        }
    print(f"\nOverhead, {a.seconds} s side by side, 1 tick or scrape per second (median [p10..p90])")
    print(f"{'agent':<14} {'CPU ms/tick':>24} {'series':>8} {'CPU µs/series':>14} {'RSS MiB':>8} {'RSS growth KiB':>15} {'ticks':>6}")
    for name, r in rows.items():
        m, lo, hi = r["cpu_ms_per_tick"]
        print(f"{name:<14} {f'{m:.3f} [{lo:.3f}..{hi:.3f}]':>24} {r['series']:>8.0f} {r['cpu_us_per_series']:>14.2f} {r['rss_mib']:>8.1f} {r['rss_growth_kib']:>15} {r['ticks']:>6}")
    hw = rows["hostwarden"]
    for peer in ("node_exporter", "collectd"):
        pr = rows[peer]
        ratio = hw["cpu_ms_per_tick"][0] / pr["cpu_ms_per_tick"][0] if pr["cpu_ms_per_tick"][0] else float("nan")
        print(f"hostwarden / {peer}: CPU per tick {ratio:.2f}x, series {hw['series'] / max(pr['series'], 1):.2f}x, RSS {hw['rss_mib'] / pr['rss_mib']:.2f}x")
    for name, p in zip(rows, procs):
        mean = sum(p.cpu) / max(1, sum(p.events)) * 1e3
        print(f"{name:<14} mean CPU per tick over the run: {mean:.3f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
