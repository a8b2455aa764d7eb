#!/usr/bin/env bash
# Installs rotel (a Rust OpenTelemetry collector, from PyPI) for tests/tests/otlp.rs and puts
# `rotel-agent` on PATH. Idempotent and quiet; fails loudly.
set -euo pipefail

if ! python3 -c 'import rotel' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore rotel
fi
agent="$(python3 -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
if [ ! -x "$agent" ]; then
    echo "install-otlp: rotel installed but $agent is missing" >&2
    exit 1
fi
if [ "$(readlink -f /usr/local/bin/rotel-agent 2>/dev/null || true)" != "$(readlink -f "$agent")" ]; then
    ln -sf "$agent" /usr/local/bin/rotel-agent
fi
rotel-agent --version >/dev/null
