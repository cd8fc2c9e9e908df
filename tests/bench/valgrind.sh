#!/bin/bash
# make valgrind: everruns-api, everruns-sse and everruns-runner of a
# private stack under valgrind (memcheck), a short mixed load (soak.py for
# VG_LOAD_S seconds, 60), then SIGTERM and each program's leak summary.
# Exit 1 when any reports a definite or indirect leak or a memory error.
# Not part of make check or make bench.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_need python3 valgrind
LOAD_S=${VG_LOAD_S:-60}
export EVERRUNS_DRAIN_S=3 EVERRUNS_API_PROCS=1 EVERRUNS_HISTORY_CACHE_SESSIONS=50
bench_start
LOGS=$BENCH_HOME/log
VG=(valgrind --leak-check=full --show-leak-kinds=definite,indirect
	--errors-for-leak-kinds=definite,indirect --num-callers=30)

AS_STACK=()
[ "$(id -u)" -ne 0 ] ||
	AS_STACK=(setpriv --reuid="$EVR_RUN_USER" --regid="$EVR_RUN_USER" --init-groups --)

# stop_pidfile NAME: the stack's own instance of a program
stop_pidfile() {
	local pids
	pids=$(cat "$BENCH_HOME/run/$1.pid" 2>/dev/null || true)
	[ -z "$pids" ] && return 0
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	for _ in $(seq 100); do
		# shellcheck disable=SC2086
		kill -0 $pids 2>/dev/null || break
		sleep 0.1
	done
}

declare -A VGPID
start_vg() {
	local name=$1
	shift
	# (a simple command: $! is valgrind itself, which setpriv becomes)
	"${AS_STACK[@]}" "${VG[@]}" --log-file="$LOGS/valgrind-$name.log" "$@" \
		>>"$LOGS/$name-valgrind.out" 2>&1 </dev/null &
	VGPID[$name]=$!
}

for p in api sse runner; do
	stop_pidfile "$p"
done
rm -f "$EVR_SOCKDIR/api.sock"
start_vg api "$EVR_API_BIN" --socket "$EVR_SOCKDIR/api.sock"
start_vg sse "$EVR_SSE_BIN" --socket "$EVR_SOCKDIR/sse.sock"
start_vg runner "$EVR_RUNNER_BIN"
# the metrics of the soak read these
for p in api sse runner; do
	echo "${VGPID[$p]}" >"$BENCH_HOME/run/$p.pid"
done
for _ in $(seq 600); do
	code=$(curl -s -o /dev/null -w '%{http_code}' "$EVR_BASE_URL/health" || true)
	[ "$code" = 200 ] && break
	sleep 0.2
done
[ "$code" = 200 ] || { echo "valgrind: the stack did not come up under valgrind" >&2; exit 1; }
echo "valgrind: api, sse and runner under memcheck; ${LOAD_S} s of mixed load"
export EVR_BASE_URL EVR_ADMIN_KEY=$KEY EVR_HOME EVR_BUILDDIR
SOAK_S=$LOAD_S SOAK_SAMPLE_S=10 SOAK_CHECK_RSS=0 SOAK_REST_THREADS=2 SOAK_TURN_THREADS=2 \
	SOAK_STREAM_THREADS=2 python3 "$(dirname "$0")/soak.py" | sed -n '/^operations/,$p' || true

rc=0
for p in api sse runner; do
	kill -TERM "${VGPID[$p]}" 2>/dev/null || true
done
for p in api sse runner; do
	wait "${VGPID[$p]}" || true
done
printf '\n%-7s %14s %14s %14s %8s\n' program "definitely" "indirectly" "reachable" errors
for p in api sse runner; do
	f=$LOGS/valgrind-$p.log
	def=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | awk '{s+=$1} END {print s+0}')
	ind=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | awk '{s+=$1} END {print s+0}')
	rea=$(sed -n 's/.*still reachable: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | awk '{s+=$1} END {print s+0}')
	err=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$f" | tr -d , | awk '{s+=$1} END {print s+0}')
	if ! grep -q 'ERROR SUMMARY' "$f" 2>/dev/null; then
		echo "$p: no valgrind summary; the end of its output:"
		tail -n 20 "$f" "$LOGS/$p-valgrind.out" 2>/dev/null
		rc=1
		continue
	fi
	printf '%-7s %14s %14s %14s %8s\n' "$p" "$def B" "$ind B" "$rea B" "$err"
	if [ "$def" != 0 ] || [ "$ind" != 0 ] || [ "$err" != 0 ]; then
		rc=1
		echo "--- $f (first records):"
		grep -A25 -m3 'are definitely lost\|are indirectly lost\|Invalid\|uninitialised' "$f" | head -80
	fi
done
exit $rc
