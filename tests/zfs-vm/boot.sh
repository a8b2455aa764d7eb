#!/bin/bash
# Boots the guest under qemu and unpacks what it wrote. TCG only: /dev/kvm exists on these
# machines but does not work. The guest tars /out onto its one virtio disk (Debian's kernel has
# no built-in filesystem driver for it, and a raw tar needs none) and powers off; qemu exits on
# the power-off (-no-reboot), or `timeout` ends it. One virtio NIC on a restricted user network
# (no way out of the guest) gives the node_exporter oracle an interface beside lo.
# usage: boot.sh <vmlinuz> <initrd> <disk.img> <console.log> <timeout-s> <out-dir>
# Braces: bash reads the whole script before running it, so editing or updating it while a
# run is in progress cannot change what that run executes.
{
set -uo pipefail
KERNEL=$1 INITRD=$2 DISK=$3 CONSOLE=$4 LIMIT=$5 OUTDIR=$6
rm -f "$DISK"; truncate -s 64M "$DISK"
t0=$(date +%s)
timeout "$LIMIT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 3072 \
  -display none -monitor none -no-reboot -serial "file:$CONSOLE" \
  -kernel "$KERNEL" -initrd "$INITRD" \
  -append "console=ttyS0 rdinit=/init panic=-1 loglevel=4" \
  -drive "file=$DISK,format=raw,if=virtio" \
  -netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0 </dev/null
rc=$?
echo "boot: qemu exit $rc after $(($(date +%s) - t0)) s (124: the ${LIMIT} s limit)" >&2
rm -rf "$OUTDIR"; mkdir -p "$OUTDIR"
# An empty disk (the guest died before its tar) reads as an empty archive: nothing unpacked.
tar -xf "$DISK" -C "$OUTDIR" 2>/dev/null || echo "boot: no readable tar on the output disk" >&2
exit
}
