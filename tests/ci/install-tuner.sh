#!/bin/sh
# Prerequisites of tests/tests/tuner.rs: a real systemd to run as `systemd --user` in a private
# mount namespace (util-linux's unshare), and dbus-user-session, whose dbus.socket user unit
# gives that manager its bus at $XDG_RUNTIME_DIR/bus. Idempotent; fails loudly.
set -eu
need=""
command -v systemd >/dev/null 2>&1 || [ -x /lib/systemd/systemd ] || need="$need systemd"
command -v unshare >/dev/null 2>&1 || need="$need util-linux"
command -v dbus-daemon >/dev/null 2>&1 || need="$need dbus-daemon"
[ -e /usr/lib/systemd/user/dbus.socket ] || need="$need dbus-user-session"
if [ -n "$need" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
command -v systemd >/dev/null 2>&1 || { echo "install-tuner: systemd still missing" >&2; exit 1; }
[ -e /usr/lib/systemd/user/dbus.socket ] || { echo "install-tuner: dbus.socket user unit still missing" >&2; exit 1; }
