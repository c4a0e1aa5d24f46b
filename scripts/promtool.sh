#!/usr/bin/env bash
# Prints the path of a promtool binary (Prometheus's own rule evaluator),
# installing one first if there is none, for the alert test in pkg/runmetrics:
#
#   CLAIMCTL_PROMTOOL=$(scripts/promtool.sh) go test -run Alert ./pkg/runmetrics/
#
# It uses, in order: $CLAIMCTL_PROMTOOL if it runs; a promtool on PATH; the
# copy cached in ${XDG_CACHE_HOME:-$HOME/.cache}/claimctl/promtool. Failing
# those it installs one into that cache:
#   1. Debian's prometheus package: `apt-get download` (no root needed, no
#      apt-get update, nothing installed) and `dpkg -x` of only the promtool
#      binary: no maintainer scripts run, no service starts. About 2 seconds.
#   2. Otherwise `go install` from the Go module proxy, pinned below. This
#      builds Prometheus's dependency tree: about 7 minutes on one core.
# Progress goes to stderr; stdout is only the path.
set -euo pipefail

# The Go module version of Prometheus to build when there is no Debian
# package (Prometheus v3.x is tagged v0.3xx.y in Go modules).
go_version=v0.316.0

cache=${XDG_CACHE_HOME:-$HOME/.cache}/claimctl/promtool
cached=$cache/bin/promtool

works() { [ -n "$1" ] && [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

if works "${CLAIMCTL_PROMTOOL:-}"; then
	echo "$CLAIMCTL_PROMTOOL"
	exit 0
fi
if onpath=$(command -v promtool 2>/dev/null) && works "$onpath"; then
	echo "$onpath"
	exit 0
fi
if works "$cached"; then
	echo "$cached"
	exit 0
fi

from=
mkdir -p "$cache/bin"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$cached.$$"' EXIT

from_debian() {
	command -v apt-get >/dev/null && command -v dpkg >/dev/null || return 1
	echo "promtool.sh: fetching Debian's prometheus package for promtool" >&2
	# As root, apt-get warns that it downloads unsandboxed into a directory
	# its _apt user cannot write; that is harmless here.
	(cd "$tmp" && apt-get download -q prometheus >&2) || return 1
	dpkg -x "$tmp"/prometheus_*.deb "$tmp/root" || return 1
	[ -x "$tmp/root/usr/bin/promtool" ] || return 1
	cp "$tmp/root/usr/bin/promtool" "$cached.$$"
	from="Debian's prometheus package"
}

from_go() {
	command -v go >/dev/null || return 1
	echo "promtool.sh: building promtool $go_version with go install (this takes minutes)" >&2
	GOBIN=$tmp/gobin go install "github.com/prometheus/prometheus/cmd/promtool@$go_version" >&2 || return 1
	cp "$tmp/gobin/promtool" "$cached.$$"
	from="github.com/prometheus/prometheus $go_version"
}

if ! from_debian && ! from_go; then
	echo "promtool.sh: could not install promtool (no Debian package and no go install); install Prometheus's promtool and put it on PATH" >&2
	exit 1
fi
# Renamed into place, so that a concurrent run never sees half a binary.
mv "$cached.$$" "$cached"
works "$cached" || { echo "promtool.sh: $cached does not run" >&2; exit 1; }
echo "promtool.sh: installed $cached from $from: $("$cached" --version 2>&1 | head -n1)" >&2
echo "$cached"
