#!/bin/bash
# Benchmark (issue "Foundation"): GET /api/v1/sessions/{id} through nginx,
# next to pgbench running the same SELECT (prepared, 64 clients), pgbench
# reading the same row by its primary key without building its JSON, and
# nginx serving a small static file, all in the same run on the same cores.
# The ceiling for a request that needs both nginx and PostgreSQL is the
# pipeline limit 1/(1/static + 1/pgbench primary key) (the api_session one
# is printed too); printed, never asserted.
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
# the same row by its primary key, without building the JSON: what the
# database alone can serve (the pipeline limit below is computed from it)
cat >"$BENCH_HOME/pk.sql" <<SQL
SELECT * FROM sessions s WHERE s.id = '${SES#ses_}' AND s.org_id = '$ORG';
SQL
chmod 0644 "$BENCH_HOME/select.sql" "$BENCH_HOME/pk.sql"
chmod 0755 "$BENCH_HOME"

run_wrk() { # conns url out
	wrk -t2 -c"$1" -d"${DUR}s" --latency -s "$SRCDIR/tests/bench/wrk_pct.lua" \
		-H "Authorization: Bearer $KEY" "$2" >"$3" 2>&1
}
pgbench_tps() { # script
	bench_pgbench -n -M prepared -c 64 -j 2 -T "$DUR" -f "$1" >"$1.out" 2>&1
	sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$1.out" | head -1
}
echo "bench api_read: ${DUR}s each, 2 cores shared by wrk, nginx, everruns-api, PostgreSQL"
run_wrk 64 "$EVR_BASE_URL/bench.json" "$BENCH_HOME/static.out"
read -r S_RPS S_P50 S_P99 S_PCTS < <(wrk_stats "$BENCH_HOME/static.out")
P_RPS=$(pgbench_tps "$BENCH_HOME/select.sql")
K_RPS=$(pgbench_tps "$BENCH_HOME/pk.sql")
run_wrk 64 "$EVR_BASE_URL/api/v1/sessions/$SES" "$BENCH_HOME/api64.out"
read -r A_RPS A_P50 A_P99 A_PCTS < <(wrk_stats "$BENCH_HOME/api64.out")
run_wrk 8 "$EVR_BASE_URL/api/v1/sessions/$SES" "$BENCH_HOME/api8.out"
read -r B_RPS B_P50 B_P99 B_PCTS < <(wrk_stats "$BENCH_HOME/api8.out")

python3 - "$S_RPS" "$P_RPS" "$K_RPS" "$A_RPS" "$A_P50" "$A_P99" "$B_RPS" "$B_P50" "$B_P99" <<'PY'
import sys
s, p, k, a, a50, a99, b, b50, b99 = map(float, sys.argv[1:])
limit_fn = 1 / (1 / s + 1 / p)
limit = 1 / (1 / s + 1 / k)
print("  nginx static file, 64 conns      %9.0f req/s" % s)
print("  pgbench api_session(s), 64 cl.   %9.0f tx/s" % p)
print("  pgbench primary-key SELECT, 64   %9.0f tx/s" % k)
print("  pipeline limit 1/(1/s+1/pk)      %9.0f req/s  (with api_session: %.0f)" % (limit, limit_fn))
print("  API GET session, 64 conns        %9.0f req/s  p50 %.2f ms  p99 %.2f ms" % (a, a50, a99))
print("    = %.2f x pipeline limit (target >= 0.6), %.2f x the api_session limit" % (a / limit, a / limit_fn))
print("  API GET session, 8 conns         %9.0f req/s  p50 %.2f ms  p99 %.2f ms (target p99 <= 5 ms)" % (b, b50, b99))
PY
figure "nginx static file, 64 conns" "$S_RPS" req/s --reference "same run" --pcts "${S_PCTS/-/}"
figure "pgbench api_session(s), 64 clients" "$P_RPS" tx/s
figure "pgbench primary-key SELECT, 64 clients" "$K_RPS" tx/s
figure "API GET session, 64 conns" "$A_RPS" req/s
figure "API GET session, 64 conns, latency p50" "$A_P50" ms --pcts "${A_PCTS/-/}"
figure "API GET session, 64 conns, latency p99" "$A_P99" ms
figure "API GET session, 8 conns, latency p50" "$B_P50" ms --pcts "${B_PCTS/-/}"
figure "API GET session, 8 conns, latency p99" "$B_P99" ms --target 5
figure "API GET session / pipeline limit (primary key)" \
	"$(python3 -c "import sys; s,k,a=map(float,sys.argv[1:]); print(a/(1/(1/s+1/k)))" "$S_RPS" "$K_RPS" "$A_RPS")" \
	x --kind ratio --target 0.6 --reference "1/(1/nginx static + 1/pgbench primary key)"
