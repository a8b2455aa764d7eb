#!/usr/bin/env bash
# Builds the .deb and the .rpm (cargo xtask package) and checks them: lintian reports no error or
# warning on the .deb; the .rpm lists the same files, carries the config as %config(noreplace),
# has the systemd scriptlets, and neither package depends on GPU or ZFS libraries.
# Prints "deb PATH SIZE", "rpm PATH SIZE" and "hot_code BYTES" lines for the caller.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }

mapfile -t pkgs < <(cd "$root" && cargo xtask package)
deb=${pkgs[0]:-}; rpm=${pkgs[1]:-}
[[ -f $deb && -f $rpm ]] || fail "cargo xtask package did not print two package paths: ${pkgs[*]}"

# --- .deb ---
# Lintian's own exit code only counts errors; --fail-on makes warnings fail too.
lintian --fail-on error,warning --display-level ">=warning" "$deb" >&2 ||
    fail "lintian reports errors or warnings on $deb"
files=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/hostwarden ./etc/hostwarden/hostwarden.toml \
    ./usr/lib/systemd/system/hostwarden.service ./usr/share/man/man1/hostwarden.1.gz \
    ./usr/share/man/man1/hostwarden-run.1.gz ./usr/share/bash-completion/completions/hostwarden \
    ./usr/share/zsh/vendor-completions/_hostwarden \
    ./usr/share/fish/vendor_completions.d/hostwarden.fish \
    ./usr/share/doc/hostwarden/changelog.Debian.gz ./usr/share/doc/hostwarden/copyright \
    ./usr/lib/tmpfiles.d/hostwarden.conf ./usr/share/hostwarden/polkit/50-hostwarden.rules; do
    grep -qxF "$f" <<<"$files" || fail "$deb lacks $f"
done
dpkg-deb -f "$deb" Depends | grep -qiE 'nvidia|zfs|nvml' && fail ".deb depends on GPU/ZFS libraries"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dpkg-deb -e "$deb" "$tmp/control"
grep -qxF /etc/hostwarden/hostwarden.toml "$tmp/control/conffiles" || fail "config is no conffile"
grep -q 'deb-systemd-helper enable' "$tmp/control/postinst" || fail "postinst does not enable the unit"
# The shipped binary links the code a steady tick runs first (agent/build.rs, issue 20): a
# hot-code list gone stale (renamed functions, another mangling) leaves that section small and
# the agent's resident set about 1.5 MiB larger. Half of what bench/hotcode.sh last captured.
dpkg-deb -x "$deb" "$tmp/root"
hot=$(readelf -SW "$tmp/root/usr/bin/hostwarden" |
    sed -n 's/.* \.text\.hostwarden_tick *PROGBITS *[0-9a-f]* [0-9a-f]* \([0-9a-f]*\) .*/\1/p')
[[ -n $hot ]] || fail "the packaged binary has no .text.hostwarden_tick section (agent/build.rs)"
(( 16#$hot >= 768 * 1024 )) ||
    fail "the packaged binary's tick code is $((16#$hot)) bytes: re-run bench/hotcode.sh"

# --- .rpm ---
rfiles=$(rpm -qpl "$rpm" 2>/dev/null)
for f in /usr/bin/hostwarden /etc/hostwarden/hostwarden.toml \
    /usr/lib/systemd/system/hostwarden.service /usr/share/man/man1/hostwarden.1 \
    /usr/share/man/man1/hostwarden-run.1 /usr/share/bash-completion/completions/hostwarden \
    /usr/share/zsh/site-functions/_hostwarden /usr/share/fish/vendor_completions.d/hostwarden.fish \
    /usr/lib/tmpfiles.d/hostwarden.conf /usr/share/hostwarden/polkit/50-hostwarden.rules; do
    grep -qxF "$f" <<<"$rfiles" || fail "$rpm lacks $f"
done
# %config(noreplace): rpm's fflags print "c" for config and "n" for noreplace.
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" 2>/dev/null |
    grep -qE '^c[a-z]*n[a-z]* /etc/hostwarden/hostwarden.toml$' || fail "config is not %config(noreplace)"
scripts=$(rpm -qp --scripts "$rpm" 2>/dev/null)
for want in 'postinstall scriptlet' 'systemctl daemon-reload' 'systemctl enable --now hostwarden.service' \
    'preuninstall scriptlet' 'systemctl disable --now hostwarden.service' \
    'postuninstall scriptlet' 'systemctl try-restart hostwarden.service'; do
    grep -qF "$want" <<<"$scripts" || fail "rpm scriptlets lack: $want"
done
requires=$(rpm -qpR "$rpm" 2>/dev/null)
grep -qiE 'nvidia|zfs|nvml' <<<"$requires" && fail "rpm requires GPU/ZFS libraries: $requires"
grep -q 'libc.so.6' <<<"$requires" || fail "rpm requires lack libc (auto-req did not run): $requires"

echo "deb $deb $(stat -c %s "$deb")"
echo "rpm $rpm $(stat -c %s "$rpm")"
echo "hot_code $((16#$hot))"
