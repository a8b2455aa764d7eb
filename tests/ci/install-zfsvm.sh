#!/usr/bin/env bash
# Installs what the OpenZFS qemu test (tests/tests/zfs_vm.rs, tests/zfs-vm/) needs. Idempotent and
# quiet; fails loudly. qemu-system-x86 boots the guest (TCG), debootstrap makes its root tree,
# cpio packs the initramfs; gcc/make/libc6-dev/bc/libelf-dev build spl.ko/zfs.ko from zfs-dkms
# against extracted kernel headers (the same toolchain dkms would use); debian-archive-keyring
# verifies the private contrib/backports apt lists the download step writes.
set -euo pipefail

apt_pkgs=(qemu-system-x86 debootstrap cpio gcc make libc6-dev bc libelf-dev
          debian-archive-keyring xz-utils tar)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    # Other jobs on the machine may hold the dpkg lock: wait for it rather than fail.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v qemu-system-x86_64 >/dev/null
