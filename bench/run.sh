#!/usr/bin/env bash
# Runs the claimctl benchmark suite: builds claimctl and claimctl-server from
# this checkout and etcdctl v3.7.3 from its release, starts one
# claimctl-server on loopback, and measures claimctl against etcdctl lock,
# alternately, in one run; the cluster, auth and cron scenarios start their
# own 3-member TLS clusters (claimctl-server, and etcd v3.7.3 built from its
# release).
#
#   bench/run.sh                 full run (about 10 minutes on 2 cores)
#   bench/run.sh --quick         CI smoke: tiny counts, correctness only
#   bench/run.sh --publish       full run, then copy the charts to docs/
#   bench/run.sh -h              every flag (counts, --only SCENARIO,...)
#
# Results go to bench/out/ (results.json, results.md, benchmarks.png, and
# rtt.png when the cluster scenario ran its RTT sweep).
set -euo pipefail
cd "$(dirname "$0")"
publish=0
args=()
for a in "$@"; do
  if [ "$a" = "--publish" ]; then publish=1; else args+=("$a"); fi
done
go build -o out/claimbench ./cmd/claimbench
./out/claimbench --root .. --out out "${args[@]+"${args[@]}"}"
if [ "$publish" = 1 ]; then
  cp out/benchmarks.png ../docs/benchmarks.png
  echo "copied the chart to docs/benchmarks.png; paste out/results.md into docs/benchmarks.md"
  # The driver removes a stale rtt.png when this run had no sweep.
  if [ -f out/rtt.png ]; then
    cp out/rtt.png ../docs/benchmarks-rtt.png
    echo "copied the RTT sweep's chart to docs/benchmarks-rtt.png"
  fi
fi
