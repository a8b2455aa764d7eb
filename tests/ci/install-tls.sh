#!/usr/bin/env bash
# Installs nginx (the light build: TLS, HTTP/2, grpc_pass and proxy_pass are all it needs) and
# the openssl CLI for tests/tests/otlp_tls.rs, which runs its own nginx (own config, prefix, pid
# file and logs) in front of rotel. A system nginx the package may start is never used.
# Idempotent and quiet; fails loudly.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

apt_install_missing nginx-light openssl
nginx -v 2>/dev/null
openssl version >/dev/null
