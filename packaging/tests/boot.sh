#!/usr/bin/env bash
# Installs the .deb into a copy-on-write view of the cached Debian bookworm tree
# (bookworm-tree.sh), boots it with systemd as PID 1 (systemd-nspawn -b) and checks, with the
# shipped unit unchanged:
#   - dpkg enabled the unit and the boot started it: active (running), which for Type=notify
#     means the agent sent READY=1, and its status text shows collected points;
#   - the sandbox, seen from the agent's mount namespace: in /etc only the Ollama drop-in dir
#     is writable, /usr and the config are not, /dev is private;
#   - the watchdog: still active, same PID, no restart, after more than WatchdogSec, with a
#     recent WATCHDOG=1;
#   - `systemctl reload` delivers SIGHUP and the agent reloads its config and keeps running;
#   - `systemd-analyze security hostwarden.service` is at most 2.0.
# Usage: boot.sh DEB. Prints "exposure X.Y" and "watchdog_sec N" lines. Needs root.
set -euo pipefail
deb=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; [[ -n ${cpid:-} ]] && in_ct journalctl -b --no-pager -n 60 >&2 || true; exit 1; }

lower=$("$here/bookworm-tree.sh")
work=$(mktemp -d /var/tmp/hostwarden-boot.XXXXXX)
mkdir -p "$work/upper" "$work/work" "$work/root"
nspawn_pid=
cleanup() {
    if [[ -n $nspawn_pid ]]; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true   # nspawn asks the container to power off
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    umount "$work/root" 2>/dev/null || umount -l "$work/root" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# The cached tree stays pristine: every run writes into its own overlay upper dir.
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work" "$work/root"

# Install as an admin would; systemd is not running in the tree yet, so the postinst enables the
# unit (symlink) and leaves starting it to the boot.
cp "$deb" "$work/root/tmp/hostwarden.deb"
chroot "$work/root" dpkg -i /tmp/hostwarden.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }
[[ -L $work/root/etc/systemd/system/multi-user.target.wants/hostwarden.service ]] ||
    fail "the package did not enable hostwarden.service"

# As on a host with Ollama installed: its drop-in dir exists, the only writable place in /etc.
mkdir -p "$work/root/etc/systemd/system/ollama.service.d"

# --register=no --keep-unit: the host may have no systemd as PID 1 (no machined, no scope to
# allocate), so nspawn stays in its own cgroup and registers nowhere.
systemd-nspawn --quiet --register=no --keep-unit --boot --directory="$work/root" --machine=hw-boot-$$ \
    --console=passive >"$work/console.log" 2>&1 &
nspawn_pid=$!

# The container's PID 1 is nspawn's child; run commands in all of its namespaces.
cpid=
for _ in $(seq 1 200); do
    cpid=$(pgrep -P "$nspawn_pid" -x systemd || true)
    [[ -n $cpid ]] && break
    kill -0 "$nspawn_pid" 2>/dev/null || { cat "$work/console.log" >&2; fail "nspawn exited"; }
    sleep 0.1
done
[[ -n $cpid ]] || fail "no systemd inside the container"
in_ct() { nsenter --target "$cpid" --all -- "$@"; }

# The manager's private socket appears once it is up; then `is-system-running --wait` blocks
# until the boot job queue is empty (the event, not a guess).
for _ in $(seq 1 300); do
    in_ct test -S /run/systemd/private && break
    sleep 0.1
done
state=$(in_ct timeout 120 systemctl is-system-running --wait || true)
prop() { in_ct systemctl show -P "$1" hostwarden.service; }
[[ $(prop ActiveState)/$(prop SubState) == active/running ]] ||
    fail "hostwarden.service is $(prop ActiveState)/$(prop SubState) after boot (system: $state)"
[[ $(prop Type) == notify ]] || fail "unit type is $(prop Type)"
status=$(prop StatusText)
[[ $status =~ ^([0-9]+)\ points && ${BASH_REMATCH[1]} -gt 0 ]] || fail "no points collected: '$status'"
grep -q "host ok" <<<"$status" || fail "host collector not ok under the hardening: '$status'"
pid=$(prop MainPID)

