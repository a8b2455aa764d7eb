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

venv=/var/tmp/hostwarden-ci/k8s-venv
installed() {
    "$venv/bin/python" -c "import sys, yaml, kubernetes_validate.version as v; sys.exit(v.__version__ != '$version')" 2>/dev/null
}
if ! installed; then
    make_venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$version"
fi
link_on_path kubernetes-validate "$venv/bin/kubernetes-validate"
kubernetes-validate --version >/dev/null
