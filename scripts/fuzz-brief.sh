#!/usr/bin/env bash
# fuzz-brief.sh FUZZTIME pkg:Target… — runs each fuzz target briefly (make test).
#
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" as
# a failure when -fuzztime ends while a worker is mid-call on a busy machine
# (go.dev/issue/75804, fixed in Go 1.27). A real finding always writes its
# input ("Failing input written to …"). So a run that failed with nothing but
# that message is not a finding: its corpus is replayed deterministically, and
# only a replay failure fails the run. Anything else fails at once.
set -uo pipefail
go=${GO:-go}
fuzztime=$1
shift
for t in "$@"; do
	pkg=${t%%:*} name=${t#*:}
	echo "fuzz $t ($fuzztime)"
	out=$("$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 50x "./$pkg" 2>&1) && continue
	if grep -q 'context deadline exceeded' <<<"$out" &&
		! grep -qE 'Failing input written|panic:|fuzzing process hung|_test\.go:[0-9]+:' <<<"$out"; then
		if replay=$("$go" test -count=1 -run "^${name}\$" "./$pkg" 2>&1); then
			echo "  Go's -fuzztime shutdown race (go.dev/issue/75804): no input found, the corpus replays clean"
			continue
		fi
		out+=$'\n'"corpus replay:"$'\n'"$replay"
	fi
	echo "$out"
	exit 1
done
