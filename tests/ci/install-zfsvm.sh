#!/usr/bin/env bash
# Installs what the OpenZFS qemu test (tests/tests/zfs_vm.rs, tests/zfs-vm/) needs. Idempotent and
# quiet; fails loudly. qemu-system-x86 boots the guest (TCG), debootstrap makes its root tree,
# cpio packs the initramfs; gcc/make/libc6-dev/bc/libelf-dev build spl.ko/zfs.ko from zfs-dkms
# against extracted kernel headers (the same toolchain dkms would use); debian-archive-keyring
# verifies the private contrib/backports apt lists the download step writes.
set -euo pipefail
. "$(dirname "$0")/apt.sh"

apt_pkgs=(qemu-system-x86 debootstrap cpio gcc make libc6-dev bc libelf-dev
          debian-archive-keyring xz-utils tar)
apt_install_missing "${apt_pkgs[@]}"
command -v qemu-system-x86_64 >/dev/null
