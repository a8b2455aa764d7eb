#!/usr/bin/env bash
# Installs rotel (a Rust OpenTelemetry collector, from PyPI) for tests/tests/otlp.rs and the
# benchmark, and puts `rotel-agent` on PATH. In a venv of its own: Debian's and Ubuntu's system
# Python refuse `pip install` (PEP 668). Idempotent and quiet; fails loudly.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

command -v python3 >/dev/null || apt_install_missing python3 python3-venv
venv=/var/tmp/hostwarden-ci/rotel-venv
if ! "$venv/bin/python" -c 'import rotel' 2>/dev/null; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    # Debian's python3 needs python3-venv for ensurepip; a Python of its own has it built in.
    python3 -m venv "$venv" 2>/dev/null || { apt_install_missing python3-venv && python3 -m venv "$venv"; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check rotel
fi
agent="$("$venv/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
if [ ! -x "$agent" ]; then
    echo "install-otlp: rotel installed but $agent is missing" >&2
    exit 1
fi
if [ "$(readlink -f /usr/local/bin/rotel-agent 2>/dev/null || true)" != "$(readlink -f "$agent")" ]; then
    ln -sf "$agent" /usr/local/bin/rotel-agent
fi
rotel-agent --version >/dev/null
