#!/bin/bash
# Turns waiting for client-side tool results (see waiting.py): 1,000 at
# once cost the runner no memory beyond its idle figure; answering them all
# resumes them at the rate plain turns run, measured in the same run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_need python3
bench_start
export EVR_BASE_URL EVR_ADMIN_KEY=$KEY EVR_HOME
python3 "$(dirname "$0")/waiting.py"
