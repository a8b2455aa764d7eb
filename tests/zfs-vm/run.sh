#!/bin/bash
# Boots real OpenZFS <version> under qemu with the given hostwarden binary inside and copies what
# the guest wrote (guest-init.sh) to <out-dir>. Kernel and OpenZFS come from Debian's archive as
# it is on the day (prepare.sh); cold, that means downloading and building (about 8 minutes on
# idle cores, far longer on busy ones), warm only an apt list refresh, the initramfs overlay and
# the boot (about 3 minutes). README.md has the measured figures.
# usage: run.sh <2.3.2|2.1.11> <hostwarden-binary> <out-dir> [<ollama-standin-binary>]
# The stand-in (the tests crate's bin; default: beside the hostwarden binary) serves the ARC
# coordination phase.
# HOSTWARDEN_ZFSVM_ORACLE=<dir>: packed into the guest as /oracle, which runs the node_exporter
# oracle phase (guest-init.sh) when it is there.
# Cache: ${HOSTWARDEN_ZFSVM_CACHE:-/var/tmp/hostwarden-zfsvm}/<version>.
# Prints "key value" lines on stdout (timings, kernel, console log); progress goes to stderr.
# Exits 1 with the end of the console log when the guest did not finish.
# Braces: bash reads the whole script before running it, so editing or updating it while a
# run is in progress cannot change what that run executes.
{
set -euo pipefail
if [ $# -ne 3 ] && [ $# -ne 4 ]; then
  echo "usage: run.sh <2.3.2|2.1.11> <hostwarden-binary> <out-dir> [<ollama-standin>]" >&2; exit 2
fi
VER=$1 BIN=$(realpath "$2") OUTDIR=$3
STANDIN=$(realpath "${4:-$(dirname "$BIN")/ollama-standin}")
case $VER in 2.3.2 | 2.1.11) ;; *) echo "run.sh: unsupported OpenZFS version $VER" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
FIXTURES=$HERE/../fixtures/ollama
Z=${HOSTWARDEN_ZFSVM_CACHE:-/var/tmp/hostwarden-zfsvm}/$VER
# Ten times a normal boot on two busy cores.
LIMIT=${HOSTWARDEN_ZFSVM_BOOT_LIMIT:-600}

# Two runs of one version share the builds, the initramfs and the output disk: take turns.
mkdir -p "$Z/logs"; exec 9>"$Z/.lock"; flock 9

t0=$(date +%s)
BUILD=$("$HERE/prepare.sh" "$VER" "$Z")
. "$BUILD/resolved.env"
t1=$(date +%s)
"$HERE/initrd.sh" "$BUILD" "$Z/rootfs" "$HERE/guest-init.sh" "$BIN" "$HERE/hostwarden.toml" \
  "$STANDIN" "$FIXTURES" "$Z/initrd.cpio"
t2=$(date +%s)
CONSOLE=$Z/logs/console.log
"$HERE/boot.sh" "$BUILD/kroot/boot/vmlinuz-$KABI" "$Z/initrd.cpio" "$Z/out.img" "$CONSOLE" \
  "$LIMIT" "$OUTDIR"
t3=$(date +%s)

echo "prepare_s $((t1 - t0))"
echo "initrd_s $((t2 - t1))"
echo "boot_s $((t3 - t2))"
echo "kernel $KABI"
echo "kernel_package $KPKG"
echo "zfs_package $ZDEB"
echo "console $CONSOLE"
if [ ! -e "$OUTDIR/guest-done" ]; then
  echo "run.sh: the guest did not finish; the end of $CONSOLE:" >&2
  tail -n 40 "$CONSOLE" >&2 || true
  exit 1
fi
exit
}
