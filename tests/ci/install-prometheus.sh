#!/usr/bin/env bash
# Installs Debian's Prometheus server for tests/tests/prometheus.rs, which starts its own
# instance (own config, own storage, own port) to scrape the agent's /metrics endpoint.
# The package's service is not wanted: without systemd it is not started, and with systemd it
# is stopped again so that the host does not gain a Prometheus on :9090. Idempotent and quiet;
# fails loudly.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

if ! dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q "install ok installed"; then
    apt_install_missing prometheus
    if [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
fi
prometheus --version >/dev/null 2>&1
