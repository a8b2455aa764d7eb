# %preun: on erase ($1 = 0), stop and disable the unit before its files go.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now hostwarden.service >/dev/null 2>&1 || :
fi
