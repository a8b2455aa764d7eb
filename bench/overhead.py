#!/usr/bin/env python3
"""Overhead of hostwarden against Debian's prometheus-node-exporter and collectd, side by side.

All three run at the same time for the same window on the same machine, so a noisy neighbour
hits them alike; ratios are computed pair by pair from per-second samples of that one run.
hostwarden ticks every second; the two peers are scraped every second by this script.

For each process tree (the process and every descendant, e.g. hostwarden's `zpool iostat`
child) it samples, once a second, the CPU time (every thread's schedstat run time, plus what
reaped children left in cutime/cstime) and the main process's RSS. CPU per tick is the CPU spent
over a second divided by the ticks or scrapes in that second. Series per tick: hostwarden's `points=` in its debug tick line, the
peers' sample lines per scrape.

usage: overhead.py --seconds N --hostwarden-config FILE [--hostwarden BIN] [--json OUT]
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from ports import free_port

CLK = os.sysconf("SC_CLK_TCK")


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


def own_cpu_seconds(pid):
    """CPU of pid's own threads alone, in seconds."""
    try:
        return sum(int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
                   for t in os.listdir(f"/proc/{pid}/task")) / 1e9
    except (OSError, ValueError):
        return 0.0


def cpu_seconds(pid):
    """CPU of pid's whole tree in seconds: every live thread's run time (schedstat, ns), plus
    what each live process's reaped children left in its cutime/cstime (clock ticks). The
    second part catches short-lived processes: the agent's one-shot `zpool` calls and whatever
    its long-lived `zpool iostat` child runs in turn."""
    total = 0.0
    for p in [pid] + children_of(pid):
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    total += int(f.read().split()[0]) / 1e9
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[13]) + int(fields[14])) / CLK
        except (OSError, IndexError, ValueError):
            continue  # the process ended between listing and reading
    return total


def rss_kib(pid):
    """(VmRSS, RssAnon) in KiB. RssAnon is the heap and stacks; the rest of VmRSS is mostly
    the executable's and libraries' pages mapped from the page cache."""
    got = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon"):
                    got[k] = int(v.split()[0])
    except OSError:
        pass
    return got.get("VmRSS", 0), got.get("RssAnon", 0)


def library_rss_kib(pid, needle):
    """Resident KiB of the shared library whose path contains `needle`: its file mappings plus
    the anonymous mapping the loader places right after them (its .bss). The NVML stand-in
    keeps a table for 256 devices there, which is the library's memory, not the agent's."""
    total, lib_end = 0, None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            counting = False
            for line in f:
                head = line.split()
                if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                    start, end = (int(x, 16) for x in head[0].split("-"))
                    path = head[5] if len(head) > 5 else ""
                    counting = needle in path or (not path and start == lib_end)
                    lib_end = end if needle in path else None
                elif counting and head and head[0] == "Rss:":
                    total += int(head[1])
    except (OSError, ValueError):
        return 0
    return total


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
        self.cpu, self.own, self.rss, self.anon, self.events, self.series = [], [], [], [], [], []

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
    """(median, p10, p90) of xs."""
    xs = sorted(xs)
    if not xs:
        return (float("nan"),) * 3
    q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))]
    return statistics.median(xs), q(0.1), q(0.9)


def spread(t, fmt="{:.3f}"):
    m, lo, hi = t
    return f"{fmt.format(m)} [{fmt.format(lo)}..{fmt.format(hi)}]"


