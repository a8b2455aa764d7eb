# Sourced by tests/zfs-vm/prepare.sh: a private apt that reads Debian's archive as it is today,
# and the questions the recipe asks it. Everything lives under $APTDIR; the host's apt
# configuration, sources, pins, keys and dpkg status are neither read nor changed (APT_CONFIG is
# read before /etc/apt/apt.conf.d, and it points every Dir:: entry at $APTDIR).

# zfsvm_apt_setup <dir>: writes the private configuration and sources (idempotent).
zfsvm_apt_setup() {
  APTDIR=$1
  mkdir -p "$APTDIR"/{empty,lists/partial,cache/archives/partial}
  : > "$APTDIR/status"   # no installed packages: candidates come from the archive alone
  cat > "$APTDIR/debian.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates bookworm-backports
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat > "$APTDIR/apt.conf" <<EOF
Dir::Etc::main "/dev/null";
Dir::Etc::parts "$APTDIR/empty";
Dir::Etc::sourcelist "$APTDIR/debian.sources";
Dir::Etc::sourceparts "$APTDIR/empty";
Dir::Etc::preferences "$APTDIR/empty/none";
Dir::Etc::preferencesparts "$APTDIR/empty";
Dir::Etc::trusted "$APTDIR/empty/none";
Dir::Etc::trustedparts "$APTDIR/empty";
Dir::State::lists "$APTDIR/lists";
Dir::State::status "$APTDIR/status";
Dir::State::extended_states "$APTDIR/empty/extended_states";
Dir::Cache "$APTDIR/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
Acquire::Retries "2";
Acquire::http::Timeout "30";
// The lists and downloads belong to root under /var/tmp: no _apt sandbox.
APT::Sandbox::User "root";
EOF
}

zfsvm_apt() { APT_CONFIG=$APTDIR/apt.conf "$@"; }

# zfsvm_apt_update: refreshes the lists (only changed indexes are fetched). Plain apt-get update
# only warns when an index cannot be fetched and goes on with the old lists; --error-on=any makes
# that a failure, which is what "the archive cannot be read now" means here.
zfsvm_apt_update() {
  zfsvm_apt apt-get update -q --error-on=any >"$APTDIR/update.log" 2>&1
}

# zfsvm_versioned_deps <pkg> <version>: "name=version" for each dependency with a version
# relation (=, >=): what a package was built to go with.
zfsvm_versioned_deps() {
  zfsvm_apt apt-cache show "$1=$2" | awk '/^Depends:/ { sub(/^Depends: */, ""); print; exit }' |
    tr ',' '\n' | sed -n 's/^ *\([^ ]*\) *([>=]* *\([^)]*\)).*/\1=\2/p'
}

# zfsvm_resolve_kernel: sets KABI (e.g. 6.1.0-57-amd64), KPKG (its package version) and KDEBS
# (name=version of the image, its headers, the -common headers and linux-kbuild) from the
# candidate of linux-image-amd64. bookworm-backports carries a newer kernel, but the archive
# marks it NotAutomatic, so the candidate stays bookworm's (main, -updates or -security).
zfsvm_resolve_kernel() {
  local meta image headers
  meta=$(zfsvm_apt apt-cache policy linux-image-amd64 | awk '/Candidate:/ { print $2 }')
  if [ -z "$meta" ] || [ "$meta" = "(none)" ]; then
    echo "archive.sh: the archive offers no linux-image-amd64" >&2; return 1
  fi
  image=$(zfsvm_apt apt-cache depends "linux-image-amd64=$meta" |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }')
  KABI=${image#linux-image-}
  KPKG=$(zfsvm_apt apt-cache policy "$image" | awk '/Candidate:/ { print $2 }')
  if [ -z "$image" ] || [ -z "$KPKG" ] || [ "$KPKG" = "(none)" ]; then
    echo "archive.sh: linux-image-amd64 $meta depends on no installable kernel image" >&2
    return 1
  fi
  # -common is pinned (= KPKG); kbuild only (>= KPKG), and the archive ships both together.
  headers=$(zfsvm_versioned_deps "linux-headers-$KABI" "$KPKG" |
    grep -E '^(linux-headers-.*-common|linux-kbuild-[0-9.]+)=')
  if [ "$(echo "$headers" | wc -l)" != 2 ]; then
    echo "archive.sh: cannot find the -common headers and kbuild of linux-headers-$KABI $KPKG" >&2
    return 1
  fi
  KDEBS="$image=$KPKG linux-headers-$KABI=$KPKG $(echo $headers)"
}

# zfsvm_resolve_zfs <upstream>: sets ZDEB (the Debian version of zfs-dkms for that upstream
# release in its suite) and ZDEBS (zfs-dkms, zfsutils-linux and the libraries zfsutils-linux
# pins to its own version). 2.3.x comes from bookworm-backports, 2.1.x from bookworm itself.
zfsvm_resolve_zfs() {
  local up=$1 suite v
  case $up in
    2.3.*) suite=bookworm-backports ;;
    2.1.*) suite=bookworm ;;
    *) echo "archive.sh: no suite known for OpenZFS $up" >&2; return 1 ;;
  esac
  ZDEB=
  for v in $(zfsvm_apt apt-cache madison zfs-dkms |
    awk -F' *[|] *' -v s=" $suite/contrib " -v up="$up" \
      'index($3, s) && index($2, up "-") == 1 { print $2 }'); do
    if [ -z "$ZDEB" ] || dpkg --compare-versions "$v" gt "$ZDEB"; then ZDEB=$v; fi
  done
  if [ -z "$ZDEB" ]; then
    echo "archive.sh: $suite contrib no longer carries zfs-dkms $up (it has:" \
      "$(zfsvm_apt apt-cache madison zfs-dkms | awk -F' *[|] *' '{ printf "%s ", $2 }'))" >&2
    return 1
  fi
  ZDEBS="zfs-dkms=$ZDEB zfsutils-linux=$ZDEB $(zfsvm_versioned_deps zfsutils-linux "$ZDEB" |
    awk -F= -v v="$ZDEB" '$2 == v && $1 ~ /^lib[a-z]+[0-9]+linux$/' | tr '\n' ' ')"
}
