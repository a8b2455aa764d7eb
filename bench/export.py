#!/usr/bin/env python3
"""What OTLP export costs the agent: plain against TLS, gzip off against on (issue 16).

Four agents run side by side for the same window, host collectors only (no GPU, ZFS or Ollama
here), each exporting every second over OTLP http/protobuf to one rotel through one nginx of
this script's own: two plain listeners and two TLS listeners (certificates made here with
openssl), each proxying to rotel. Running them together puts a noisy neighbour on all four at
once; the ratios are within this one run.

Per agent: CPU per tick (its process tree's CPU over the window divided by the seconds, one tick
and one export a second), resident memory at the end, and from nginx's access log the requests
and bytes per minute as nginx received them ($request_length: request line, headers and body,
after TLS is taken off, so TLS's own framing is not in it).

usage: export.py --seconds N [--hostwarden BIN]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from overhead import Proc, cpu_seconds, rss_kib
from ports import free_port

VARIANTS = [("plain", "none"), ("plain", "gzip"), ("tls", "none"), ("tls", "gzip")]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def certificates(d):
    """A CA and a server certificate for 127.0.0.1 signed by it (rustls wants a CA-signed leaf
    with the address in subjectAltName)."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)


def nginx_conf(d, ports, upstream):
    servers = ""
    for (transport, compression), port in zip(VARIANTS, ports):
        ssl = f"ssl; ssl_certificate {d}/server.pem; ssl_certificate_key {d}/server.key" \
            if transport == "tls" else ""
        servers += (f"server {{ listen 127.0.0.1:{port} {ssl}; location / {{ "
                    f"proxy_pass http://127.0.0.1:{upstream}; proxy_http_version 1.1; }} }}\n")
    return (f"pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            "log_format wire '$server_port $request_length';\n"
            f"access_log {d}/access.log wire;\n"
            f"client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n"
            f"fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n"
            "client_max_body_size 16m;\n"
            f"{servers}}}\n")


def wire(d):
    """(requests, bytes) per server port, from nginx's access log."""
    got = {}
    with open(os.path.join(d, "access.log")) as f:
        for line in f:
            port, length = line.split()
            n, b = got.get(int(port), (0, 0))
            got[int(port)] = (n + 1, b + int(length))
    return got


def wait_listening(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    sys.exit(f"export.py: nothing listened on {port}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--hostwarden", default="target/release/hostwarden")
    a = ap.parse_args()
    for tool in ("nginx", "openssl", "rotel-agent"):
        if not shutil.which(tool):
            sys.exit(f"export.py: {tool} is missing (tests/ci/install-tls.sh, install-otlp.sh)")

    d = tempfile.mkdtemp(prefix="hw-export-")
    certificates(d)
    grpc, http = free_port(), free_port()
    ports = [free_port() for _ in VARIANTS]
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(nginx_conf(d, ports, http))
    procs = [Proc("rotel", ["rotel-agent", "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
                            "--otlp-http-endpoint", f"127.0.0.1:{http}", "--exporter", "blackhole"]),
             Proc("nginx", ["nginx", "-e", f"{d}/error.log", "-p", d, "-c", f"{d}/nginx.conf",
                            "-g", "daemon off;"])]
    agents = []
    try:
        wait_listening(http)
        for (transport, compression), port in zip(VARIANTS, ports):
            name = f"{transport}+{compression}"
            sub = os.path.join(d, name)
            os.makedirs(sub)
            scheme = "https" if transport == "tls" else "http"
            cert = f'certificate = "{d}/ca.pem"\n' if transport == "tls" else ""
            with open(os.path.join(sub, "hostwarden.toml"), "w") as f:
                f.write(f'[agent]\ninterval = "1s"\nstate_dir = "{sub}/state"\n'
                        f'status_socket = "{sub}/status.sock"\n'
                        '[gpu]\nenabled = false\n[zfs]\nenabled = false\n[ollama]\nenabled = false\n'
                        f'[export.otlp]\nendpoint = "{scheme}://127.0.0.1:{port}"\n'
                        f'protocol = "http/protobuf"\ninterval = "1s"\ncompression = "{compression}"\n'
                        f"{cert}")
            env = dict(os.environ, HOSTWARDEN_LOG="warn")
            env.pop("NOTIFY_SOCKET", None)
            agents.append((name, port, Proc(name, [a.hostwarden, "run", "--view", "never",
                                                   "--config", f"{sub}/hostwarden.toml"], env)))
        time.sleep(5)  # warm-up: TLS handshakes, connection pools, the first exports
        for name, _, p in agents:
            if p.p.poll() is not None:
                sys.exit(f"export.py: agent {name} exited early with {p.p.returncode}")
        before = wire(d)
        cpu0 = {name: cpu_seconds(p.p.pid) for name, _, p in agents}
        t0 = time.monotonic()
        time.sleep(a.seconds)
        elapsed = time.monotonic() - t0
        cpu1 = {name: cpu_seconds(p.p.pid) for name, _, p in agents}
        after = wire(d)
        rss = {name: rss_kib(p.p.pid)[0] for name, _, p in agents}
    finally:
        for _, _, p in agents:
            p.stop()
        for p in procs:
            p.stop()

    rows, base = [], None
    for name, port, _ in agents:
        ms = (cpu1[name] - cpu0[name]) / elapsed * 1e3
        n = after.get(port, (0, 0))[0] - before.get(port, (0, 0))[0]
        b = after.get(port, (0, 0))[1] - before.get(port, (0, 0))[1]
        if n == 0:
            sys.exit(f"export.py: agent {name} exported nothing in {a.seconds} s")
        base = base or ms
        rows.append((name, ms, ms / base, rss[name] / 1024, n * 60 / elapsed, b * 60 / elapsed))
    print(f"OTLP http/protobuf every 1 s, host collectors only, four agents side by side for "
          f"{a.seconds} s; bytes as nginx received them (TLS framing not counted)\n")
    print("| agent | CPU per tick (ms) | vs plain+none | RSS (MiB) | requests/min | bytes/min |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ms, r, mib, rpm, bpm in rows:
        print(f"| {name} | {ms:.3f} | {r:.2f} | {mib:.1f} | {rpm:.0f} | {bpm:,.0f} |")


if __name__ == "__main__":
    main()