# The sandbox as the agent sees it (its mount namespace): /etc read-only but for the Ollama
# drop-in dir (tuner apply mode), a private /dev.
in_svc() { in_ct nsenter --target "$pid" --mount -- "$@"; }
in_svc sh -c 'echo probe >/etc/systemd/system/ollama.service.d/.hw-probe && rm /etc/systemd/system/ollama.service.d/.hw-probe' ||
    fail "the Ollama drop-in dir is not writable for the agent"
in_svc sh -c 'echo probe >/etc/systemd/system/.hw-probe' 2>/dev/null && fail "/etc/systemd/system is writable for the agent"
in_svc sh -c 'echo probe >/usr/.hw-probe' 2>/dev/null && fail "/usr is writable for the agent"
in_svc sh -c 'echo probe >/etc/hostwarden/.hw-probe' 2>/dev/null && fail "the agent can rewrite its config"
in_svc test -e /dev/null || fail "no /dev/null in the agent's /dev"
in_svc test -e /dev/console && fail "the agent's /dev is not private"

# Watchdog: wait until more than WatchdogSec has passed since the unit became active (READY).
# This one wait is on the clock by nature: surviving the watchdog takes that long.
wd=$(prop WatchdogUSec)
ready_mono=$(prop ActiveEnterTimestampMonotonic)
ready_unix=$(in_ct systemctl show -P ActiveEnterTimestamp --timestamp=unix hostwarden.service)
ready_unix=${ready_unix#@}
# WatchdogUSec prints as a time span (e.g. "30s"); systemd-analyze converts it to microseconds.
watchdog_us=$(systemd-analyze timespan "$wd" | awk '$1 ~ /^(μs|us):$/ {print $2}')
[[ $watchdog_us =~ ^[0-9]+$ && $watchdog_us -gt 0 ]] || fail "no WatchdogSec on the unit ($wd)"
until_s=$((ready_unix + watchdog_us / 1000000 + 2))
while (($(date +%s) < until_s)); do sleep 1; done
[[ $(prop ActiveState) == active && $(prop MainPID) == "$pid" && $(prop NRestarts) == 0 ]] ||
    fail "the watchdog killed or restarted the agent ($(prop ActiveState), pid $(prop MainPID), restarts $(prop NRestarts))"
last_ping=$(prop WatchdogTimestampMonotonic)
((last_ping > ready_mono)) || fail "no WATCHDOG=1 received since READY"

# Reload: `systemctl reload` runs ExecReload (SIGHUP); the agent must reload and keep running.
# The agent also watches its config file, which would reload before the signal does; so the
# change is written in place into the overlay's upper layer, which reaches the file's content
# but raises no inotify event on the merged view: only the signal can make the agent see it.
conf=$work/upper/etc/hostwarden/hostwarden.toml
[[ -f $conf ]] || fail "the config is not in the overlay's upper layer"
new_conf=$(sed 's/^interval = "5s"/interval = "4s"/' "$conf")
printf '%s\n' "$new_conf" >"$conf"   # same inode: truncate and write
in_ct systemctl reload hostwarden.service || fail "systemctl reload failed"
reloaded() { in_ct journalctl -u hostwarden.service --no-pager -o cat | grep "Config reloaded" | grep -q "source=Signal"; }
for _ in $(seq 1 100); do reloaded && break; sleep 0.1; done
reloaded || fail "no reload by SIGHUP in the journal"
[[ $(prop ActiveState) == active && $(prop MainPID) == "$pid" ]] || fail "reload did not keep the agent running"
exposure=$(in_ct systemd-analyze security hostwarden.service 2>/dev/null |
    sed -n 's/.*Overall exposure level for hostwarden.service: \([0-9.]*\).*/\1/p')
[[ -n $exposure ]] || fail "no exposure level"
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "exposure $exposure > 2.0"
echo "exposure $exposure"
echo "watchdog_sec $((watchdog_us / 1000000))"
echo "status $status"
