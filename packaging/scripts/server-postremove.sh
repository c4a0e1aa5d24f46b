#!/bin/sh
# claimctl-server package: after removal (deb postrm, rpm %postun). Makes
# systemd forget the removed unit. The "claimctl" user and the data in
# /var/lib/claimctl-server are kept: they hold the claims' history and
# fencing-token sequence, which a reinstall must continue.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
