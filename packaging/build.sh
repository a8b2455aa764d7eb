#!/usr/bin/env bash
# Builds the release binary, generates the man pages and shell completions from the CLI into
# target/assets/, and builds the .deb (cargo-deb) and the .rpm (cargo-generate-rpm).
# Prints the two package paths, one per line, on stdout (everything else goes to stderr).
# Needs: cargo-deb, cargo-generate-rpm (tests/ci/install-packaging.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}

cargo build --release --locked -p hostwarden --bin hostwarden >&2
bin=$target/release/hostwarden

# Cargo.toml names the assets relative to the checkout (../target/assets), whatever the target dir.
assets=$root/target/assets
rm -rf "$assets"
"$bin" generate-man "$assets/man" >/dev/null
for shell in bash zsh fish; do
    "$bin" generate-completions "$shell" "$assets/completions" >/dev/null
done

# --no-build: the binary above is the one packaged (cargo-deb would rebuild otherwise).
deb=$(cargo deb --no-build --locked -p hostwarden | tail -n 1)
[[ -f $deb ]] || { echo "cargo deb did not produce a package" >&2; exit 1; }
# -p takes the member directory (agent/), not the crate name.
cargo generate-rpm -p agent >&2
rpm=$(ls -t "$target"/generate-rpm/hostwarden-*.rpm | head -n 1)
echo "$deb"
echo "$rpm"
