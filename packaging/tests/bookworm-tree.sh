#!/usr/bin/env bash
# Makes (once) and prints the path of a minimal Debian bookworm tree with systemd as init, dbus
# and systemd-sysv: the machine the .deb is installed into and booted, and the root filesystem
# of the local `debian:bookworm-slim` base image. Cached under $HW_CI_CACHE (default
# /var/tmp/hostwarden-ci) and reused across runs; a tree is only used once its stamp exists, so
# an interrupted debootstrap is redone, never half-used.
set -euo pipefail
cache=${HW_CI_CACHE:-/var/tmp/hostwarden-ci}
# systemd as init, its bus, and procps for /bin/kill (the .deb depends on it for ExecReload).
include=systemd,systemd-sysv,dbus,libpam-systemd,procps
# The tree is keyed on its package list: changing the list makes a new tree.
key=$(echo "$include" | md5sum | cut -c1-8)
tree=$cache/bookworm-$key
stamp=$cache/bookworm-$key.ok
mirror=${HW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache"
# The boot and image tests may ask at the same time: one makes the tree, the other waits.
exec 9>"$cache/bookworm.lock"
flock 9
if [[ ! -e $stamp ]]; then
    rm -rf "$tree"
    debootstrap --variant=minbase --include="$include" \
        bookworm "$tree" "$mirror" >"$cache/debootstrap-$key.log" 2>&1 ||
        { tail -20 "$cache/debootstrap-$key.log" >&2; exit 1; }
    # The booted tree needs a machine id and no getty on a console nobody reads.
    rm -f "$tree/etc/machine-id"
    systemd-machine-id-setup --root="$tree" >/dev/null
    rm -f "$tree"/etc/systemd/system/getty.target.wants/*
    apt-get -o Dir="$tree" clean 2>/dev/null || true
    rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/*
    touch "$stamp"
fi
echo "$tree"
