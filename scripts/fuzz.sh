#!/usr/bin/env bash
# Runs every fuzz target for a fixed budget each: fuzz targets exist for
# every parser (names and keys, tokens, durations, config, metrics files).
#
# The budget is a count of executions (default 20000x), not a duration: with
# a duration, Go 1.26's fuzz coordinator can fail a target that found nothing
# with "context deadline exceeded" when the deadline races a starved worker
# (golang/go#75804, fixed in Go 1.27). A count has no deadline to race.
# A duration such as 30s still works for a local, longer run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-20000x}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "== fuzz $pkg $target ($fuzztime)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
	done
done
