#!/usr/bin/env bash
# Installs kubernetes-validate (PyPI; it ships the JSON schemas of the Kubernetes API, release by
# release) for tests/tests/kubernetes.rs, and puts its CLI on PATH. The test also runs the
# venv's Python, found through the CLI's shebang, to read the manifests' YAML. In a venv of its
# own: Debian's and Ubuntu's system Python refuse `pip install` (PEP 668). Idempotent and quiet;
# fails loudly.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

# Pinned: the test validates against the newest Kubernetes release this version ships schemas
# for (KUBERNETES in tests/tests/kubernetes.rs); raise the two together.
version=1.37.0

command -v python3 >/dev/null || apt_install_missing python3 python3-venv
venv=/var/tmp/hostwarden-ci/k8s-venv
installed() {
    "$venv/bin/python" -c "import sys, yaml, kubernetes_validate.version as v; sys.exit(v.__version__ != '$version')" 2>/dev/null
}
if ! installed; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    # Debian's python3 needs python3-venv for ensurepip; a Python of its own has it built in.
    python3 -m venv "$venv" 2>/dev/null || { apt_install_missing python3-venv && python3 -m venv "$venv"; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$version"
fi
cli="$venv/bin/kubernetes-validate"
if [ ! -x "$cli" ]; then
    echo "install-kubernetes: kubernetes-validate installed but $cli is missing" >&2
    exit 1
fi
if [ "$(readlink -f /usr/local/bin/kubernetes-validate 2>/dev/null || true)" != "$(readlink -f "$cli")" ]; then
    ln -sf "$cli" /usr/local/bin/kubernetes-validate
fi
kubernetes-validate --version >/dev/null
