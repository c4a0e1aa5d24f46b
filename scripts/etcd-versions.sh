#!/usr/bin/env bash
# Builds (or fetches) the etcd servers that scripts/compat.sh tests claimctl
# against, caches them, and prints one line per server on stdout:
#
#   VERSION PATH
#
# where VERSION is what `etcd --version` reports (3.4.23, 3.5.36, ...) and
# PATH an etcd binary to give the tests as CLAIMCTL_TEST_ETCD. Progress and
# build times go to stderr.
#
#   scripts/etcd-versions.sh            # all: debian 3.5 3.6 3.7
#   scripts/etcd-versions.sh debian 3.6 # only those
#   scripts/etcd-versions.sh v3.6.16    # an exact upstream version
#
# Servers:
#   debian  Debian's etcd-server package (3.4.23 in Debian 12), unpacked with
#           `apt-get download` + `dpkg -x`: nothing is installed, no
#           maintainer script runs, no service starts. About 2 seconds.
#   3.N     the latest v3.N.x of go.etcd.io/etcd/server/v3 that the Go module
#           proxy serves (`go list -m -versions`), built unchanged from its
#           release: `go install ...@version` is refused because etcd's
#           go.mod has replace directives, so a throwaway module that only
#           requires the release and whose main calls etcdmain.Main (exactly
#           what etcd's own server/main.go does) is built, as
#           bench/internal/build does for etcdctl. Minutes on two cores.
#
# Binaries are cached in ${XDG_CACHE_HOME:-$HOME/.cache}/claimctl/etcd/
# VERSION/etcd (VERSION as v3.5.36, or debian-3.4.23-4+b4) and reused; a
# cached binary is renamed into place only once it runs.
set -euo pipefail

cache=${XDG_CACHE_HOME:-$HOME/.cache}/claimctl/etcd
mkdir -p "$cache"

log() { echo "etcd-versions.sh: $*" >&2; }

# reported BIN prints the version BIN reports ("3.5.36"), or fails.
reported() { "$1" --version 2>/dev/null | sed -n 's/^etcd Version: //p' | grep .; }

# latest 3.N prints the newest v3.N.x the module proxy serves.
latest() {
	local minor=$1 all
	all=$(cd "$cache" && GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod go list -m -versions go.etcd.io/etcd/server/v3) || return 1
	tr ' ' '\n' <<<"$all" | grep -E "^v${minor//./\\.}\.[0-9]+$" | sort -V | tail -n1 | grep .
}

# upstream vX.Y.Z builds that release into the cache, unless it is there.
upstream() {
	local version=$1 dir=$cache/$1 tmp start
	if [ -x "$dir/etcd" ] && reported "$dir/etcd" >/dev/null; then
		echo "$(reported "$dir/etcd") $dir/etcd"
		return
	fi
	mkdir -p "$dir"
	tmp=$(mktemp -d)
	start=$(date +%s)
	log "building etcd $version in a throwaway module (this takes minutes)"
	cat >"$tmp/go.mod" <<-EOF
		module etcdbuild

		go 1.26

		require go.etcd.io/etcd/server/v3 $version
	EOF
	cat >"$tmp/main.go" <<-'EOF'
		// Throwaway build of the released etcd server.
		package main

		import (
			"os"

			"go.etcd.io/etcd/server/v3/etcdmain"
		)

		func main() { etcdmain.Main(os.Args) }
	EOF
	# As etcd's release scripts: static, trimmed, no symbol table.
	if ! (cd "$tmp" &&
		export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod &&
		go mod tidy >&2 &&
		CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$dir/etcd.$$" . >&2); then
		rm -rf "$tmp" "$dir/etcd.$$"
		log "building etcd $version failed"
		return 1
	fi
	rm -rf "$tmp"
	if [ "$(reported "$dir/etcd.$$")" != "${version#v}" ]; then
		log "built etcd $version reports $(reported "$dir/etcd.$$" || echo nothing)"
		rm -f "$dir/etcd.$$"
		return 1
	fi
	mv "$dir/etcd.$$" "$dir/etcd"
	log "built etcd $version in $(($(date +%s) - start)) s"
	echo "$(reported "$dir/etcd") $dir/etcd"
}

# debian unpacks Debian's etcd-server package into the cache.
debian() {
	local pkgver dir tmp
	command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
		log "no apt-get/dpkg: cannot fetch Debian's etcd-server"
		return 1
	}
	pkgver=$(apt-cache policy etcd-server 2>/dev/null | sed -n 's/^ *Candidate: //p')
	if [ -z "$pkgver" ] || [ "$pkgver" = "(none)" ]; then
		log "apt knows no etcd-server package (run apt-get update?)"
		return 1
	fi
	dir=$cache/debian-$pkgver
	if [ -x "$dir/etcd" ] && reported "$dir/etcd" >/dev/null; then
		echo "$(reported "$dir/etcd") $dir/etcd"
		return
	fi
	mkdir -p "$dir"
	tmp=$(mktemp -d)
	log "fetching Debian's etcd-server $pkgver"
	# As root, apt-get warns that it downloads unsandboxed into a directory
	# its _apt user cannot write; that is harmless here.
	if ! (cd "$tmp" && apt-get download -q "etcd-server=$pkgver" >&2) ||
		! dpkg -x "$tmp"/etcd-server_*.deb "$tmp/root" ||
		! [ -x "$tmp/root/usr/bin/etcd" ]; then
		rm -rf "$tmp"
		log "could not unpack etcd-server $pkgver"
		return 1
	fi
	cp "$tmp/root/usr/bin/etcd" "$dir/etcd.$$"
	rm -rf "$tmp"
	reported "$dir/etcd.$$" >/dev/null || {
		rm -f "$dir/etcd.$$"
		log "Debian's etcd does not run"
		return 1
	}
	mv "$dir/etcd.$$" "$dir/etcd"
	echo "$(reported "$dir/etcd") $dir/etcd"
}

[ $# -gt 0 ] || set -- debian 3.5 3.6 3.7
status=0
for want in "$@"; do
	case $want in
	debian) debian || status=1 ;;
	3.[0-9] | 3.[0-9][0-9])
		if v=$(latest "$want"); then
			upstream "$v" || status=1
		else
			log "the module proxy serves no go.etcd.io/etcd/server/v3 v$want.x"
			status=1
		fi
		;;
	v3.*) upstream "$want" || status=1 ;;
	*)
		log "unknown server $want (want debian, 3.N or v3.N.M)"
		exit 2
		;;
	esac
done
exit $status
