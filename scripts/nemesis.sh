#!/usr/bin/env bash
# Runs the long form of TestNemesis (e2e/nemesis_test.go) against each etcd
# release claimctl supports, one after the other, and prints per server:
# the seed (to replay a failure), faults injected by kind, operations,
# holds, acknowledged writes and the verdict of the oracles.
#
#   scripts/nemesis.sh                       # 15m of faults on each of debian 3.5 3.6 3.7
#   scripts/nemesis.sh --per 60m 3.6         # one server, one hour
#   scripts/nemesis.sh --seed N --per 3m 3.5 # replay a failure's schedule
#
# Servers are named as for scripts/compat.sh (embedded, debian, 3.5, 3.6,
# 3.7) and come from scripts/etcd-versions.sh. Each run is bounded: the
# test's own duration plus 20 minutes of go test timeout. Without -race
# (COMPAT_RACE=1 adds it): on two shared cores the race detector's cost
# would turn the liveness bound into a CPU measurement. Logs go to
# $NEMESIS_LOGS (default a temporary directory, named at the end). Exit
# status 1 if any run failed.
set -uo pipefail

cd "$(dirname "$0")/.."

per=15m
seed=0
servers=()
while [ $# -gt 0 ]; do
	case $1 in
	--per)
		per=$2
		shift
		;;
	--seed)
		seed=$2
		shift
		;;
	-h | --help)
		sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) servers+=("$1") ;;
	esac
	shift
done
[ ${#servers[@]} -eq 0 ] && servers=(debian 3.5 3.6 3.7)

logs=${NEMESIS_LOGS:-$(mktemp -d /tmp/claimctl-nemesis.XXXXXX)}
mkdir -p "$logs"
race=()
[ "${COMPAT_RACE:-}" = 1 ] && race=(-race)
# The go test timeout: the faults, then the clients' drain, the oracles and
# the leak check (a few minutes at most).
timeout=$(($(echo "$per" | sed 's/m$//; s/s$//') + 20))m
case $per in *s) timeout=20m ;; esac

failed=0
rows=()
for srv in "${servers[@]}"; do
	if [ "$srv" = embedded ]; then
		unset CLAIMCTL_TEST_ETCD
		version="3.7.3 embedded"
	else
		line=$(scripts/etcd-versions.sh "$srv") || {
			rows+=("$srv: no server (see scripts/etcd-versions.sh)")
			failed=1
			continue
		}
		version=${line%% *}
		export CLAIMCTL_TEST_ETCD=${line#* }
		[ "$srv" = debian ] && version="$version debian"
	fi
	log=$logs/nemesis-${version// /-}.log
	echo "nemesis.sh: etcd $version, $per of faults, log $log" >&2
	start=$(date +%s)
	go test -count=1 "${race[@]}" -timeout "$timeout" -v -run '^TestNemesis$' ./e2e/ \
		-args -nemesis.duration="$per" -nemesis.seed="$seed" >"$log" 2>&1
	rc=$?
	verdict=PASS
	if [ $rc -ne 0 ]; then
		verdict=FAIL
		failed=1
	fi
	rows+=("$(printf '%s: %s in %ss' "$version" "$verdict" $(($(date +%s) - start)))")
	rows+=("$(grep -o 'seed [0-9]*, .* faults scheduled' "$log" | head -1 | sed 's/^/  /')")
	rows+=("$(grep -o 'faults injected: .*' "$log" | head -1 | sed 's/^/  /')")
	rows+=("$(grep -o 'operations [0-9]* .*' "$log" | head -1 | sed 's/^/  /')")
	[ $rc -ne 0 ] && rows+=("$(grep -m3 -E -- '--- FAIL|nemesis_test.go:[0-9]+: oracle|panic:' "$log" | sed 's/^ */  /')")
done

echo
echo "TestNemesis per server; logs in $logs"
printf '%s\n' "${rows[@]}"
exit $failed
