#!/bin/bash
# Commit-to-client latency of SSE fan-out, next to a bare libpq LISTEN
# client (sse_streams.py). 1,000 streams on one session need the
# per-session limit raised for this stack.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_need python3
export EVERRUNS_SSE_MAX_PER_SESSION=1000
bench_start
export EVR_HOME EVR_BUILDDIR
python3 "$(dirname "$0")/sse_streams.py" fanout
