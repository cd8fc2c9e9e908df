#!/bin/bash
# 1,000 concurrent turns against the fake provider (see concurrent_turns.py).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_need python3
export EVERRUNS_MAX_INFLIGHT_TURNS=${BENCH_CONCURRENT:-1000}
bench_start
export EVR_BASE_URL EVR_ADMIN_KEY=$KEY EVR_HOME EVR_BUILDDIR
python3 "$(dirname "$0")/concurrent_turns.py"
