#!/usr/bin/env bash
# Runs staticcheck (pinned below, installed from the Go module proxy into a
# cache on first use) over the main module, or over the packages given.
#
#   scripts/staticcheck.sh            # ./...
#   scripts/staticcheck.sh ./pkg/...  # some packages
set -euo pipefail
cd "$(dirname "$0")/.."
module_version=v0.8.2
bin=${XDG_CACHE_HOME:-$HOME/.cache}/claimctl/staticcheck-$module_version
if ! [ -x "$bin/staticcheck" ]; then
	echo "staticcheck.sh: installing staticcheck $module_version" >&2
	GOBIN=$bin go install "honnef.co/go/tools/cmd/staticcheck@$module_version"
fi
"$bin/staticcheck" "${@:-./...}"