def wait_for_tick(hw, tick_re, timeout=10):
    """Blocks until hostwarden logs its next tick; returns the number of lines seen by then."""
    seen = len(hw.lines)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(tick_re.search(l) for l in hw.lines[seen:]):
            return len(hw.lines)
        time.sleep(0.01)
    sys.exit("hostwarden logged no tick within 10 s:\n" + "".join(hw.lines[-20:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--hostwarden", default="target/release/hostwarden")
    ap.add_argument("--hostwarden-config", required=True)
    ap.add_argument("--json")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="hw-overhead-")
    ne_port, cd_port = free_port(), free_port()
    env = dict(os.environ, HOSTWARDEN_LOG="hostwarden=debug")
    env.pop("NOTIFY_SOCKET", None)
    procs = [
        Proc("hostwarden", [a.hostwarden, "run", "--view", "never", "--config", a.hostwarden_config], env, stderr_lines=True),
        Proc("node_exporter", ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ne_port}"]),
        Proc("collectd", ["collectd", "-f", "-C", collectd_conf(tmp, cd_port)]),
    ]
    hw = procs[0]
    urls = {"node_exporter": f"http://127.0.0.1:{ne_port}/metrics", "collectd": f"http://127.0.0.1:{cd_port}/metrics"}
    tick_re = re.compile(r"Tick\..*tick=(\d+) points=(\d+)")
    try:
        time.sleep(3)  # warm-up: first scrapes and the first ticks are not steady state
        for p in procs:
            if p.p.poll() is not None:
                sys.exit(f"{p.name} exited early with {p.p.returncode}:\n" + "".join(p.lines[-20:]))
        for p in procs[1:]:
            scrape(urls[p.name])  # fails loudly if a peer does not serve
        # Sample half a tick after a tick, so each one-second window holds exactly one tick.
        seen = wait_for_tick(hw, tick_re)
        time.sleep(0.5)
        last = {p.name: (cpu_seconds(p.p.pid), own_cpu_seconds(p.p.pid)) for p in procs}
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
            new = hw.lines[seen:]
            seen += len(new)
            ticks = [m for m in map(tick_re.search, new) if m]
            hw.events.append(len(ticks))
            hw.series += [int(m.group(2)) for m in ticks]
            for p in procs:
                now = (cpu_seconds(p.p.pid), own_cpu_seconds(p.p.pid))
                p.cpu.append(now[0] - last[p.name][0])
                p.own.append(now[1] - last[p.name][1])
                last[p.name] = now
                rss, anon = rss_kib(p.p.pid)
                p.rss.append(rss)
                p.anon.append(anon)
        nvml_kib = library_rss_kib(hw.p.pid, "libnvidia-ml")
    finally:
        for p in procs:
            p.stop()

    # CPU per tick or scrape, per one-second window (a window without one is skipped).
    per = {p.name: [c / e * 1e3 if e else None for c, e in zip(p.cpu, p.events)] for p in procs}
    rows = {}
    for p in procs:
        ms = [x for x in per[p.name] if x is not None]
        own = [c / e * 1e3 for c, e in zip(p.own, p.events) if e]
        series = statistics.median(p.series) if p.series else 0
        third = max(1, len(p.rss) // 3)
        # Growth: median of the last third against the first third, robust to one-off spikes.
        growth = lambda xs: statistics.median(xs[-third:]) - statistics.median(xs[:third])
        rows[p.name] = {
            "cpu_ms": stats(ms),
            "own_ms": statistics.median(own) if own else float("nan"),
            "cpu_ms_mean": sum(p.cpu) / max(1, sum(p.events)) * 1e3,
            "series": series,
            "cpu_us_per_series": statistics.median(ms) * 1e3 / series if series else float("nan"),
            "rss_mib": statistics.median(p.rss[len(p.rss) // 2:]) / 1024,
            "anon_mib": statistics.median(p.anon[len(p.anon) // 2:]) / 1024,
            "rss_growth_kib": growth(p.rss),
            "anon_growth_kib": growth(p.anon),
            "events": sum(p.events),
        }
    print("| agent | CPU ms per tick or scrape, median [p10..p90] | of which the process itself | mean | series | CPU µs per series | steady RSS MiB (anon) | RSS growth KiB (anon) | ticks or scrapes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {spread(r['cpu_ms'])} | {r['own_ms']:.3f} | {r['cpu_ms_mean']:.3f} | {r['series']:.0f} | {r['cpu_us_per_series']:.2f} | "
              f"{r['rss_mib']:.1f} ({r['anon_mib']:.1f}) | {r['rss_growth_kib']:+.0f} ({r['anon_growth_kib']:+.0f}) | {r['events']} |")
    print()
    print("| hostwarden / peer, pair by pair per second | CPU per tick, median [p10..p90] | series | CPU per series |")
    print("|---|---:|---:|---:|")
    ratios = {}
    for peer in ("node_exporter", "collectd"):
        rs = [h / q for h, q in zip(per["hostwarden"], per[peer]) if h is not None and q]
        ratios[peer] = stats(rs)
        sr = rows["hostwarden"]["series"] / max(rows[peer]["series"], 1)
        print(f"| / {peer} | {spread(ratios[peer], '{:.2f}')} | {sr:.2f} | {ratios[peer][0] / sr:.2f} |")
    h, c = rows["hostwarden"], rows["collectd"]
    verdict = lambda ok: "met" if ok else "MISSED"
    print()
    print("- CPU counts each process and all its descendants. hostwarden's descendants are its `zpool` "
          "calls (every `pool_interval`, 10 s) and `zpool iostat` child; here `zpool` is the stand-in "
          "bash script, so every one-shot call forks `bash` and `cat`; its `iostat` is one bash process "
          "that waits with a builtin between reports, as a real `zpool iostat` is one process that sleeps. 'of which the process itself' excludes all descendants.")
    print("- RSS is VmRSS of the main process (descendants excluded), median of the second half; anon "
          "= RssAnon (heap, stacks), the rest is mostly executable pages mapped from the page cache.")
    print(f"- target CPU per tick <= collectd's per scrape while reading more series: {verdict(ratios['collectd'][0] <= 1 and h['series'] > c['series'])} "
          f"(ratio {ratios['collectd'][0]:.2f}; the process alone {h['own_ms']:.3f} ms vs collectd {c['cpu_ms'][0]:.3f} ms; series {h['series']:.0f} vs {c['series']:.0f})")
    sr = h["series"] / max(c["series"], 1)
    print(f"- target CPU per series <= 0.25 x collectd's: {verdict(ratios['collectd'][0] / sr <= 0.25)} ({ratios['collectd'][0] / sr:.2f} x)")
    print(f"- target RSS < 8 MiB: {verdict(h['rss_mib'] < 8)} ({h['rss_mib']:.1f} MiB VmRSS, of which {h['anon_mib']:.1f} MiB anonymous "
          f"and {nvml_kib / 1024:.1f} MiB the NVML library's own mappings, here the stand-in's)")
    print(f"- target no RSS growth: {verdict(h['anon_growth_kib'] <= 64)} (anon {h['anon_growth_kib']:+.0f} KiB, VmRSS {h['rss_growth_kib']:+.0f} KiB, last third vs first third of {a.seconds} s; 64 KiB allowed for allocator noise)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "ratios": ratios}, f, indent=1)
    if any(r["events"] == 0 for r in rows.values()):
        sys.exit("a process never ticked or was never scraped")


if __name__ == "__main__":
    main()
