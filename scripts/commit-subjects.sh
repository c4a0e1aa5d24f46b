#!/usr/bin/env bash
# Checks the subjects of the commits since BASE (default: the commit this
# check was introduced after): at most 72 characters, and starting with the
# areas they change, comma-separated, then ": " ("claim: ...", "e2e, bench:
# ..."), each one of the areas .goreleaser.yaml's changelog groups by,
# optionally with a path below it ("docs/safety.md: ..."). Merges are not
# checked. Exit status 1, naming each bad subject and what is wrong.
#
#   scripts/commit-subjects.sh [BASE]
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:-222d1e3}
areas='claim|etcdauth|cmd|run|acquire|renew|release|status|list|history|doctor|completions|man|runner|supervise|boottime|eventlog|runmetrics|iostreams|etcdserver|etcdtest|e2e|test|testscripts|bench|ci|scripts|deps_test|go\.mod|packaging|internal|docs|README'
area="($areas)(/[^:, ]+)?"
pattern="^$area(, $area)*: [^ ]"

if ! git cat-file -e "$base^{commit}" 2>/dev/null; then
	echo "commit-subjects.sh: base $base is not in this clone's history (a shallow clone?); nothing checked" >&2
	exit 0
fi
bad=0
while IFS= read -r line; do
	sha=${line%% *}
	subject=${line#* }
	if [ ${#subject} -gt 72 ]; then
		echo "commit $sha: subject is ${#subject} characters, more than 72: $subject" >&2
		bad=1
	fi
	if ! [[ $subject =~ $pattern ]]; then
		echo "commit $sha: subject does not start with an area and ': ' (one of ${areas//\\/}): $subject" >&2
		bad=1
	fi
done < <(git log --no-merges --format='%h %s' "$base..HEAD")
exit $bad
