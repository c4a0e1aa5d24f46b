#!/usr/bin/env bash
# Runs claimctl's server-facing tests against every etcd release it
# supports and prints a table: server version x suite, pass/fail/skip counts.
#
#   scripts/compat.sh            # whole matrix: embedded, Debian 3.4, 3.5, 3.6, 3.7
#   scripts/compat.sh --quick    # the CI subset (see below)
#   scripts/compat.sh embedded debian 3.6   # only those servers
#
# Servers come from scripts/etcd-versions.sh (built or fetched once, then
# cached) and reach the tests through CLAIMCTL_TEST_ETCD (pkg/etcdtest):
# Start/StartEmbedded run it as a single member, StartCluster as 3 members.
# "embedded" is the etcd compiled into claimctl (go.mod's server/v3), run
# in-process and, for clusters, as claimctl-server processes.
#
# Suites:
#   claim    the protocol tests of pkg/claim            (single member)
#   claim-3  the same protocol tests                    (3-member cluster,
#            etcdtest.MembersEnv)
#   cli      the CLI contract, TestScripts               (single member)
#   e2e      contention, holder crash (run), network cut (single member)
#   cluster  holder crash, cut-off holder, leader loss   (3-member cluster)
#
# --quick (for CI, about 10 minutes on two cores with a cold cache): Debian
# 3.4 (the oldest and most different release; 2 s to fetch) and the latest
# upstream 3.6 (what most production clusters and Kubernetes run; about a
# minute to build), each with all of claim, the core of claim-3 (FIFO order,
# semaphores, handoffs, fencing, force release, etcd's own mutex), a CLI
# subset and one test of each fault kind. The embedded 3.7.3 is left out: the normal test run
# covers it.
#
# Logs of each run go to $COMPAT_LOGS (default a temporary directory, kept
# and named at the end). COMPAT_RACE=1 adds -race. Exit status 1 if any
# suite failed.
set -uo pipefail

cd "$(dirname "$0")/.."

quick=
servers=()
for a in "$@"; do
	case $a in
	--quick) quick=1 ;;
	-h | --help)
		sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) servers+=("$a") ;;
	esac
done
if [ ${#servers[@]} -eq 0 ]; then
	if [ -n "$quick" ]; then
		servers=(debian 3.6)
	else
		servers=(embedded debian 3.5 3.6 3.7)
	fi
fi

logs=${COMPAT_LOGS:-$(mktemp -d /tmp/claimctl-compat.XXXXXX)}
mkdir -p "$logs"
race=()
[ "${COMPAT_RACE:-}" = 1 ] && race=(-race)

e2e_single='^(TestContentionMutex|TestContentionSemaphore|TestRunCommandDiesWithClaimctl|TestRunNetworkCutStopsTheCommandBeforeTheNextHolderStarts)$'
e2e_cluster='^(TestClusterHolderCrashHandsOverAfterTheTTL|TestClusterCutOffHolderIsStoppedBeforeTheNextHolder|TestClusterLeaderLossKeepsTheHold)$'
cli_run='^TestScripts$'
claim3_run=.
if [ -n "$quick" ]; then
	claim3_run='^(TestAcquireReleaseUncontended|TestFIFOOrderAndRisingFencingTokens|TestSemaphore|TestStaleTokenNeverTouchesNewHolder|TestInteropWithConcurrencyMutex|TestKeepRenewsAndForceReleaseIsReported|TestWaiterWhoseLeaseIsGoneNeverSucceeds)$'

	e2e_single='^(TestContentionMutex|TestRunNetworkCutStopsTheCommandBeforeTheNextHolderStarts)$'
	e2e_cluster='^(TestClusterHolderCrashHandsOverAfterTheTTL)$'
	cli_run='^TestScripts$/^(acquire_release|contention|exit_77_permission|force_release|history|run_exit_codes|semaphore|slots)$'
fi

# suite NAME LEVEL -run PATTERN PACKAGE: runs one suite, prints "P/F/S"
# counts of its tests at LEVEL (0: top-level tests, 1: subtests).
suite() {
	local name=$1 level=$2 run=$3 pkg=$4 log indent rc
	log=$logs/$label-$name.log
	indent=$(printf '%*s' $((level * 4)) '')
	go test -count=1 "${race[@]}" -timeout 15m -v -run "$run" "$pkg" >"$log" 2>&1
	rc=$?
	local p f s
	p=$(grep -c "^$indent--- PASS" "$log")
	f=$(grep -c "^$indent--- FAIL" "$log")
	s=$(grep -c "^$indent--- SKIP" "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # a build failure, panic or timeout: no "--- FAIL" line
	fi
	printf '%s' "$p/$f/$s"
	[ "$f" -gt 0 ] && printf ' (%s)' "$(grep "^$indent--- FAIL" "$log" | sed 's/^ *--- FAIL: //; s/ (.*//' | tr '\n' ' ' | sed 's/ $//')"
}

failed=0
rows=()
for srv in "${servers[@]}"; do
	if [ "$srv" = embedded ]; then
		unset CLAIMCTL_TEST_ETCD
		label=embedded
		version="3.7.3 embedded"
	else
		line=$(scripts/etcd-versions.sh "$srv") || {
			rows+=("$(printf '%-16s %s' "$srv" "no server (see scripts/etcd-versions.sh)")")
			failed=1
			continue
		}
		version=${line%% *}
		export CLAIMCTL_TEST_ETCD=${line#* }
		label=$version
		[ "$srv" = debian ] && version="$version debian"
	fi
	echo "compat.sh: etcd $version" >&2
	start=$(date +%s)
	c1=$(suite claim 0 . ./pkg/claim/)
	c1c=$(CLAIMCTL_TEST_MEMBERS=3 suite claim-3 0 "$claim3_run" ./pkg/claim/)
	c2=$(suite cli 1 "$cli_run" .)
	c3=$(suite e2e 0 "$e2e_single" ./e2e/)
	c4=$(suite cluster 0 "$e2e_cluster" ./e2e/)
	rows+=("$(printf '%-16s | %s | %s | %s | %s | %s | %ss' "$version" "$c1" "$c1c" "$c2" "$c3" "$c4" $(($(date +%s) - start)))")
	for c in "$c1" "$c1c" "$c2" "$c3" "$c4"; do
		[[ $c =~ ^[0-9]+/[1-9] ]] && failed=1
	done
done

echo
echo "pass/fail/skip per suite; logs in $logs"
printf '%-16s | %s | %s | %s | %s | %s | %s\n' server claim claim-3 cli e2e cluster time
printf '%s\n' "${rows[@]}"
exit $failed
