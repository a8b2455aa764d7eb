#!/usr/bin/env bash
# Installs Debian's prometheus-node-exporter for tests/tests/host_oracle.rs, which starts its own
# instance (own port, only the diskstats, filesystem and netdev collectors) as the oracle for
# hostwarden's disk, filesystem and network values. The package's service is not wanted: without
# systemd it is not started, and with systemd it is stopped so that the host does not gain an
# exporter on :9100. Idempotent and quiet; fails loudly.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

if ! dpkg-query -W -f='${Status}' prometheus-node-exporter 2>/dev/null | grep -q "install ok installed"; then
    apt_install_missing prometheus-node-exporter
    if [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus-node-exporter.service >/dev/null 2>&1 || true
    fi
fi
prometheus-node-exporter --version >/dev/null 2>&1
