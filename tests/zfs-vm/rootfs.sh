#!/bin/bash
# The guest's Debian userland: a bookworm minbase tree, made once per cache and reused whatever
# kernel or OpenZFS build goes with it. The extra packages are what zpool, zfs and guest-init.sh
# need beyond minbase (kmod for modprobe, procps, util-linux, the libraries zfsutils links).
# The tree is made under a scratch name and renamed when whole, so an interrupted debootstrap is
# never taken for a finished one.
# usage: rootfs.sh <dir> <log>
# Braces: bash reads the whole script before running it, so editing or updating it while a
# run is in progress cannot change what that run executes.
{
set -euo pipefail
DIR=$1 LOG=$2
[ -e "$DIR/.complete" ] && exit 0
rm -rf "$DIR" "$DIR.tmp"
t0=$(date +%s)
echo "rootfs: debootstrap bookworm minbase (log $LOG)" >&2
debootstrap --variant=minbase --include=kmod,libssl3,libtirpc3,libudev1,procps,util-linux \
  bookworm "$DIR.tmp" http://deb.debian.org/debian >"$LOG" 2>&1 || {
  echo "rootfs.sh: debootstrap failed; the end of $LOG:" >&2; tail -n 20 "$LOG" >&2; exit 1
}
# Neither documentation nor apt's downloads belong in a guest that lives in RAM.
rm -rf "$DIR.tmp"/usr/share/{doc,man,info,locale} "$DIR.tmp"/var/cache/apt/archives/*.deb \
  "$DIR.tmp"/var/lib/apt/lists/*
touch "$DIR.tmp/.complete"
mv "$DIR.tmp" "$DIR"
echo "rootfs: done in $(($(date +%s) - t0)) s" >&2
exit
}
