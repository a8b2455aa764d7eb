#!/bin/bash
# Builds spl.ko and zfs.ko (2.1 also the small z*.ko and icp.ko it splits out) from Debian's
# zfs-dkms source against extracted Debian kernel headers, the way dkms would but without
# installing anything on the host. Output of configure and make goes to <logs>; the modules are
# copied to <out>. Takes 4-7 minutes on two shared cores.
# usage: build-module.sh <zfs-src> <headers-common> <headers-abi> <logs> <out>
# Braces: bash reads the whole script before running it, so editing or updating it while a
# run is in progress cannot change what that run executes.
{
set -euo pipefail
SRC=$1 KSRC=$2 KOBJ=$3 LOGS=$4 OUT=$5
mkdir -p "$LOGS" "$OUT"

# fail_with <log>: the end of a failed step's log, so the caller's stderr says why.
fail_with() { echo "build-module.sh: $1 failed; the end of $2:" >&2; tail -n 30 "$2" >&2; exit 1; }

cd "$SRC"
t0=$(date +%s)
./configure --disable-dependency-tracking --prefix=/usr --with-config=kernel \
  --with-linux="$KSRC" --with-linux-obj="$KOBJ" >"$LOGS/configure.log" 2>&1 ||
  fail_with configure "$LOGS/configure.log"
t1=$(date +%s)
make -C module -j"$(nproc)" >"$LOGS/make.log" 2>&1 || fail_with make "$LOGS/make.log"
t2=$(date +%s)

find module -name '*.ko' -exec cp {} "$OUT/" \;
for ko in spl.ko zfs.ko; do
  [ -e "$OUT/$ko" ] || { echo "build-module.sh: make left no $ko" >&2; exit 1; }
done
echo "configure_s $((t1 - t0)) make_s $((t2 - t1)) modules $(cd "$OUT" && echo *.ko)" |
  tee "$LOGS/build.timing" >&2
exit
}
