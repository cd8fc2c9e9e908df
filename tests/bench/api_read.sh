#!/bin/bash
# Benchmark (issue "Foundation"): GET /api/v1/sessions/{id} through nginx,
# next to pgbench running the same SELECT (prepared, 64 clients) and nginx
# serving a small static file, all in the same run on the same cores.
# The ceiling for a request that needs both nginx and PostgreSQL is the
# pipeline limit 1/(1/static + 1/pgbench); printed, never asserted.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_need wrk python3
DUR=${BENCH_DURATION:-10}
bench_start

SES=$(curl -sf -X POST "$EVR_BASE_URL/api/v1/sessions" -H "Authorization: Bearer $KEY" \
	-H 'Content-Type: application/json' -d '{"harness_id":"'"$(curl -sf "$EVR_BASE_URL/api/v1/harnesses/base" \
	-H "Authorization: Bearer $KEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"'","title":"bench"}' |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
BODY=$(curl -sf "$EVR_BASE_URL/api/v1/sessions/$SES" -H "Authorization: Bearer $KEY")
# a static file of the same size as the API's answer
printf '%s' "$BODY" >"$EVR_HOME/www/bench.json"
chmod 0644 "$EVR_HOME/www/bench.json"
ORG=$(bench_psql -c "SELECT replace(org_id::text,'-','') FROM sessions WHERE id = '${SES#ses_}'")
cat >"$BENCH_HOME/select.sql" <<SQL
SELECT api_session(s) FROM sessions s WHERE s.id = '${SES#ses_}' AND s.org_id = '$ORG';
SQL
chmod 0644 "$BENCH_HOME/select.sql"
chmod 0755 "$BENCH_HOME"

run_wrk() { # conns url out
	wrk -t2 -c"$1" -d"${DUR}s" --latency -H "Authorization: Bearer $KEY" "$2" >"$3" 2>&1
}
echo "bench api_read: ${DUR}s each, 2 cores shared by wrk, nginx, everruns-api, PostgreSQL"
run_wrk 64 "$EVR_BASE_URL/bench.json" "$BENCH_HOME/static.out"
read -r S_RPS S_P50 S_P99 < <(wrk_stats "$BENCH_HOME/static.out")
bench_pgbench -n -M prepared -c 64 -j 2 -T "$DUR" -f "$BENCH_HOME/select.sql" >"$BENCH_HOME/pgbench.out" 2>&1
P_RPS=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$BENCH_HOME/pgbench.out" | head -1)
run_wrk 64 "$EVR_BASE_URL/api/v1/sessions/$SES" "$BENCH_HOME/api64.out"
read -r A_RPS A_P50 A_P99 < <(wrk_stats "$BENCH_HOME/api64.out")
run_wrk 8 "$EVR_BASE_URL/api/v1/sessions/$SES" "$BENCH_HOME/api8.out"
read -r B_RPS B_P50 B_P99 < <(wrk_stats "$BENCH_HOME/api8.out")

python3 - "$S_RPS" "$P_RPS" "$A_RPS" "$A_P50" "$A_P99" "$B_RPS" "$B_P50" "$B_P99" <<'PY'
import sys
s, p, a, a50, a99, b, b50, b99 = map(float, sys.argv[1:])
limit = 1 / (1 / s + 1 / p)
print("  nginx static file, 64 conns      %9.0f req/s" % s)
print("  pgbench same SELECT, 64 clients  %9.0f tx/s" % p)
print("  pipeline limit 1/(1/s+1/p)       %9.0f req/s" % limit)
print("  API GET session, 64 conns        %9.0f req/s  p50 %.2f ms  p99 %.2f ms" % (a, a50, a99))
print("    = %.2f x pipeline limit (target >= 0.6), %.2f x pgbench" % (a / limit, a / p))
print("  API GET session, 8 conns         %9.0f req/s  p50 %.2f ms  p99 %.2f ms (target p99 <= 5 ms)" % (b, b50, b99))
PY
