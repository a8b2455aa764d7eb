#!/bin/sh
# PID 1 of the OpenZFS guest (tests/zfs-vm/run.sh packs it as /init beside /hostwarden and
# /hostwarden.toml). Two phases, each reading the pools through hostwarden and through zpool
# itself back to back, so tests/tests/zfs_vm.rs can compare them:
#   load      both pools written to (dd + fsync, so the log vdev is used too), all ONLINE;
#   degraded  writers stopped, checksum errors made on tank-b and repaired by a scrub, then
#             tank-b offlined: tank DEGRADED with non-zero error counts that must match;
#   resilver  tank-b onlined and resilvered: the last scan is a finished resilver.
#   oracle    datasets and a zvol added, node_exporter scraped around `hostwarden once` (issue 17).
# Then the ARC grown by reads and squeezed (issue 15), and the agent lowering zfs_arc_max for the
# Ollama stand-in's model and restoring it at stop (issue 18).
# Every command's stdout/stderr goes to /out/<name>.{txt,stderr}, its exit code to
# /out/commands.tsv; /out is tarred onto /dev/vda (the only virtio disk) and the guest powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /run /tmp /out /vdev
mount -t devpts devpts /dev/pts; mount -t tmpfs run /run; mount -t tmpfs tmp /tmp
mount -t tmpfs -o size=1200M vdev /vdev
OUT=/out T0=$(date +%s)
log() { echo "[guest $(( $(date +%s) - T0 ))s] $*"; }
finish() {
  log "writing /out to /dev/vda"
  tar -cf /dev/vda -C $OUT . && log "tar ok"; sync
  echo o > /proc/sysrq-trigger; sleep 30
}
# cap NAME CMD...: stdout -> NAME.txt, stderr -> NAME.stderr, "NAME<TAB>rc<TAB>cmd" -> commands.tsv.
cap() {
  name=$1; shift
  "$@" > $OUT/$name.txt 2> $OUT/$name.stderr; rc=$?
  [ -s $OUT/$name.stderr ] || rm -f $OUT/$name.stderr
  printf '%s\t%s\t%s\n' "$name" "$rc" "$*" >> $OUT/commands.tsv
  log "$name rc=$rc"
}
# ifup IFACE: the guest has no `ip`, so perl sets IFF_UP on top of the interface's flags
# (SIOCGIFFLAGS, SIOCSIFFLAGS); the kernel gives lo 127.0.0.1 when it comes up. The request is
# a variable: perl's ioctl refuses a read-only pack() result.
ifup() {
  perl -e 'use Socket; socket(my $s, PF_INET, SOCK_DGRAM, 0) or die "socket: $!";
    my $req = pack("a16 s x22", $ARGV[0], 0); ioctl($s, 0x8913, $req) or die "$ARGV[0]: $!";
    my $flags = (unpack("a16 s", $req))[1] | 1;
    $req = pack("a16 s x22", $ARGV[0], $flags); ioctl($s, 0x8914, $req) or die "$ARGV[0] up: $!"' "$1"
}
# scrape: node_exporter's /metrics body on stdout (the guest has perl, no curl or wget).
scrape() {
  perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:9100",
      Timeout => 60) or die "connect: $@";
    print $s "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"; local $/; my $r = <$s>;
    my ($head, $body) = split /\r\n\r\n/, $r, 2;
    $head =~ m{^HTTP/1\.\d 200 } or die "node_exporter: $head\n"; print $body'
}
LIST="zpool list -Hp -v -o name,size,alloc,free,frag,cap,dedup,health"
# hostwarden once between two zpool lists and two since-import iostat reports, inside five
# one-second iostat reports (once measures one second, issue 15), then zpool status and an
# interval iostat: one phase's readings.
readings() {
  cap $1-list-before $LIST
  cap $1-iostat-before zpool iostat -Hpl
  cap $1-iostat-window zpool iostat -Hply 1 5 &
  IW=$!
  sleep 0.5
  cap $1-once /hostwarden once --format json --config /hostwarden.toml
  wait $IW
  cap $1-iostat-after zpool iostat -Hpl
  cap $1-list-after $LIST
  cap $1-status-j zpool status -j --json-int   # OpenZFS 2.3+; 2.1 rejects -j (exit 2)
  cap $1-status-p zpool status -p               # what hostwarden reads before 2.3
  cap $1-iostat zpool iostat -Hpl -y 1 1
}

modprobe virtio_pci; modprobe virtio_blk
modprobe spl && modprobe zfs zfs_arc_max=268435456 || { log "cannot load zfs"; dmesg | tail -30; finish; }
cap uname uname -r
cap zpool-version zpool version

