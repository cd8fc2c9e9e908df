#!/bin/bash
# Benchmark (issue "A sandboxed shell"): the overhead of one `true` in the
# virtual_bash sandbox next to the same command without it, and 20
# concurrent commands from 20 sessions (see sandbox.py). Prints, never
# asserts.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_need python3 bwrap setpriv
bench_start
export EVR_BASE_URL EVR_ADMIN_KEY=$KEY EVR_HOME EVR_RUN_USER
export BENCH_SANDBOX_OUT=$BENCH_HOME/sandbox_figures
python3 "$(dirname "$0")/sandbox.py"
while IFS=$'\t' read -r name value; do
	figure "$name" "$value" ms --better lower --kind latency
done <"$BENCH_SANDBOX_OUT"
