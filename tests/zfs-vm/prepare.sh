#!/bin/bash
# The slow, cacheable part of the OpenZFS guest, following Debian's archive rather than a pinned
# kernel: bookworm keeps only its current kernel ABI downloadable (a security update retires
# the previous one), so a pinned version breaks every cold run the day the archive moves on.
#
# Each run refreshes a private apt (archive.sh, a few seconds) and asks it which kernel
# linux-image-amd64 stands for now and which Debian revision carries the requested OpenZFS.
# The build made from those - extracted kernel and headers, zfs-dkms source, userland, the
# compiled modules - lives in builds/linux-<abi>_<pkgver>+zfs-<debver>/ and is reused as long as
# the archive gives the same answer. When it changes, the new build is made and the old one
# removed. When the archive cannot be reached, the newest complete build is used instead.
# Builds are made under builds/.tmp-* and renamed when complete (.complete inside).
#
# usage: prepare.sh <upstream-version> <cache-dir>   (the caller holds the cache's lock)
# Prints the build directory on stdout; progress and timings on stderr.
# Braces: bash reads the whole script before running it, so editing or updating it while a
# run is in progress cannot change what that run executes.
{
set -euo pipefail
VER=$1 Z=$2
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/archive.sh"
say() { echo "prepare $VER: $*" >&2; }
mkdir -p "$Z/builds" "$Z/logs"
rm -rf "$Z"/builds/.tmp-*   # left by an interrupted run; we hold the lock, nobody else builds

newest_complete() {
  local m
  m=$(ls -t "$Z"/builds/*/.complete 2>/dev/null | head -n 1)
  [ -n "$m" ] && dirname "$m"
}

zfsvm_apt_setup "$Z/apt"
t0=$(date +%s)
if ! zfsvm_apt_update; then
  BUILD=$(newest_complete) || {
    say "cannot read Debian's archive and no complete build is cached; the end of $Z/apt/update.log:"
    tail -n 10 "$Z/apt/update.log" >&2
    exit 1
  }
  say "cannot read Debian's archive (see $Z/apt/update.log); using the newest cached build," \
    "$(basename "$BUILD"), which may be behind the archive"
  "$HERE/rootfs.sh" "$Z/rootfs" "$Z/logs/debootstrap.log"
  echo "$BUILD"
  exit 0
fi
zfsvm_resolve_kernel
zfsvm_resolve_zfs "$VER"
NAME=linux-${KABI}_$KPKG+zfs-$ZDEB
BUILD=$Z/builds/$NAME
say "archive: kernel $KABI ($KPKG), zfs-dkms $ZDEB; apt update + lookup $(($(date +%s) - t0)) s"

if [ -e "$BUILD/.complete" ]; then
  say "cached: builds/$NAME"
else
  T=$Z/builds/.tmp-$NAME
  mkdir -p "$T"/{debs,kroot,src,userland,modules,logs}
  t1=$(date +%s)
  say "downloading $KDEBS $ZDEBS"
  (cd "$T/debs" && zfsvm_apt apt-get download -q $KDEBS $ZDEBS) >"$T/logs/download.log" 2>&1 || {
    say "download failed; the end of $T/logs/download.log:"; tail -n 10 "$T/logs/download.log" >&2
    exit 1
  }
  for spec in $KDEBS; do dpkg -x "$T/debs/${spec%%=*}_"*.deb "$T/kroot"; done
  dpkg -x "$T"/debs/zfs-dkms_*.deb "$T/src"
  for spec in $ZDEBS; do
    [ "${spec%%=*}" = zfs-dkms ] || dpkg -x "$T/debs/${spec%%=*}_"*.deb "$T/userland"
  done
  rm -rf "$T/debs"   # extracted; the .debs are 100 MB that nothing reads again
  say "downloaded and extracted in $(($(date +%s) - t1)) s"

  # The ABI headers include the -common tree by its installed path (/usr/src/...): point them
  # at the extracted copy, first in the scratch directory, after the rename at the final one.
  KSRC=$(ls -d "$T"/kroot/usr/src/linux-headers-*-common)
  KOBJ=$T/kroot/usr/src/linux-headers-$KABI
  sed -i "s#/usr/src/linux-headers-#$T/kroot/usr/src/linux-headers-#g" "$KOBJ/Makefile"
  say "building spl.ko/zfs.ko against $KABI (4-7 minutes; logs in builds/$NAME/logs)"
  "$HERE/build-module.sh" "$(ls -d "$T"/src/usr/src/zfs-*)" "$KSRC" "$KOBJ" "$T/logs" "$T/modules"
  sed -i "s#$T/#$BUILD/#g" "$KOBJ/Makefile"
  printf 'KABI=%s\nKPKG=%s\nZDEB=%s\nKDEBS="%s"\nZDEBS="%s"\nBUILT=%s\n' \
    "$KABI" "$KPKG" "$ZDEB" "$KDEBS" "$ZDEBS" "$(date -u +%FT%TZ)" >"$T/resolved.env"
  touch "$T/.complete"
  mv "$T" "$BUILD"
  say "build done in $(($(date +%s) - t1)) s"
fi
# Only reached with the archive's current answer built: anything else is superseded.
for old in "$Z"/builds/*/; do
  [ "${old%/}" = "$BUILD" ] || { say "removing the superseded $(basename "$old")"; rm -rf "$old"; }
done
"$HERE/rootfs.sh" "$Z/rootfs" "$Z/logs/debootstrap.log"
echo "$BUILD"
exit
}