truncate -s 256M /vdev/tank-a /vdev/tank-b /vdev/scratch-0
truncate -s 128M /vdev/tank-log
cap create-tank zpool create -f tank mirror /vdev/tank-a /vdev/tank-b log /vdev/tank-log
cap create-scratch zpool create -f scratch /vdev/scratch-0
zfs set compression=off tank; zfs set compression=off scratch
# Incompressible seed data, so the corruption below lands on allocated blocks.
dd if=/dev/urandom of=/tank/seed bs=1M count=48 status=none
dd if=/dev/urandom of=/scratch/seed bs=1M count=16 status=none
zpool sync

# Writers run until /tmp/stop exists. Each rewrites one of 8 files of 4 MiB with fsync, so a
# pool's allocation swings by at most the 32 MiB working set (the test's tolerance under load).
writer() { i=0
  while [ ! -e /tmp/stop ]; do
    dd if=/dev/urandom of=$1/bg$((i % 8)) bs=128k count=32 conv=fsync status=none; i=$((i+1))
  done; echo "$1 $i" >> $OUT/writers.txt; }
writer /tank & W1=$!
writer /scratch & W2=$!
sleep 3
log "phase load"
readings load
# --- issue 15 (pool I/O of `once`): once's one-second interval inside zpool's own six
# seconds, both under the writers' load, so zfs_vm.rs compares the write IOPS of the same time.
# Six, not three: under emulation on a busy host `once` can take over a second to start, and a
# transaction group's commit makes one second of writes far busier than the next; the window has
# to hold once's second and the load's own swing.
cap load-iops-zpool zpool iostat -Hpy 1 6 &
Z=$!
sleep 0.5
cap load-iops-once /hostwarden once --format json --config /hostwarden.toml
wait $Z
# --- end issue 15 (pool I/O)
touch /tmp/stop; wait $W1 $W2

log "phase degraded"
# Overwrite 32 MiB in the middle of tank-b (labels live in the first and last 512 KiB); the
# scrub repairs it from tank-a and counts CKSUM errors on tank-b, which offlining keeps.
dd if=/dev/urandom of=/vdev/tank-b bs=1M seek=32 count=32 conv=notrunc status=none
cap scrub zpool scrub -w tank
cap offline zpool offline tank /vdev/tank-b
dd if=/dev/urandom of=/tank/after-offline bs=1M count=4 conv=fsync status=none
zpool sync
readings degraded

# --- issue 15 (scan history): tank-b back online and resilvered, so the last scan is a
# resilver; the degraded phase above already read a finished scrub that repaired tank-b.
log "phase resilver"
cap online zpool online tank /vdev/tank-b
# `zpool online` starts the resilver asynchronously: `zpool wait -t resilver` can return before
# it began, and `once` then still sees the scrub as the last scan. Wait until status names a
# finished resilver (bounded: 120 half-seconds).
resilvered() { zpool wait -t resilver tank && zpool status tank | grep -q 'scan: resilvered'; }
i=0; until resilvered || [ $i -ge 120 ]; do sleep 0.5; i=$((i + 1)); done
cap resilver-wait resilvered
readings resilver
# --- end issue 15 (scan history)
# --- node_exporter oracle (issue 17): when the run packed /oracle (node_exporter, its flags one
# per line, once's config; tests/tests/zfs_vm.rs), node_exporter is scraped right before and
# right after `hostwarden once`, with the pools quiet and datasets of every kind mounted: nested,
# read-only, with a quota, and a zvol (zd0 in diskstats) beside the virtio disk; eth0 is a
# virtio NIC. The proc files the disk and network parts read are kept for
# tests/fixtures/proc too. ---
if [ -d /oracle ]; then
  log "phase oracle"
  cap oracle-datasets sh -c 'zfs create tank/data && zfs create tank/data/deep &&
    zfs create -o readonly=on tank/frozen && zfs create -o quota=64M scratch/capped &&
    zfs create -s -V 32M tank/vol'
  dd if=/dev/urandom of=/tank/data/deep/file bs=1M count=8 status=none
  dd if=/dev/urandom of=/scratch/capped/file bs=1M count=4 status=none
  i=0; while [ ! -b /dev/zd0 ] && [ $i -lt 60 ]; do sleep 0.5; i=$((i + 1)); done
  cap oracle-zvol dd if=/dev/urandom of=/dev/zd0 bs=1M count=4 conv=fsync status=none
  zpool sync
  cap oracle-net sh -c 'for m in failover net_failover virtio_net; do
    insmod /net-modules/$m.ko || exit 1; done'
  cap oracle-lo ifup lo
  cap oracle-eth0 ifup eth0
  set --; while IFS= read -r a; do set -- "$@" "$a"; done < /oracle/node-exporter.args
  /oracle/node-exporter --web.listen-address=127.0.0.1:9100 "$@" > $OUT/oracle-ne.log 2>&1 &
  ne=$!; set --
  # The first scrape warms node_exporter up (it builds its collectors and reads udev data).
  i=0; until scrape > /dev/null 2>&1 || [ $i -ge 120 ]; do sleep 0.5; i=$((i + 1)); done
  cap oracle-ne-before scrape
  cap oracle-once /hostwarden once --format json --config /oracle/hostwarden.toml
  cap oracle-ne-after scrape
  kill $ne; wait $ne
  cap oracle-diskstats cat /proc/diskstats
  cap oracle-netdev cat /proc/net/dev
  cap oracle-mountinfo cat /proc/self/mountinfo
