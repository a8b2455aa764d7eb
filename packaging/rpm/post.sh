# %post: create the state dir, tell systemd about the new unit; enable and start it on a first
# install only ($1 = 1), restart it on an upgrade (the way %systemd_post / %systemd_postun do).
systemd-tmpfiles --create /usr/lib/tmpfiles.d/hostwarden.conf >/dev/null 2>&1 || :
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now hostwarden.service >/dev/null 2>&1 || :
    fi
fi
