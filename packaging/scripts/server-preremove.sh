#!/bin/sh
# claimctl-server package: before removal (deb prerm, rpm %preun). Stops and
# disables the service when the package is removed, not when it is upgraded
# (deb passes "upgrade", rpm a count of 1 or more).
set -e

case "$1" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now claimctl-server.service >/dev/null 2>&1 || true
	fi
	;;
esac
