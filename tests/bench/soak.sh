#!/bin/bash
# make soak: a mixed load (REST, turns, streams, long-polls) on a private
# stack for SOAK_S seconds (600; at most 1500, so the whole run stays
# under 30 minutes), the resident memory of api, sse, runner and nginx
# sampled every SOAK_SAMPLE_S (5) seconds and printed as a series, then
# whether each stayed flat after the warm-up (soak.py). Not part of
# make check or make bench.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_need python3
SOAK_S=${SOAK_S:-600}
if ! [[ $SOAK_S =~ ^[0-9]+$ ]] || [ "$SOAK_S" -lt 30 ] || [ "$SOAK_S" -gt 1500 ]; then
	echo "soak: SOAK_S must be 30..1500 seconds (got $SOAK_S)" >&2
	exit 2
fi
export SOAK_S
# The runner keeps the history of up to history_cache_sessions sessions
# (1000); the load makes a new session for every stream, so a smaller
# cache reaches its bound within the warm-up and what grows after it is
# a leak, not the cache filling.
export EVERRUNS_HISTORY_CACHE_SESSIONS=${EVERRUNS_HISTORY_CACHE_SESSIONS:-100}
bench_start
export EVR_BASE_URL EVR_ADMIN_KEY=$KEY EVR_HOME EVR_BUILDDIR
timeout $((SOAK_S + 240)) python3 "$(dirname "$0")/soak.py"
