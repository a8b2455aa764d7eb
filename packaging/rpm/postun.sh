# %postun: forget the removed unit; on upgrade ($1 >= 1) restart the new binary.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart hostwarden.service >/dev/null 2>&1 || :
    fi
fi
