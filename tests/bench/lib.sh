# tests/bench/lib.sh: a private stack for a benchmark (sourced). Like the
# test stack of tests/run: a throw-away EVERRUNS_HOME, free loopback
# ports, no rate limit. bench_start / bench_stop; after bench_start the
# stack's run/stack.env is loaded (EVR_BASE_URL, EVR_DATABASE_URL, ...)
# and KEY holds the admin API key.

SRCDIR=${EVR_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILDDIR=${EVR_BUILDDIR:-$SRCDIR}
export EVR_SRCDIR=$SRCDIR EVR_BUILDDIR=$BUILDDIR

bench_need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || {
			echo "bench: $c not found (Debian package: ${c/pgbench/postgresql-contrib})" >&2
			exit 2
		}
	done
}

bench_start() {
	if [ "$(id -u)" -eq 0 ]; then
		BENCH_HOME=$(mktemp -d /var/tmp/everruns-bench.XXXXXX)
	else
		BENCH_HOME=$(mktemp -d "${TMPDIR:-/tmp}/everruns-bench.XXXXXX")
	fi
	local ports
	ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
	unset EVERRUNS_DATABASE_URL EVERRUNS_CONF
	export EVERRUNS_HOME=$BENCH_HOME
	export EVERRUNS_HTTP_PORT=${ports% *} EVERRUNS_HTTPS_PORT=${ports#* }
	# many clients from one address: no rate or connection limit
	export EVERRUNS_RATE_LIMIT=1000000 EVERRUNS_RATE_BURST=1000000 EVERRUNS_CONN_LIMIT=65535
	trap bench_stop EXIT
	bash "$SRCDIR/conf/everrunsctl" start >"$BENCH_HOME.start.log" 2>&1 || {
		cat "$BENCH_HOME.start.log"
		exit 1
	}
	# shellcheck disable=SC1091
	. "$BENCH_HOME/run/stack.env"
	KEY=$(cat "$BENCH_HOME/admin-api-key")
}

bench_stop() {
	[ -n "${BENCH_HOME:-}" ] || return 0
	bash "$SRCDIR/conf/everrunsctl" stop >/dev/null 2>&1
	rm -rf "$BENCH_HOME" "$BENCH_HOME.start.log"
	BENCH_HOME=
}

# psql against the stack's database as the stack's user
bench_psql() {
	local run=()
	[ "$(id -u)" -ne 0 ] || run=(setpriv --reuid="$EVR_RUN_USER" --regid="$EVR_RUN_USER" --init-groups)
	"${run[@]}" "$EVR_PG_BINDIR/psql" -X -q -At -d "$EVR_DATABASE_URL" "$@"
}

bench_pgbench() {
	local run=()
	[ "$(id -u)" -ne 0 ] || run=(setpriv --reuid="$EVR_RUN_USER" --regid="$EVR_RUN_USER" --init-groups)
	"${run[@]}" "$EVR_PG_BINDIR/pgbench" -d "$EVR_DATABASE_URL" "$@"
}

# figure NAME VALUE UNIT [options of figures.py record]: keep a figure for
# the run's report (a no-op unless tests/bench/run set $BENCH_FIGURES)
figure() {
	python3 "$SRCDIR/tests/bench/figures.py" record "$@"
}

# wrk_stats OUTPUT: "rps p50_ms p99_ms pcts" from `wrk --latency` output;
# pcts ("P:MS,P:MS,...") comes from the lines of wrk_pct.lua when wrk ran
# with `-s "$SRCDIR/tests/bench/wrk_pct.lua"`, else "-".
wrk_stats() {
	python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
def ms(p):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, t, re.M)
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
if errs:
    sys.exit("wrk saw %s non-2xx responses" % errs.group(1))
pcts = ",".join("%s:%s" % m for m in re.findall(r"^pct ([\d.]+) ([\d.]+)$", t, re.M)) or "-"
print("%.0f %.2f %.2f %s" % (rps, ms(50), ms(99), pcts))
PY
}
