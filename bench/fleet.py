#!/usr/bin/env python3
"""Fleet sizing by simulation (issue 19): N agents on this machine against one real receiver.

For each N, one rotel (`--exporter blackhole`) receives OTLP http/protobuf through one nginx of
this script's own, which is the measuring hop: it logs every request's `$request_length`
(request line, headers and body as received: the HTTP bytes; TCP/IP framing is not counted),
the listen port it came in on, its status and how long rotel took to answer. Then N hostwarden
agents start, each with its own config, state dir, status socket, identity and /proc tree:

- /proc: agent i reads a copy of one of the captured trees in tests/fixtures/proc (2, 64 and
  128 CPUs, in turn). A capture is frozen, and utilisation is a difference of two reads of
  /proc/stat, so a frozen tree reports no `system.cpu.utilization` at all; each copy's `stat` is
  therefore a symlink to one file per tree that this script advances every 0.5 s (every CPU
  busy a fixed 5-60 % of the time, its own share). The other files stay as captured.
- identity: service.instance.id is a UUID v5 of /etc/machine-id, which the agent reads at `/`
  (not under proc_root), and no config key sets it; OTEL_RESOURCE_ATTRIBUTES (which replaces
  detected values) gives each agent its own service.instance.id, host.id and host.name.
- host collectors only ([gpu], [zfs], [ollama] off), tick every 1 s, export every 10 s, with
  the shipped rules; half the agents gzip their requests and half do not, in the same run
  (agent i's tree is i mod 3; gzip alternates so that every tree has both), each (tree,
  compression) pair on its own nginx port so bytes are counted per pair.
- starts are staggered evenly over one export interval, so exports are not all in phase.

After a warm-up (the last start plus 12 s, more than one export interval) a window of
`--seconds` is measured: bytes and requests from nginx's log, points per export from the
agents' debug tick lines (`points=`, the snapshot the exporter reads), alert log records from
rotel's `--debug-log logs`, and CPU (every thread's schedstat run time) and RSS of rotel, of
nginx, and of all agents together (the simulation's own cost on the same two cores).

N is sustained when every agent ticked at least 95 % of the window's whole seconds with no gap
over 2 s between two ticks (the ticker delays rather than skips: a late tick pushes every later
one back, so lag shows up as fewer ticks and a long gap), rotel answered every request with 2xx and 99 % of them within one tick
(1 s), and the requests that arrived are at least 95 % of the exports the agents should have
made.

usage: fleet.py [--agents 10,50,200] [--probe 300,500,1000] [--seconds 40] [--hostwarden BIN]
                [--json OUT]
"""

