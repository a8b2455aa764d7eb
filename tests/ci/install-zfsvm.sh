#!/usr/bin/env bash
# Installs what the OpenZFS qemu test (tests/tests/zfs_vm.rs, tests/zfs-vm/) needs. Idempotent and
# quiet; fails loudly.
#   qemu-system-x86          boots the guest (TCG)
#   debootstrap              makes the guest's minbase tree (its kmod runs depmod for the guest)
#   cpio                     packs the initramfs
#   gcc make libc6-dev bc    build spl.ko/zfs.ko from zfs-dkms against the extracted kernel
#   libelf-dev               headers, the toolchain dkms would use (the headers' kbuild tools
#                            link libelf); no dwarves: with no vmlinux in the headers, kbuild
#                            skips BTF for external modules and never runs pahole
#   apt debian-archive-keyring
#                            the private apt (tests/zfs-vm/archive.sh) that reads bookworm,
#                            -updates, -security and -backports and verifies them
#   xz-utils tar             unpack .debs and the guest's output disk
set -euo pipefail
. "$(dirname "$0")/apt.sh"

apt_pkgs=(qemu-system-x86 debootstrap cpio gcc make libc6-dev bc libelf-dev
          apt debian-archive-keyring xz-utils tar)
apt_install_missing "${apt_pkgs[@]}"
command -v qemu-system-x86_64 >/dev/null
