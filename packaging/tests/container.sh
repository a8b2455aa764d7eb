#!/usr/bin/env bash
# Builds the container image from packaging/container/Dockerfile with podman (chroot isolation,
# vfs storage in a private store under $HW_CI_CACHE), on a local `debian:bookworm-slim` made by
# `podman import` of the cached debootstrap tree (no image registry is reachable here). Then
# exports the built image's filesystem (podman create + export) and runs the binary inside it
# with chroot (`podman run` cannot set rlimits here), with the host's /proc at /host/proc as the
# stack file mounts it: `check-config` on the image's config, and `once --format json` must
# report host metrics. Usage: container.sh (after `cargo xtask package` built target/dist/).
# Prints "image_layer_bytes N". Needs root.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/packaging/tests
cache=${HW_CI_CACHE:-/var/tmp/hostwarden-ci}
fail() { echo "FAIL: $*" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$root/target}
[[ -x $target/dist/hostwarden ]] || fail "no dist binary: run cargo xtask package first"

podman() {
    command podman --root "$cache/podman/storage" --runroot "$cache/podman/run" \
        --storage-driver vfs --cgroup-manager cgroupfs --events-backend file "$@"
}
base=docker.io/library/debian:bookworm-slim
if ! podman image exists "$base"; then
    tree=$("$here/bookworm-tree.sh")
    tar -C "$tree" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -c . |
        podman import --quiet - "$base" >/dev/null
fi

tag=localhost/hostwarden:ci-$$
work=$(mktemp -d /var/tmp/hostwarden-img.XXXXXX)
ctr=
cleanup() {
    umount "$work/fs/host/proc" 2>/dev/null || true
    [[ -n $ctr ]] && podman rm --force "$ctr" >/dev/null 2>&1
    podman rmi --force "$tag" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

podman build --quiet --isolation chroot --pull=never -f "$root/packaging/container/Dockerfile" \
    -t "$tag" "$root" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "podman build"; }
size() { podman image inspect --format '{{.Size}}' "$1"; }
layer=$(($(size "$tag") - $(size "$base")))

ctr=$(podman create "$tag")
mkdir -p "$work/fs"
podman export "$ctr" | tar -C "$work/fs" -x
[[ -x $work/fs/usr/bin/hostwarden ]] || fail "image lacks /usr/bin/hostwarden"
mkdir -p "$work/fs/host/proc"
mount --bind -o ro /proc "$work/fs/host/proc"
chroot "$work/fs" /usr/bin/hostwarden check-config --config /etc/hostwarden/hostwarden.toml >&2 ||
    fail "the image's config does not validate"
json=$(chroot "$work/fs" /usr/bin/hostwarden once --config /etc/hostwarden/hostwarden.toml --format json) ||
    fail "hostwarden once failed in the image"
grep -q '"system.memory.limit"' <<<"$json" || fail "no host metrics from the image: $json"
echo "image_layer_bytes $layer"
