#!/bin/bash
# Benchmarks of turns: overhead per turn and durable event writes (see
# turns.py), with pgbench inserting the same row shape as the reference.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_need wrk python3
bench_start
export EVR_BASE_URL EVR_ADMIN_KEY=$KEY EVR_HOME BENCH_EVENTS_OUT=$BENCH_HOME/events_per_s
python3 "$(dirname "$0")/turns.py"

# the reference: the same row shape, one per transaction and 64 per
# transaction, 16 clients, synchronous_commit on
bench_psql -c "CREATE TABLE bench_events (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES)"
# the runner's writes left autovacuum work; done now, not inside pgbench's runs
bench_psql -c "VACUUM (ANALYZE) events, turns, sessions"
cat >"$BENCH_HOME/one.sql" <<'SQL'
\set s random(1, 1000000000)
INSERT INTO bench_events (session_id, seq, type, data) VALUES (gen_random_uuid(), :s, 'tool.completed', '{"tool_call_id":"call_1","tool_name":"calculate","success":true,"result":{"value":2}}');
SQL
cat >"$BENCH_HOME/batch.sql" <<'SQL'
INSERT INTO bench_events (session_id, seq, type, data) SELECT gen_random_uuid(), g, 'tool.completed', '{"tool_call_id":"call_1","tool_name":"calculate","success":true,"result":{"value":2}}' FROM generate_series(1, 64) g;
SQL
chmod 0644 "$BENCH_HOME"/*.sql
chmod 0755 "$BENCH_HOME"
one=$(bench_pgbench -n -c 16 -j 2 -T 10 -f "$BENCH_HOME/one.sql" 2>&1 | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1)
batch=$(bench_pgbench -n -c 16 -j 2 -T 10 -f "$BENCH_HOME/batch.sql" 2>&1 | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1)
python3 -c "import sys; o, b = map(float, sys.argv[1:]); print('  pgbench same rows: %.0f events/s one per transaction, %.0f events/s 64 per transaction (16 clients)' % (o, b * 64))" "$one" "$batch"
runner=$(cat "$BENCH_HOME/events_per_s")
python3 -c "import sys; r, b = map(float, sys.argv[1:]); print('    runner = %.3f x pgbench 64 per transaction (target >= 0.4)' % (r / (b * 64)))" "$runner" "$batch"
figure "pgbench same rows, one per transaction" "$one" events/s
figure "pgbench same rows, 64 per transaction" "$(python3 -c "import sys; print(float(sys.argv[1]) * 64)" "$batch")" events/s
figure "durable event writes / pgbench 64 per transaction" \
	"$(python3 -c "import sys; r, b = map(float, sys.argv[1:]); print(r / (b * 64))" "$runner" "$batch")" \
	x --kind ratio --target 0.4 --reference "pgbench, same rows, 64 per transaction"
