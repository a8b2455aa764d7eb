#!/usr/bin/env bash
# Installs Debian's Alertmanager (prometheus-alertmanager, 0.25 on Debian 12) for
# tests/tests/alertmanager.rs, which starts its own instances (own config, own data dir, free
# ports, clustering off or between its own two) to receive the agent's alerts.
# The package's service is not wanted: without systemd it is not started, and with systemd it
# is stopped again so that the host does not gain an Alertmanager on :9093. Idempotent and
# quiet; fails loudly.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

if ! dpkg-query -W -f='${Status}' prometheus-alertmanager 2>/dev/null | grep -q "install ok installed"; then
    apt_install_missing prometheus-alertmanager
    if [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus-alertmanager.service >/dev/null 2>&1 || true
    fi
fi
prometheus-alertmanager --version >/dev/null 2>&1