fi
# --- end node_exporter oracle ---
# --- ARC (issue 15): the ARC grown past a third of RAM by reads, then arcstats and meminfo read
# right before and right after `hostwarden once` (arc-*-before, arc-once, arc-*-after). ---
# The vdevs are files in tmpfs, i.e. in this guest's RAM: incompressible data would take its
# size twice. So the data compresses ~100:1 on the vdev (lz4) and compressed ARC is off, which
# makes the ARC hold every block uncompressed: ~1.2 GiB of ARC for ~15 MiB of vdev. zfs_arc_max
# goes from the 256 MiB of the phases above to half of RAM (the Linux default before 2.3).
# The file is 40% of MemTotal, written as copies of a 32 MiB pattern (one pipe, not 1.2 GiB of
# pipe, under emulation).
mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
echo $((mem_kib * 512)) > /sys/module/zfs/parameters/zfs_arc_max
echo 0 > /sys/module/zfs/parameters/zfs_compressed_arc_enabled
truncate -s 256M /vdev/arc-0
cap arc-create zpool create -f -O compression=lz4 arc /vdev/arc-0
yes hostwarden-arc-fill | head -c 32M > /tmp/arc-pattern
copies=$((mem_kib * 40 / 100 / 32768)); set --
while [ $# -lt $copies ]; do set -- "$@" /tmp/arc-pattern; done
cat "$@" > /arc/fill; set --; rm /tmp/arc-pattern; log "arc: wrote $copies x 32 MiB"
cap arc-write-sync zpool sync arc
# Export and import empty the ARC of the pool, so that what fills it below is reads; the first
# 64 MiB are read twice, so there are hits and blocks in MFU as well as MRU.
cap arc-export zpool export arc
cap arc-import zpool import -d /vdev arc
cap arc-read sh -c 'cat /arc/fill > /dev/null'
cap arc-reread sh -c 'head -c 64M /arc/fill > /dev/null'
cap arc-arcstats-before cat /proc/spl/kstat/zfs/arcstats
cap arc-meminfo-before cat /proc/meminfo
cap arc-once /hostwarden once --format json --config /hostwarden.toml
cap arc-arcstats-after cat /proc/spl/kstat/zfs/arcstats
cap arc-meminfo-after cat /proc/meminfo
# The squeeze: a process takes anonymous memory until MemAvailable, which leaves the ARC out, is
# about 4 % of MemTotal, the state in which Ollama refuses a model (ollama/ollama #5700) and the
# usual MemAvailable alert (node_exporter's mixin: available under 10 %) fires, although the ARC
# could give most of it back. GNU tail holds a line with no newline in memory until its input
# ends; the sleep keeps the input open while the readings are taken.
# The readings wait until the hog holds all it asked for: head has written everything (the
# marker; tail has then read all but one pipe buffer) and MemAvailable moved less than 0.5 % of
# MemTotal over the last half-second. Waiting only for MemAvailable to cross 6 % let the hog
# take another 80 MiB between the meminfo reading and `once` (CI, 2026-12-02).
avail_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
hog_kib=$((avail_kib - mem_kib * 4 / 100))
rm -f /tmp/hog-full
( head -c "${hog_kib}K" /dev/zero; : > /tmp/hog-full; sleep 600 ) | tail > /dev/null &
hog=$!
i=0
while [ $i -lt 240 ] && [ ! -e /tmp/hog-full ]; do sleep 0.5; i=$((i + 1)); done
last=0; now=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
while [ $i -lt 300 ] && [ $(( now > last ? now - last : last - now )) -gt $((mem_kib / 200)) ]; do
  sleep 0.5; i=$((i + 1)); last=$now; now=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
done
log "squeeze: $hog_kib KiB held after $i half-seconds, MemAvailable $now KiB"
cap squeeze-arcstats-before cat /proc/spl/kstat/zfs/arcstats
cap squeeze-meminfo-before cat /proc/meminfo
cap squeeze-once /hostwarden once --format json --config /hostwarden.toml
cap squeeze-arcstats-after cat /proc/spl/kstat/zfs/arcstats
cap squeeze-meminfo-after cat /proc/meminfo
kill $hog 2>/dev/null
# --- end ARC ---

# --- ARC coordination (issue 18): the ARC as the phases above left it (~1.3 GiB, read), the
# Ollama stand-in advertising a model held in RAM (size_vram 0) that MemAvailable cannot hold,
# and `hostwarden run` with [tuner.zfs_arc] mode = "apply": it lowers zfs_arc_max so that the
# ARC gives up what the model still needs. arcstats and MemAvailable are read every second for
# 75 s (the shrink curve, arc-curve.txt: unix-time size c c_max MemAvailable-KiB), then the agent
# is stopped and zfs_arc_max read back: the boot value again. ---
log "phase arc-coordination"
# No `wait $hog`: dash waits for the whole pipeline, whose `sleep 600` outlives the kill.
sleep 2
# lo is up already when the oracle phase ran; bringing it up again is harmless.
cap coord-lo ifup lo
avail_b=$(( $(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) * 1024 ))
# The agent's reserve is 256 MiB: a model of MemAvailable + 768 MiB - 256 MiB asks the ARC
# for 768 MiB.
model_b=$((avail_b + (768 - 256) * 1048576))
cap coord-arcstats-before cat /proc/spl/kstat/zfs/arcstats
cap coord-meminfo-before cat /proc/meminfo
cap coord-param-boot cat /sys/module/zfs/parameters/zfs_arc_max
/ollama-standin --listen 127.0.0.1:11434 --model "llama3.1:8b=$model_b/0/4096" \
  --tags /ollama/tags.json --show llama3.1:8b=/ollama/show.json > $OUT/coord-standin.log 2>&1 &
standin=$!
cat > /tmp/coord.toml <<EOT
# The agent of the ARC coordination phase: host memory and arcstats every 2 s, Ollama at the
# stand-in, zfs_arc_max lowered down to c_min + 128 MiB at most, never under 256 MiB.
[agent]
interval = "2s"
state_dir = "/tmp/hostwarden-coord"
status_socket = "/run/hostwarden/coord.sock"
[gpu]
enabled = false
[zfs]
enabled = false
[ollama]
url = "http://127.0.0.1:11434"
[tuner.zfs_arc]
mode = "apply"
floor_mib = 128
min_max_mib = 256
reserve_mib = 256
EOT
echo "model $model_b" > $OUT/coord-model.txt
RUST_LOG=info /hostwarden run --config /tmp/coord.toml --view never > $OUT/coord-agent.log 2>&1 &
agent=$!
# OpenZFS evicts down to a lowered limit on its next ARC allocation (arc_wait_for_eviction), not
# when the limit is written (arc_tuning_update only lowers c). On a host in use something always
# allocates, Ollama reading its model from the pool first of all; this quiet guest gets 128 KiB
# written to tank each second as that activity.
i=0
while [ $i -lt 75 ]; do
  dd if=/dev/urandom of=/tank/coord-io bs=128k count=1 conv=notrunc status=none
  echo "$(date +%s.%N) $(awk '$1 == "size" {s = $3} $1 == "c" {c = $3} $1 == "c_max" {m = $3}
    END {print s, c, m}' /proc/spl/kstat/zfs/arcstats) $(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)" \
    >> $OUT/arc-curve.txt
  sleep 1; i=$((i + 1))
done
cap coord-status /hostwarden status --config /tmp/coord.toml --format json
cap coord-param-running cat /sys/module/zfs/parameters/zfs_arc_max
kill -TERM $agent; wait $agent; echo "agent exit $?" >> $OUT/coord-agent.log
cap coord-param-after cat /sys/module/zfs/parameters/zfs_arc_max
cap coord-arcstats-after cat /proc/spl/kstat/zfs/arcstats
cap coord-journal cat /tmp/hostwarden-coord/tuner-journal.jsonl
kill $standin 2>/dev/null
# --- end ARC coordination ---

dmesg > $OUT/dmesg.txt
echo ok > $OUT/guest-done
finish
