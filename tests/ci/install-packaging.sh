#!/usr/bin/env bash
# Installs what the packaging test (tests/tests/packaging.rs) needs. Idempotent and quiet; fails
# loudly. Debian packages: lintian (deb checks), rpm (rpm queries), debootstrap + systemd-container
# (a Debian tree booted with systemd as PID 1), podman + buildah deps (image build), dbus (talking
# to the booted tree's system bus). Cargo tools: cargo-deb, cargo-generate-rpm. PyPI:
# check-jsonschema (validates the compose file against the compose-spec schema shipped in a PyPI
# package, see packaging/tests/compose.sh).
set -euo pipefail
. "$(dirname "$0")/apt.sh"

apt_pkgs=(lintian rpm debootstrap systemd-container podman uidmap dbus systemd util-linux
          python3-venv)
# node runs the polkit rule against a stand-in of polkitd's API (packaging/tests/polkit-rule.js).
command -v node >/dev/null || apt_pkgs+=(nodejs)
apt_install_missing "${apt_pkgs[@]}"

# cargo tools: versions pinned so a run is reproducible.
need_cargo() { # name version
    command -v "$1" >/dev/null && "$1" --version 2>/dev/null | grep -q "$2"
}
need_cargo cargo-deb 3.8 || cargo install --quiet --locked cargo-deb --version '^3.8'
need_cargo cargo-generate-rpm 0.21 || \
    cargo install --quiet --locked cargo-generate-rpm --version '^0.21'

# check-jsonschema in its own venv (PEP 668: no pip into the system Python).
venv=/var/tmp/hostwarden-ci/venv
if ! "$venv/bin/check-jsonschema" --version >/dev/null 2>&1; then
    mkdir -p /var/tmp/hostwarden-ci
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check check-jsonschema
fi
