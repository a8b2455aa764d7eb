#!/usr/bin/env python3
"""Alert latency and startup time of hostwarden, measured against real components.

alert:   a stand-in GPU's temperature (the NVML shim's state file) crosses a `for = "0s"` rule;
         the time from writing the new temperature to the alert's log record arriving at a real
         OTLP receiver (rotel), over repeated crossings (each crossing is resolved before the next).
startup: from exec to READY=1 on a NOTIFY_SOCKET this script listens on (hostwarden sends it
         after the first complete snapshot), over repeated starts.

usage: latency.py alert --hostwarden BIN --shim LIB --rotel BIN [--crossings N]
       latency.py startup --hostwarden BIN [--runs N]
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def shim_state(path, temp):
    with open(path + ".tmp", "w") as f:
        f.write(
            "init = ok\ndriver = 550.54.15\ncount = 1\n"
            "gpu.0.memory.total = 25769803776\ngpu.0.memory.used = 1073741824\n"
            "gpu.0.memory.free = 24696061952\ngpu.0.memory.reserved = 0\n"
            f"gpu.0.temp = {temp}\ngpu.0.temp.slowdown = 95\ngpu.0.temp.shutdown = 100\n"
        )
    os.replace(path + ".tmp", path)


def alert(a):
    tmp = tempfile.mkdtemp(prefix="hw-alert-")
    state = os.path.join(tmp, "shim.state")
    shim_state(state, 60)
    grpc, http = free_port(), free_port()
    rotel = subprocess.Popen(
        [a.rotel, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}", "--otlp-http-endpoint",
         f"127.0.0.1:{http}", "--exporter", "blackhole", "--debug-log", "logs",
         "--debug-log-verbosity", "detailed"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    firing = []  # arrival times of firing records
    cond = threading.Condition()

    def read():
        for line in rotel.stdout:
            if "alert.state: Str(firing)" in line:
                with cond:
                    firing.append(time.monotonic())
                    cond.notify_all()

    threading.Thread(target=read, daemon=True).start()
    cfg = os.path.join(tmp, "hostwarden.toml")
    with open(cfg, "w") as f:
        f.write(
            f"""[agent]
interval = "{a.interval}"
state_dir = "{tmp}/state"
status_socket = "{tmp}/status.sock"
[gpu]
nvml_library = "{a.shim}"
[zfs]
enabled = false
[ollama]
enabled = false
[export.otlp]
endpoint = "http://127.0.0.1:{grpc}"
protocol = "grpc"
[[rules]]
name = "gpu_hot"
metric = "hw.temperature"
match = {{ "hw.sensor_location" = "gpu" }}
op = ">"
warning = 85
clear = 80
"""
        )
    env = dict(os.environ, HOSTWARDEN_NVML_SHIM_STATE=state)
    env.pop("NOTIFY_SOCKET", None)
    agent = subprocess.Popen([a.hostwarden, "run", "--view", "never", "--config", cfg], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lat = []
    try:
        time.sleep(3)  # receiver up, first ticks exported
        for i in range(a.crossings):
            with cond:
                seen = len(firing)
            t0 = time.monotonic()
            shim_state(state, 90)
            with cond:
                if not cond.wait_for(lambda: len(firing) > seen, timeout=15):
                    sys.exit(f"crossing {i}: no alert record within 15 s")
                lat.append(firing[seen] - t0)
            shim_state(state, 60)
            time.sleep(2.5 * float(a.interval.rstrip("s")))  # let it resolve before the next
    finally:
        agent.terminate()
        rotel.terminate()
        agent.wait()
        rotel.wait()
    ms = [x * 1e3 for x in lat]
    interval_ms = float(a.interval.rstrip("s")) * 1e3
    print(f"\nAlert latency: temperature crossing -> log record at rotel, {len(ms)} crossings, tick {a.interval}")
    print(f"{'median ms':>10} {'p99 ms':>8} {'min ms':>8} {'max ms':>8} {'target ms':>10}")
    print(f"{statistics.median(ms):>10.0f} {pct(ms, 0.99):>8.0f} {min(ms):>8.0f} {max(ms):>8.0f} {interval_ms + 250:>10.0f}")


def startup(a):
    ready, first = [], []
    for _ in range(a.runs):
        tmp = tempfile.mkdtemp(prefix="hw-start-")
        sock_path = os.path.join(tmp, "notify.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(sock_path)
        s.settimeout(10)
        cfg = os.path.join(tmp, "hostwarden.toml")
        with open(cfg, "w") as f:
            f.write(f'[agent]\ninterval = "1s"\nstate_dir = "{tmp}/state"\nstatus_socket = "{tmp}/s.sock"\n')
        env = dict(os.environ, NOTIFY_SOCKET=sock_path)
        t0 = time.monotonic()
        p = subprocess.Popen([a.hostwarden, "run", "--view", "never", "--config", cfg], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                msg = s.recv(4096).decode()
                if "READY=1" in msg:
                    ready.append(time.monotonic() - t0)
                    break
        finally:
            p.terminate()
            p.wait()
            s.close()
    size = os.path.getsize(a.hostwarden)
    ms = [x * 1e3 for x in ready]
    print(f"\nStartup: exec -> READY=1 (sent after the first complete snapshot, all collectors on defaults), {len(ms)} runs")
    print(f"{'median ms':>10} {'min ms':>8} {'max ms':>8} {'binary MiB':>11}")
    print(f"{statistics.median(ms):>10.0f} {min(ms):>8.0f} {max(ms):>8.0f} {size / 2**20:>11.1f}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    al = sub.add_parser("alert")
    al.add_argument("--hostwarden", required=True)
    al.add_argument("--shim", required=True)
    al.add_argument("--rotel", default="rotel-agent")
    al.add_argument("--crossings", type=int, default=20)
    al.add_argument("--interval", default="1s")
    st = sub.add_parser("startup")
    st.add_argument("--hostwarden", required=True)
    st.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    alert(a) if a.cmd == "alert" else startup(a)


if __name__ == "__main__":
    main()
