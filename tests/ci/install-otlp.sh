#!/usr/bin/env bash
# Installs rotel (a Rust OpenTelemetry collector, from PyPI) for tests/tests/otlp.rs and the
# benchmark, and puts `rotel-agent` on PATH. In a venv of its own: Debian's and Ubuntu's system
# Python refuse `pip install` (PEP 668). Idempotent and quiet; fails loudly.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

venv=/var/tmp/hostwarden-ci/rotel-venv
if ! "$venv/bin/python" -c 'import rotel' 2>/dev/null; then
    make_venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check rotel
fi
agent="$("$venv/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
link_on_path rotel-agent "$agent"
rotel-agent --version >/dev/null
