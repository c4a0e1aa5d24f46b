#!/usr/bin/env bash
# Checks the release configuration with a pinned goreleaser.
#
#   scripts/release-check.sh              goreleaser check (.goreleaser.yaml)
#   scripts/release-check.sh --snapshot   also build every archive, package
#                                         and checksum into dist/, publishing
#                                         nothing
#
# goreleaser is installed with `go install` from the module proxy, once per
# version, into $CLAIMCTL_TOOLS_DIR (default: ~/.cache/claimctl-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

# v2.17.0 and later need a dependency the module proxy does not serve
# (go.digitalxero.dev/go-msix) or Go 1.27; v2.16.0 builds with Go 1.26.
GORELEASER_VERSION=v2.16.0

snapshot=false
case "${1-}" in
"") ;;
--snapshot) snapshot=true ;;
*)
	echo "usage: $0 [--snapshot]" >&2
	exit 64
	;;
esac

tools=${CLAIMCTL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/claimctl-tools}
bin=$tools/goreleaser-$GORELEASER_VERSION
goreleaser=$bin/goreleaser
if [ ! -x "$goreleaser" ]; then
	echo "== installing goreleaser $GORELEASER_VERSION into $bin"
	# GOFLAGS from the caller (e.g. -mod=vendor) must not apply to the
	# tool's own module; the local toolchain must do.
	GOFLAGS= GOTOOLCHAIN=local GOBIN=$bin \
		go install "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION"
fi

echo "== goreleaser check"
"$goreleaser" check

if $snapshot; then
	echo "== goreleaser release --snapshot (into dist/)"
	"$goreleaser" release --snapshot --clean --skip=publish
fi
