# The bench's stand-in world, sourced by bench/run.sh and bench/hotcode.sh: 8 GPUs behind the
# NVML stand-in, replayed ZFS, the Ollama stand-in, a real OTLP receiver (rotel), and
# $work/full.toml, an agent config with every collector and OTLP gRPC export each second.
# Needs: $root (the checkout), $work (a scratch directory), $hw and $standin (built binaries),
# and a `pids` array the caller kills on exit. Sets $grpc, $otlp_http, $ollama_port and
# $ollama_pid.
# The same flags tests/src/nvml_shim.rs builds the stand-in libnvidia-ml with.
cc -shared -fPIC -O2 -Wall -Werror -o "$work/libnvidia-ml.so" tests/shims/nvml/nvml_shim.c

free_port() { python3 bench/ports.py; }

# ---- the stand-in world: 8 GPUs, replayed ZFS, Ollama, a real OTLP receiver -----------------
# Eight datacenter GPUs, each with one compute process, every field NVML can answer set.
{
    echo "init = ok"
    echo "driver = 550.54.15"
    echo "count = 8"
    for kv in "name = NVIDIA A100-SXM4-80GB" "memory.total = 85899345920" \
        "memory.reserved = 536870912" "memory.free = 64424509440" "memory.used = 20937965568" \
        "util.gpu = 42" "util.memory = 17" "temp = 61" "temp.slowdown = 90" \
        "temp.shutdown = 95" "power = 123456" "power.limit = 400000" "energy = 1000000" \
        "throttle = 0" "ecc.corrected = 0" "ecc.uncorrected = 0" "fan = 30" "clock.sm = 1410" \
        "clock.mem = 1593" "procs = $$:4294967296"; do
        echo "gpu.*.$kv"
    done
} >"$work/gpus.state"

ollama_port=$(free_port)
"$standin" --listen "127.0.0.1:$ollama_port" --model "llama3.1:8b=6544691200/6544691200/32768" \
    --tags tests/fixtures/ollama/tags.json \
    --show "llama3.1:8b=tests/fixtures/ollama/show-llama3.1-8b-q4km-real.json" \
    >"$work/ollama.log" 2>&1 &
ollama_pid=$!
pids+=("$ollama_pid")

grpc=$(free_port)
otlp_http=$(free_port)
rotel-agent start --otlp-grpc-endpoint "127.0.0.1:$grpc" --otlp-http-endpoint "127.0.0.1:$otlp_http" \
    --exporter blackhole >"$work/rotel.log" 2>&1 &
pids+=($!)

cat >"$work/full.toml" <<TOML
[agent]
interval = "1s"
state_dir = "$work/state"
status_socket = "$work/status.sock"
[gpu]
nvml_library = "$work/libnvidia-ml.so"
[zfs]
zpool_command = "$root/tests/fixtures/zfs/standin/zpool"
iostat_interval = "1s"
[ollama]
url = "http://127.0.0.1:$ollama_port"
[export.otlp]
endpoint = "http://127.0.0.1:$grpc"
protocol = "grpc"
interval = "1s"
TOML
"$hw" check-config --config "$work/full.toml" >/dev/null
export HOSTWARDEN_NVML_SHIM_STATE=$work/gpus.state ZPOOL_STANDIN_SCENARIO=2.3.2 ZPOOL_STANDIN_STATE=$work
