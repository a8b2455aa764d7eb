#!/bin/sh
# Prerequisites of the GPU tests: a C compiler to build the stand-in libnvidia-ml
# (tests/shims/nvml/nvml_shim.c). No GPU or NVIDIA driver is needed. Idempotent and quiet.
set -eu
if command -v cc >/dev/null 2>&1 && echo 'int main(void){return 0;}' | cc -x c -o /dev/null - >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
command -v cc >/dev/null 2>&1 || { echo "install-gpu.sh: cc still missing after installing gcc" >&2; exit 1; }
