#!/usr/bin/env bash
# Benchmark: memory of `hostwarden run` while its OTLP receiver is down, then how fast export
# resumes when the receiver comes back. Prints a table; asserts nothing.
#
#   tests/bench/otlp-outage-rss.sh [MINUTES=10] [SAMPLE_SECONDS=30]
#
# The agent ticks every 1s and exports every 1s to a closed loopback port (gRPC), with one alert
# firing from the start so the alert sink retries throughout. VmRSS is read
# from /proc/PID/status; failures from `hostwarden status`. Then rotel (tests/ci/install-otlp.sh)
# is started on that port and the time until its first received export is printed.
# HOSTWARDEN_BIN overrides the binary (default target/release/hostwarden, built if missing).
set -euo pipefail

minutes="${1:-10}"
every="${2:-30}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${HOSTWARDEN_BIN:-$root/target/release/hostwarden}"
if [ ! -x "$bin" ]; then
    (cd "$root" && cargo build --quiet --release -p hostwarden --bin hostwarden)
fi
command -v rotel-agent >/dev/null || bash "$root/tests/ci/install-otlp.sh"

work="$(mktemp -d)"
agent_pid=""
rotel_pid=""
cleanup() {
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
    [ -n "$rotel_pid" ] && kill "$rotel_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc="$(free_port)"
http="$(free_port)"

cat >"$work/hostwarden.toml" <<TOML
[agent]
interval = "1s"
state_dir = "$work"
status_socket = "$work/status.sock"

[export.otlp]
endpoint = "http://127.0.0.1:$grpc"
protocol = "grpc"
interval = "1s"
timeout = "2s"

# Fires at the first tick, so an alert event waits in the outbox and the sink retries all along.
[[rules]]
name = "bench_always"
metric = "system.memory.limit"
op = ">"
critical = 1
summary = "always firing (benchmark)"
TOML

"$bin" run --config "$work/hostwarden.toml" --view never >"$work/agent.log" 2>&1 &
agent_pid=$!

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$agent_pid/status"; }
failures() {
    "$bin" status --format json --socket "$work/status.sock" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["export"]["failures"])' 2>/dev/null || echo "?"
}

echo "hostwarden $("$bin" --version | awk '{print $2}'), receiver down on 127.0.0.1:$grpc, tick 1s, export 1s, ${minutes} min"
printf '%8s  %10s  %12s  %14s\n' "elapsed" "VmRSS KiB" "delta KiB" "export fails"
sleep 5 # let the agent start and fail its first exports before the first sample
start=$(date +%s)
end=$((start + minutes * 60))
first=""
while :; do
    now=$(date +%s)
    rss=$(rss_kib)
    [ -z "$first" ] && first=$rss
    printf '%7ss  %10s  %12s  %14s\n' "$((now - start))" "$rss" "$((rss - first))" "$(failures)"
    [ "$now" -ge "$end" ] && break
    left=$((end - now))
    sleep $((left < every ? left : every))
done

# The receiver comes back on the same port: time from starting it (so including rotel's own
# start-up) to the first metric export it has received.
t0=$(date +%s.%N)
rotel-agent start --otlp-grpc-endpoint "127.0.0.1:$grpc" --otlp-http-endpoint "127.0.0.1:$http" \
    --exporter blackhole --debug-log metrics --debug-log-verbosity detailed >"$work/rotel.log" 2>&1 &
rotel_pid=$!
python3 - "$t0" "$work/rotel.log" <<'PY'
import sys, time
t0, log = float(sys.argv[1]), sys.argv[2]
while b"ResourceMetrics #" not in open(log, "rb").read():
    time.sleep(0.005)
print(f"receiver back: first export received {time.time() - t0:.3f} s after the receiver was started (export interval 1 s)")
PY
