#!/bin/bash
# The slow, cacheable part of the OpenZFS guest: Debian kernel + headers, the zfs-dkms source and
# userland of one OpenZFS version, spl.ko/zfs.ko built from it, and a minbase debootstrap tree.
# Adapted from ../shared/zfs-vm/scripts/run-all.sh, which always re-downloads and rebuilds and
# then boots its own capture init; here every step leaves a marker and is skipped when the marker
# exists, so a warm run touches no network. The module build itself is the shared
# build-module.sh. usage: prepare.sh <2.3.2|2.1.11>   (ZFSVM_DIR: the cache, one per version)
set -euo pipefail
VER=$1
SHARED=${ZFSVM_SHARED:-$(cd "$(dirname "$0")/../../../shared/zfs-vm/scripts" && pwd)}
Z=${ZFSVM_DIR:?ZFSVM_DIR must name the cache directory}
KV=6.1.0-50-amd64; KPKG=6.1.176-1
case $VER in
  2.3.2)  DV=2.3.2-2~bpo12+2;  LIBS="libnvpair3linux libuutil3linux libzfs6linux libzpool6linux" ;;
  2.1.11) DV=2.1.11-1+deb12u1; LIBS="libnvpair3linux libuutil3linux libzfs4linux libzpool5linux" ;;
  *) echo "prepare.sh: unknown OpenZFS version $VER" >&2; exit 2 ;;
esac
mkdir -p "$Z"/{debs,logs,aptcache/archives/partial,apt-lists/partial}
step() { echo "prepare $VER: $*" >&2; }

# A private apt setup for contrib and bookworm-backports: the host's sources stay untouched.
A=(-o "Dir::Etc::sourcelist=$Z/contrib.sources" -o Dir::Etc::sourceparts=/dev/null -o APT::Sandbox::User=root
   -o "Dir::State::Lists=$Z/apt-lists" -o "Dir::Cache=$Z/aptcache")
apt_ready=
private_apt() {
  if [ -z "$apt_ready" ]; then
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' \
      'Suites: bookworm bookworm-backports' 'Components: main contrib' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > "$Z/contrib.sources"
    apt-get "${A[@]}" update -qq >/dev/null
    apt_ready=1
  fi
  (cd "$Z/debs" && apt-get "${A[@]}" download -qq "$@" >/dev/null)
}

# 1. Kernel and headers (bookworm main), extracted; the headers' Makefile re-pointed at the copy.
if [ ! -e "$Z/.kernel-done" ]; then
  step "kernel $KV ($KPKG)"
  rm -rf "$Z/kroot"; mkdir -p "$Z/kroot"
  private_apt linux-image-$KV=$KPKG linux-headers-$KV=$KPKG \
    linux-headers-6.1.0-50-common=$KPKG linux-kbuild-6.1=$KPKG
  for d in "$Z"/debs/linux-*_${KPKG}_*.deb; do dpkg -x "$d" "$Z/kroot"; done
  sed -i "s#/usr/src/linux-headers-6.1.0-50-common#$Z/kroot/usr/src/linux-headers-6.1.0-50-common#" \
    "$Z/kroot/usr/src/linux-headers-$KV/Makefile"
  touch "$Z/.kernel-done"
fi

# 2. zfs-dkms source and the userland of the same Debian version; 3. the modules built from it.
SRC=$Z/src-$VER/usr/src/zfs-$VER
if [ ! -e "$Z/.module-done" ]; then
  step "zfs-dkms and userland $DV"
  private_apt zfs-dkms=$DV zfsutils-linux=$DV $(for l in $LIBS; do echo "$l=$DV"; done)
  rm -rf "$Z/src-$VER" "$Z/userland"; mkdir -p "$Z/src-$VER" "$Z/userland/$VER"
  dpkg -x "$Z/debs/zfs-dkms_${DV}_all.deb" "$Z/src-$VER"
  for d in zfsutils-linux $LIBS; do dpkg -x "$Z/debs/${d}_${DV}_amd64.deb" "$Z/userland/$VER"; done
  step "building spl.ko/zfs.ko (about 4 minutes)"
  ZFSVM_DIR=$Z "$SHARED/build-module.sh" "$SRC" "$Z/logs/build" > "$Z/logs/build.out"
  cat "$Z/logs/build.timing" >&2
  [ -n "$(find "$SRC/module" -name zfs.ko)" ] || { echo "no zfs.ko after the build" >&2; exit 1; }
  touch "$Z/.module-done"
fi

# 4. The guest's root: a minbase tree, made in a scratch directory so an interrupted run
# leaves no half tree behind.
if [ ! -e "$Z/.rootfs-done" ]; then
  step "debootstrap"
  rm -rf "$Z/rootfs-base-pristine" "$Z/rootfs.tmp"
  debootstrap --variant=minbase --include=kmod,libssl3,libtirpc3,procps,util-linux \
    bookworm "$Z/rootfs.tmp" http://deb.debian.org/debian > "$Z/logs/debootstrap.log" 2>&1
  mv "$Z/rootfs.tmp" "$Z/rootfs-base-pristine"
  touch "$Z/.rootfs-done"
fi