import argparse
import calendar
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from overhead import Proc, children_of, cpu_seconds, own_cpu_seconds, rss_kib
from ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREES = ["debian12-qemu-2cpu", "debian12-kernel-qemu-64cpu", "debian12-kernel-qemu-128cpu"]
COMPRESSIONS = ["none", "gzip"]
EXPORT_S = 10
STEP_S = 0.5  # how often the animated /proc/stat files advance
WARMUP_S = 12
# The agents run as a user id of their own (no passwd entry needed). Each agent watches its config
# with one inotify instance, and the kernel allows a user 128 of them by default
# (fs.inotify.max_user_instances): hundreds of agents as root would take them all from every
# other root process on this shared machine. Under their own id, agents past the limit only log
# that they cannot watch their config (counted apart: one agent per real host never meets it).
AGENT_UID = 64519
NO_WATCH = "Cannot watch the config"
TICK = re.compile(r"^(\S+Z) +DEBUG .*Tick\..*\btick=(\d+) points=(\d+) took_ms=(\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # rotel colours its debug log even into a file


def assignment(i):
    """(tree, compression) of agent i: trees in turn, gzip alternating so that each block of six
    agents has every pair once."""
    return TREES[i % 3], COMPRESSIONS[(i % 3 + i // 3) % 2]


class AnimatedStat:
    """One /proc/stat per captured tree whose cpu lines advance every STEP_S, each CPU busy its
    own fixed share (5-60 %) of the jiffies that pass; the aggregate `cpu` line is their sum."""

    def __init__(self, src, dst, seed):
        self.dst = dst
        self.cpus, self.rest = [], []
        total = None
        with open(src) as f:
            for line in f:
                label, *fields = line.split()
                if label == "cpu":
                    total = [int(v) for v in fields]
                elif label.startswith("cpu"):
                    self.cpus.append((label, [int(v) for v in fields]))
                else:
                    self.rest.append(line)
        self.total = total
        rng = random.Random(seed)
        self.share = [rng.uniform(0.05, 0.6) for _ in self.cpus]
        self.write()

    def advance(self):
        per_cpu = int(100 * STEP_S)  # USER_HZ jiffies per CPU per step
        for (_, fields), share in zip(self.cpus, self.share):
            busy = round(per_cpu * share)
            fields[0] += busy  # user
            fields[3] += per_cpu - busy  # idle
            self.total[0] += busy
            self.total[3] += per_cpu - busy
        self.write()

    def write(self):
        lines = ["cpu  " + " ".join(map(str, self.total)) + "\n"]
        lines += [f"{label} {' '.join(map(str, fields))}\n" for label, fields in self.cpus]
        tmp = self.dst + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(lines + self.rest))
        os.replace(tmp, self.dst)  # a reader sees the old file or the new one, never half


def animate(stats, stop):
    while not stop.wait(STEP_S):
        for s in stats:
            s.advance()


def proc_tree(d, i, tree):
    """Agent i's own /proc: a copy of the capture, its `stat` a link to the animated one."""
    dst = os.path.join(d, f"agent{i:03d}", "proc")
    shutil.copytree(os.path.join(ROOT, "tests/fixtures/proc", tree), dst)
    os.remove(os.path.join(dst, "stat"))
    os.symlink(os.path.join(d, f"stat-{tree}"), os.path.join(dst, "stat"))
    return dst


def nginx_conf(d, ports, upstream):
    servers = "".join(
        f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://rotel; "
        "proxy_http_version 1.1; proxy_set_header Connection \"\"; } }\n"
        for port in ports.values())
    return (f"pid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n"
            "worker_rlimit_nofile 32768;\n"
            "events { worker_connections 16384; }\n"
            "http {\n"
            "log_format wire '$msec $server_port $uri $request_length $status $upstream_response_time';\n"
            f"access_log {d}/access.log wire;\n"
            f"client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n"
            f"fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n"
            # Bodies stay in memory: a spilled body goes to a temp file the worker (not root)
            # cannot write in this root-owned directory, and rotel would see a 500.
            "client_max_body_size 16m; client_body_buffer_size 16m;\n"
            f"upstream rotel {{ server 127.0.0.1:{upstream}; keepalive 32; }}\n"
            f"{servers}}}\n")


def agent_config(sub, port, compression):
    return (f'[agent]\ninterval = "1s"\nstate_dir = "{sub}/state"\n'
            f'status_socket = "{sub}/status.sock"\n'
            f'[host]\nproc_root = "{sub}/proc"\n'
            "[gpu]\nenabled = false\n[zfs]\nenabled = false\n[ollama]\nenabled = false\n"
            f'[export.otlp]\nendpoint = "http://127.0.0.1:{port}"\n'
            f'protocol = "http/protobuf"\ninterval = "{EXPORT_S}s"\ncompression = "{compression}"\n')


def identity(i):
    """What OTEL_RESOURCE_ATTRIBUTES gives agent i: its own instance id, machine id and name."""
    machine = uuid.uuid5(uuid.NAMESPACE_DNS, f"fleet-{i}.hostwarden.invalid").hex
    instance = uuid.uuid5(uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320"), machine)
    return f"service.instance.id={instance},host.id={machine},host.name=fleet-{i:03d}"


def wait_listening(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"fleet.py: nothing listened on {port}")


def wall(ts):
    """Seconds since the epoch of the agent's RFC 3339 UTC timestamp."""
    whole, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


def ticks(path, t0, t1):
    """(ticks, longest gap between two ticks, points per tick, slowest tick ms, warnings, whether
    it watches its config) in the wall-clock window [t0, t1) from one agent's log."""
    at, points, slowest, warnings, watch = [], [], 0, 0, True
    with open(path) as f:
        for line in f:
            m = TICK.match(line)
            if not m:
                if NO_WATCH in line:
                    watch = False
                    continue
                # An alert transition is logged as a warning too; it is not a problem.
                if (" WARN " in line or " ERROR " in line) and " rule=" not in line:
                    warnings += 1
                continue
            t = wall(m.group(1))
            if t0 <= t < t1:
                at.append(t)
                points.append(int(m.group(3)))
                slowest = max(slowest, int(m.group(4)))
    gaps = [b - a for a, b in zip(at, at[1:])]
    # The gap from the window's edges counts too: an agent that stopped ticking has one long gap.
    edges = [at[0] - t0, t1 - at[-1]] if at else [t1 - t0]
    return len(at), max(gaps + edges), points, slowest, warnings, watch


def access(path, t0, t1):
    """nginx log lines of requests completed in the wall-clock window [t0, t1): (port, uri,
    bytes, status, upstream seconds)."""
    rows = []
    with open(path) as f:
        for line in f:
            msec, port, uri, length, status, upstream = line.split()
            if not t0 <= float(msec) < t1:
                continue
            up = max((float(u) for u in upstream.replace(",", " ").split() if u != "-"),
                     default=0.0)
            rows.append((int(port), uri, int(length), int(status), up))
    return rows


def alert_records(path):
    """Log records rotel received: with `--debug-log logs` at basic verbosity it prints one
    `Received logs. ... logs=N` line per request."""
    with open(path, errors="replace") as f:
        return sum(int(m.group(1)) for line in f
                   if (m := re.search(r"Received logs\..*\blogs=(\d+)", ANSI.sub("", line))))


def tree_rss_mib(pid):
    """VmRSS of a process and its descendants (nginx's master and worker)."""
    return sum(rss_kib(p)[0] for p in [pid] + children_of(pid)) / 1024


def run(n, seconds, hw, keep=False):
    d = tempfile.mkdtemp(prefix=f"hw-fleet{n}-")
    os.chmod(d, 0o755)  # the agents' user reads its tree and the animated stat files in here
    as_root = os.geteuid() == 0
    if as_root:
        # The checkout may sit where the agents' user cannot reach (a root home directory).
        hw = shutil.copy(hw, os.path.join(d, "hostwarden"))
        os.chmod(hw, 0o755)
    stop = threading.Event()
    stats = [AnimatedStat(os.path.join(ROOT, "tests/fixtures/proc", t, "stat"),
                          os.path.join(d, f"stat-{t}"), seed) for seed, t in enumerate(TREES)]
    writer = threading.Thread(target=animate, args=(stats, stop), daemon=True)
    writer.start()
    grpc, http = free_port(), free_port()
    ports = {(t, c): free_port() for t in TREES for c in COMPRESSIONS}
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(nginx_conf(d, ports, http))
    rotel_log = os.path.join(d, "rotel.log")
    with open(rotel_log, "w") as out:
        rotel = subprocess.Popen(
            ["rotel-agent", "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
             "--otlp-http-endpoint", f"127.0.0.1:{http}", "--exporter", "blackhole",
             "--debug-log", "logs", "--debug-log-verbosity", "basic"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    nginx = Proc("nginx", ["nginx", "-e", f"{d}/nginx-error.log", "-p", d, "-c",
                           f"{d}/nginx.conf", "-g", "daemon off;"])
    agents = []
    try:
        wait_listening(http)
        for port in ports.values():
            wait_listening(port)
        gap = EXPORT_S / n
        for i in range(n):
            tree, compression = assignment(i)
            sub = os.path.join(d, f"agent{i:03d}")
            os.makedirs(sub)
            proc_tree(d, i, tree)
            with open(os.path.join(sub, "hostwarden.toml"), "w") as f:
                f.write(agent_config(sub, ports[(tree, compression)], compression))
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("OTEL_") and k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
            env["HOSTWARDEN_LOG"] = "warn,hostwarden::runtime=debug"
            env["OTEL_RESOURCE_ATTRIBUTES"] = identity(i)
            user = {}
            if as_root:
                for path in [sub] + [os.path.join(r, x) for r, ds, fs in os.walk(sub)
                                     for x in ds + fs]:
                    os.lchown(path, AGENT_UID, AGENT_UID)
                user = dict(user=AGENT_UID, group=AGENT_UID, extra_groups=[])
            with open(os.path.join(sub, "agent.log"), "w") as log:
                p = subprocess.Popen([hw, "run", "--view", "never", "--config",
                                      f"{sub}/hostwarden.toml"], stdout=subprocess.DEVNULL,
                                     stderr=log, env=env, start_new_session=True, **user)
            agents.append((i, tree, compression, sub, p))
            time.sleep(gap)
        time.sleep(WARMUP_S)
        for i, *_, p in agents:
            if p.poll() is not None:
                sys.exit(f"fleet.py: agent {i} exited early with {p.returncode}")
        load0 = open("/proc/loadavg").read().split()[:3]
        records0 = alert_records(rotel_log)
        # Reading a thousand agents' CPU takes a while: their window runs from the middle of
        # the first reading to the middle of the second.
        a0 = time.monotonic()
        agents0 = sum(own_cpu_seconds(p.pid) for *_, p in agents)
        a0 = (a0 + time.monotonic()) / 2
        rotel0, nginx0 = cpu_seconds(rotel.pid), cpu_seconds(nginx.p.pid)
        t0, w0 = time.monotonic(), time.time()
        time.sleep(seconds)
        elapsed, w1 = time.monotonic() - t0, time.time()
        rotel1, nginx1 = cpu_seconds(rotel.pid), cpu_seconds(nginx.p.pid)
        a1 = time.monotonic()
        agents1 = sum(own_cpu_seconds(p.pid) for *_, p in agents)
        a1 = (a1 + time.monotonic()) / 2
        rotel_rss = tree_rss_mib(rotel.pid)
        nginx_rss = tree_rss_mib(nginx.p.pid)
        agent_rss = [rss_kib(p.pid) for *_, p in agents]
        records1 = alert_records(rotel_log)
        load1 = open("/proc/loadavg").read().split()[:3]
        time.sleep(1)  # nginx writes a request's line when it completes
        rows = access(os.path.join(d, "access.log"), w0, w1)
    finally:
        for *_, p in agents:
            p.terminate()
        for *_, p in agents:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        nginx.stop()
        rotel.terminate()
        rotel.wait()
        stop.set()
        writer.join()

    per_agent = []
    for i, tree, compression, sub, _ in agents:
        count, gap, points, slowest, warnings, watch = ticks(os.path.join(sub, "agent.log"), w0,
                                                             w1)
        per_agent.append(dict(i=i, log=os.path.join(sub, "agent.log"), tree=tree, compression=compression, ticks=count, gap=gap,
                              points=statistics.median(points) if points else 0,
                              slowest_ms=slowest, warnings=warnings, watch=watch))
    if keep:
        print(f"fleet.py: kept {d}", file=sys.stderr)
    else:
        shutil.rmtree(d, ignore_errors=True)

    groups = {}
    for (tree, compression), port in ports.items():
        members = [a for a in per_agent if (a["tree"], a["compression"]) == (tree, compression)]
        if not members:
            continue
        metrics = [r for r in rows if r[0] == port and r[1] == "/v1/metrics"]
        groups[(tree, compression)] = dict(
            hosts=len(members),
            bytes_per_host_min=sum(r[2] for r in metrics) * 60 / elapsed / len(members),
            bytes_per_export=statistics.mean(r[2] for r in metrics) if metrics else 0,
            series=statistics.median(a["points"] for a in members))
    points_total = sum(a["points"] for a in per_agent)
    exports = sum(1 for r in rows if r[1] == "/v1/metrics")
    expected = n * elapsed / EXPORT_S
    upstream = sorted(r[4] for r in rows) or [0.0]
    bad = sum(1 for r in rows if not 200 <= r[3] < 300)
    # Whole seconds: a window of 40.3 s holds 40 or 41 ticks, not 40.3.
    min_rate = min(a["ticks"] for a in per_agent) / int(elapsed)
    max_gap = max(a["gap"] for a in per_agent)
    p99_ms = upstream[int(0.99 * (len(upstream) - 1))] * 1e3
    sustained = (min_rate >= 0.95 and max_gap <= 2.0 and bad == 0 and p99_ms <= 1000
                 and exports >= 0.95 * expected)
    return dict(
        n=n, seconds=round(elapsed, 1), window=(w0, w1), load_start=" ".join(load0), load_end=" ".join(load1),
        groups={f"{t}/{c}": g for (t, c), g in groups.items()},
        bytes_per_host_min={c: statistics.mean(
            g["bytes_per_host_min"] for (_, gc), g in groups.items() if gc == c)
            for c in COMPRESSIONS if any(gc == c for _, gc in groups)},
        series_per_host=points_total / n,
        points_per_s=points_total / EXPORT_S,
        exports=exports, exports_expected=expected, non_2xx=bad,
        upstream_p99_ms=p99_ms,
        alert_records_per_min=(records1 - records0) * 60 / elapsed,
        alert_records_total=records1,
        rotel_cpu_ms_s=(rotel1 - rotel0) / elapsed * 1e3, rotel_rss_mib=rotel_rss,
        nginx_cpu_ms_s=(nginx1 - nginx0) / elapsed * 1e3, nginx_rss_mib=nginx_rss,
        agents_cpu_ms_s=(agents1 - agents0) / (a1 - a0) * 1e3,
        agent_rss_mib=statistics.median(r[0] for r in agent_rss) / 1024,
        agent_anon_mib=statistics.median(r[1] for r in agent_rss) / 1024,
        min_tick_rate=min_rate, max_tick_gap_s=max_gap,
        slowest_tick_ms=max(a["slowest_ms"] for a in per_agent),
        agent_warnings=sum(a["warnings"] for a in per_agent),
        agents_without_watch=sum(1 for a in per_agent if not a["watch"]),
        sustained=sustained, agents=per_agent)


def report(results, seconds):
    print(f"Each N: one rotel (blackhole) behind one nginx that counts bytes, N agents (host "
          f"collectors only, tick 1 s, OTLP http/protobuf every {EXPORT_S} s, half with gzip), "
          f"starts staggered over {EXPORT_S} s, {WARMUP_S} s warm-up after the last start, then "
          f"{seconds} s measured; CPU is ms of CPU per second of wall time (1000 = one core)\n")
    print("| N | load avg (start → end) | bytes/host/min none | gzip | series/host | points/s at "
          "receiver | alert records/min | rotel CPU ms/s | rotel RSS MiB | nginx CPU ms/s | "
          "agents' CPU ms/s (all) | agent RSS MiB (anon) | exports got/expected | non-2xx | "
          "rotel p99 ms | min tick rate | max tick gap s | sustained |")
    print("|" + "---:|" * 18)
    for r in results:
        b = r["bytes_per_host_min"]
        print(f"| {r['n']} | {r['load_start']} → {r['load_end']} | {b.get('none', 0):,.0f} | "
              f"{b.get('gzip', 0):,.0f} | {r['series_per_host']:.0f} | {r['points_per_s']:,.0f} | "
              f"{r['alert_records_per_min']:.1f} | {r['rotel_cpu_ms_s']:.1f} | "
              f"{r['rotel_rss_mib']:.1f} | {r['nginx_cpu_ms_s']:.1f} | {r['agents_cpu_ms_s']:.0f} | "
              f"{r['agent_rss_mib']:.1f} ({r['agent_anon_mib']:.1f}) | "
              f"{r['exports']}/{r['exports_expected']:.0f} | {r['non_2xx']} | "
              f"{r['upstream_p99_ms']:.1f} | {r['min_tick_rate']:.2f} | {r['max_tick_gap_s']:.1f} | "
              f"{'yes' if r['sustained'] else 'NO'} |")
    print("\nPer tree and compression, at the largest N (series per host differ by CPU count: "
          "per-CPU utilisation is one series per CPU):\n")
    print("| tree | compression | hosts | series/host | bytes per export | bytes/host/min |")
    print("|---|---|---:|---:|---:|---:|")
    for key, g in sorted(results[-1]["groups"].items()) if results else []:
        tree, compression = key.split("/")
        print(f"| {tree} | {compression} | {g['hosts']} | {g['series']:.0f} | "
              f"{g['bytes_per_export']:,.0f} | {g['bytes_per_host_min']:,.0f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", default="10,50,200", help="the Ns of the table")
    ap.add_argument("--probe", default="300,500,1000", help="larger Ns tried once, smallest first, "
                    "until one is not sustained")
    ap.add_argument("--seconds", type=int, default=40)
    ap.add_argument("--hostwarden", default="target/release/hostwarden")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the work directories (the agents' "
                    "logs, nginx's access log, rotel's output)")
    a = ap.parse_args()
    for tool in ("nginx", "rotel-agent"):
        if not shutil.which(tool):
            sys.exit(f"fleet.py: {tool} is missing (tests/ci/install-tls.sh, install-otlp.sh)")
    results = []
    for n in [int(x) for x in a.agents.split(",") if x]:
        print(f"fleet.py: {n} agents", file=sys.stderr)
        results.append(run(n, a.seconds, a.hostwarden, a.keep))
    for n in [int(x) for x in a.probe.split(",") if x]:
        print(f"fleet.py: probing {n} agents", file=sys.stderr)
        results.append(run(n, a.seconds, a.hostwarden, a.keep))
        if not results[-1]["sustained"]:
            break
    report(results, a.seconds)
    watchless = max(r["agents_without_watch"] for r in results)
    if watchless:
        print(f"\n{watchless} agents ran without watching their config (the kernel's "
              f"fs.inotify.max_user_instances per user; a simulation artifact)")
    warned = max(r["agent_warnings"] for r in results)
    if warned:
        print(f"\nagents logged {warned} other warnings or errors (--keep keeps their logs)")
    largest = max((r["n"] for r in results if r["sustained"]), default=0)
    print(f"\nLargest N sustained on this machine: {largest}"
          f"{' (of those tried)' if results[-1]['sustained'] else ''}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    # A slow receiver is a finding; one that took nothing or refused requests is a broken bench.
    broken = [r["n"] for r in results if r["exports"] == 0 or r["non_2xx"]]
    if broken:
        sys.exit(f"fleet.py: no exports arrived, or some were refused, at N = {broken}")


if __name__ == "__main__":
    main()
