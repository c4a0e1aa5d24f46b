#!/bin/sh
# claimctl-server package: after install or upgrade (deb postinst, rpm %post).
# Creates the "claimctl" system user the service runs as, and makes systemd
# see the new or changed unit. It does not enable or start the service.
set -e

if ! getent passwd claimctl >/dev/null 2>&1; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	[ -x "$nologin" ] || nologin=/bin/false
	if command -v useradd >/dev/null 2>&1; then
		getent group claimctl >/dev/null 2>&1 || groupadd --system claimctl
		useradd --system --gid claimctl --no-create-home \
			--home-dir /var/lib/claimctl-server --shell "$nologin" \
			--comment "claimctl-server" claimctl
	else
		adduser --system --group --no-create-home \
			--home /var/lib/claimctl-server --shell "$nologin" \
			--gecos "claimctl-server" claimctl
	fi
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts a running member so that it runs the new binary.
	systemctl try-restart claimctl-server.service >/dev/null 2>&1 || true
fi
