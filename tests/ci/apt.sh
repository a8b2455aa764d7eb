# Sourced by tests/ci/install-*.sh (its name keeps .ci/run from running it on its own).

# Installs those of the named Debian packages that are not installed yet; quiet, fails loudly.
apt_install_missing() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    # Other jobs on the machine may hold the dpkg lock: wait for it rather than fail.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # A dpkg run interrupted elsewhere on the machine leaves half-configured packages behind.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 --fix-broken install -y -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}
