# Sourced by tests/ci/install-*.sh (its name keeps `cargo xtask install-deps` from running it on its own).

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

# Creates a Python venv at $1 (replacing a broken one). Debian's and Ubuntu's system Python
# refuse `pip install` (PEP 668), and their python3 needs python3-venv for ensurepip; a Python
# of its own has it built in.
make_venv() {
    local venv=$1
    command -v python3 >/dev/null || apt_install_missing python3 python3-venv
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" 2>/dev/null || { apt_install_missing python3-venv && python3 -m venv "$venv"; }
}

# Puts the executable $2 on PATH as /usr/local/bin/$1 (a symlink), failing loudly when it is
# missing.
link_on_path() {
    local name=$1 target=$2
    if [ ! -x "$target" ]; then
        echo "$name: installed, but $target is missing" >&2
        return 1
    fi
    if [ "$(readlink -f "/usr/local/bin/$name" 2>/dev/null || true)" != "$(readlink -f "$target")" ]; then
        ln -sf "$target" "/usr/local/bin/$name"
    fi
}
