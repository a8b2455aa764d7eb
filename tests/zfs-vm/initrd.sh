#!/bin/bash
# The guest's initramfs. Debian builds virtio and ext4 as modules, so the kernel has no root disk
# to mount: the whole root is the initramfs, uncompressed (qemu loads it faster than the
# emulated kernel could inflate it). Two parts:
#   <build>/base.cpio  the minbase tree + the OpenZFS userland + the virtio, spl and zfs modules,
#                      made once per build (a few seconds) and kept beside it;
#   an overlay         /init (guest-init.sh), /hostwarden and /hostwarden.toml, and the Ollama
#                      stand-in with its fixtures (/ollama-standin, /ollama/), the virtio-net
#                      driver (/net-modules/, insmod'ed by path: base.cpio's modules.dep predates
#                      it) and, when $HOSTWARDEN_ZFSVM_ORACLE names a directory, that directory
#                      as /oracle (node_exporter, its flags and the config of the oracle phase),
#                      packed per run.
# The kernel unpacks concatenated cpio archives in order, so base + overlay is one root.
# usage: initrd.sh <build> <rootfs> <init> <hostwarden> <config> <standin> <fixtures> <out.cpio>
#   <fixtures>: tests/fixtures/ollama (tags.json and show-llama3.1-8b-q4km-real.json go in)
# Braces: bash reads the whole script before running it, so editing or updating it while a
# run is in progress cannot change what that run executes.
{
set -euo pipefail
BUILD=$1 ROOTFS=$2 INIT=$3 BIN=$4 CONF=$5 STANDIN=$6 FIX=$7 OUT=$8
. "$BUILD/resolved.env"

# A stage left by an interrupted run (the caller holds the cache's lock: nobody else stages).
rm -rf "$BUILD"/.stage.* "$BUILD/base.cpio.tmp"
if [ ! -e "$BUILD/base.cpio" ]; then
  t0=$(date +%s)
  ST=$(mktemp -d "$BUILD/.stage.XXXXXX")
  trap 'rm -rf "$ST"' EXIT
  cp -a "$ROOTFS/." "$ST/"
  rm -f "$ST/.complete"
  # zfsutils-linux ships /sbin and /lib paths; the tree is merged-usr, so follow its symlinks.
  (cd "$BUILD/userland" && tar -cf - .) | (cd "$ST" && tar -xf - --keep-directory-symlink)
  ldconfig -r "$ST"
  missing=$(chroot "$ST" ldd /sbin/zpool /sbin/zfs | grep 'not found' || true)
  if [ -n "$missing" ]; then
    echo "initrd.sh: the guest tree lacks libraries zpool/zfs need (add them to rootfs.sh):" >&2
    echo "$missing" >&2
    exit 1
  fi
  K=$BUILD/kroot/lib/modules/$KABI M=$ST/lib/modules/$KABI
  mkdir -p "$M/extra" "$M/kernel/drivers/virtio" "$M/kernel/drivers/block"
  cp "$K"/modules.builtin "$K"/modules.builtin.modinfo "$K"/modules.order "$M/"
  # guest-init.sh needs virtio_pci for the output disk; virtio_pci pulls in the rest of these.
  cp "$K"/kernel/drivers/virtio/{virtio,virtio_ring,virtio_pci,virtio_pci_legacy_dev,virtio_pci_modern_dev}.ko \
    "$M/kernel/drivers/virtio/"
  cp "$K/kernel/drivers/block/virtio_blk.ko" "$M/kernel/drivers/block/"
  cp "$BUILD"/modules/*.ko "$M/extra/"
  # The tree's own depmod (kmod is in it): the host need not have kmod.
  chroot "$ST" /sbin/depmod "$KABI"
  (cd "$ST" && find . -print0 | cpio --null -o -H newc --quiet) >"$BUILD/base.cpio.tmp"
  mv "$BUILD/base.cpio.tmp" "$BUILD/base.cpio"
  rm -rf "$ST"
  echo "initrd: base.cpio ($(du -m "$BUILD/base.cpio" | cut -f1) MB) made in $(($(date +%s) - t0)) s" >&2
fi

OV=$(mktemp -d)
trap 'rm -rf "$OV"' EXIT
install -m 755 "$INIT" "$OV/init"
install -m 755 "$BIN" "$OV/hostwarden"
install -m 644 "$CONF" "$OV/hostwarden.toml"
install -m 755 "$STANDIN" "$OV/ollama-standin"
install -D -m 644 "$FIX/tags.json" "$OV/ollama/tags.json"
install -D -m 644 "$FIX/show-llama3.1-8b-q4km-real.json" "$OV/ollama/show.json"
# The eth0 of the oracle phase: virtio_net needs net_failover, which needs failover.
K=$BUILD/kroot/lib/modules/$KABI/kernel
install -D -m 644 -t "$OV/net-modules" "$K/net/core/failover.ko" "$K/drivers/net/net_failover.ko" \
  "$K/drivers/net/virtio_net.ko"
if [ -n "${HOSTWARDEN_ZFSVM_ORACLE:-}" ]; then
  cp -r "$HOSTWARDEN_ZFSVM_ORACLE" "$OV/oracle"
fi
cp "$BUILD/base.cpio" "$OUT.tmp"
(cd "$OV" && find . -mindepth 1 | sed 's|^\./||' | cpio -o -H newc --quiet) >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
exit
}
