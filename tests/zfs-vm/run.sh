#!/bin/bash
# Boots real OpenZFS <version> under qemu with the given hostwarden binary inside and copies what
# the guest wrote (tests/zfs-vm/guest-init.sh) to <out-dir>. Cold, prepare.sh downloads and builds
# into the cache (about 6 minutes); warm, only the initramfs is packed and the guest booted.
# usage: run.sh <2.3.2|2.1.11> <hostwarden-binary> <out-dir>
# Cache: $HOSTWARDEN_ZFSVM_CACHE/<version> (default /var/tmp/hostwarden-zfsvm/<version>).
# Prints "key value" lines on stdout (timings, console log path); progress goes to stderr.
set -euo pipefail
VER=$1 BIN=$(realpath "$2") OUTDIR=$3
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${ZFSVM_SHARED:-$(cd "$HERE/../../../shared/zfs-vm/scripts" && pwd)}
export ZFSVM_SHARED=$SHARED ZFSVM_DIR=${HOSTWARDEN_ZFSVM_CACHE:-/var/tmp/hostwarden-zfsvm}/$VER
Z=$ZFSVM_DIR
# Two runs of one version share the stage directory and the output disk: take turns.
mkdir -p "$Z"; exec 9>"$Z/.lock"; flock 9

t0=$(date +%s)
"$HERE/prepare.sh" "$VER"
t1=$(date +%s)

# The shared make-initrd.sh packs the Debian tree, the ZFS userland and the modules with its own
# capture init; a second cpio archive appended to it replaces /init with ours and adds the binary
# and its config (the kernel unpacks concatenated archives in order, later files overwriting).
"$SHARED/make-initrd.sh" "$VER" "$Z/src-$VER/usr/src/zfs-$VER/module" >&2
overlay=$(mktemp -d)
trap 'rm -rf "$overlay"' EXIT
install -m 755 "$HERE/guest-init.sh" "$overlay/init"
install -m 755 "$BIN" "$overlay/hostwarden"
install -m 644 "$HERE/hostwarden.toml" "$overlay/hostwarden.toml"
(cd "$overlay" && printf '%s\n' init hostwarden hostwarden.toml |
  cpio -o -H newc --quiet) >> "$Z/initrd-$VER.cpio"
t2=$(date +%s)

# The shared boot.sh: TCG (KVM does not work on these machines), 3 GiB, output on a raw disk
# that it untars into $Z/captures/<version>. 600 s is ten times a normal boot.
rm -rf "$Z/captures/$VER"
"$SHARED/boot.sh" "$VER" 600 >&2 || true
t3=$(date +%s)
rm -rf "$OUTDIR"; mkdir -p "$OUTDIR"
[ -d "$Z/captures/$VER" ] && cp -a "$Z/captures/$VER/." "$OUTDIR/"
echo "prepare_s $((t1 - t0))"
echo "initrd_s $((t2 - t1))"
echo "boot_s $((t3 - t2))"
echo "console $Z/logs/console-$VER.log"
if [ ! -e "$OUTDIR/guest-done" ]; then
  echo "run.sh: the guest did not finish; the end of $Z/logs/console-$VER.log:" >&2
  tail -n 40 "$Z/logs/console-$VER.log" >&2 || true
  exit 1
fi
