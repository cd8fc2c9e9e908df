#!/bin/bash
# 10,000 idle SSE streams on one everruns-sse through nginx (sse_streams.py).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_need python3
bench_start
export EVR_HOME EVR_BUILDDIR
python3 "$(dirname "$0")/sse_streams.py" idle
