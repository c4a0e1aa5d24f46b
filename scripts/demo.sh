#!/usr/bin/env bash
# Demo: start a claimctl-server on loopback, then let two jobs contend for one
# claim. They run one after the other, each with a higher fencing token.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "== building claimctl and claimctl-server"
go build -o "$work/bin/" . ./claimctl-server
export PATH="$work/bin:$PATH"

echo "== starting claimctl-server (a real single-node etcd) on a free loopback port"
claimctl-server --data-dir "$work/data" \
	--listen-client-urls http://127.0.0.1:0 --listen-peer-urls http://127.0.0.1:0 \
	>"$work/url" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
	[ -s "$work/url" ] && break
	kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
	sleep 0.1
done
[ -s "$work/url" ] || { echo "claimctl-server did not start within 10s" >&2; cat "$work/server.log" >&2; exit 1; }
export CLAIMCTL_ENDPOINTS=$(head -n 1 "$work/url")
echo "   serving on $CLAIMCTL_ENDPOINTS"

echo "== two jobs contend for claim 'deploy'; each holds it for 1s"
pids=()
for job in A B; do
	claimctl run --note "job $job" deploy -- sh -c '
		echo "job '"$job"': holding deploy, fencing token $CLAIMCTL_FENCING_TOKEN"
		sleep 1
		echo "job '"$job"': done"' &
	pids+=($!)
	sleep 0.2
done
sleep 0.3
echo "== while they run: claimctl status deploy"
claimctl status deploy | sed 's/^/   /'
wait "${pids[@]}"
echo "== after both: claimctl status deploy"
claimctl status deploy | sed 's/^/   /'
