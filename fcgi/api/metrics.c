/*
 * metrics: GET /metrics, the operator's view in the Prometheus text
 * format (version 0.0.4), for a scraper on the host itself.
 *
 * Loopback only: nginx answers /metrics only to a loopback peer that
 * came without X-Forwarded-For and not through url_prefix, and this
 * handler refuses any other REMOTE_ADDR as well (404, as if absent).
 * No API key: like /health it tells nothing about any organization.
 *
 * Cluster-wide figures come from the database (the same on every host):
 * queue depth, running turns, the oldest queued turn, live runners,
 * lease losses (sql/006_metrics.sql counts takeovers of expired leases)
 * and the notify queue's usage, which must stay far from 1 (a full queue
 * fails every NOTIFYing commit). Host-local ones come from the run
 * directory (lib/status.h): the streams everruns-sse holds (its
 * sse.status) and the resident memory of each program, from the pid
 * files everrunsctl or the systemd units keep (<program>.pid; children
 * such as nginx's workers are counted with their parent).
 */
#include "api.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const programs[] = {"api", "sse", "runner", "nginx"};

static int is_loopback(const char *addr)
{
	return addr && (!strncmp(addr, "127.", 4) || !strcmp(addr, "::1") ||
			!strncmp(addr, "::ffff:127.", 11));
}

/* VmRSS of a process in bytes, 0 if it is gone. */
static long long rss_of(long pid)
{
	char path[64], line[256];
	long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if (!(f = fopen(path, "re")))
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* The pid and its direct children: their count and summed RSS. */
static void add_tree(long pid, long *nproc, long long *rss)
{
	char path[96], kids[4096], *p, *end;
	long long r = rss_of(pid);
	FILE *f;
	size_t n;

	if (!r)
		return;
	(*nproc)++;
	*rss += r;
	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", pid, pid);
	if (!(f = fopen(path, "re")))
		return;
	n = fread(kids, 1, sizeof(kids) - 1, f);
	kids[n] = '\0';
	fclose(f);
	for (p = kids; *p; p = end) {
		long kid = strtol(p, &end, 10);
		if (end == p)
			break;
		r = rss_of(kid);
		if (r) {
			(*nproc)++;
			*rss += r;
		}
	}
}

static void add_gauge(struct buf *b, const char *name, const char *help,
		      const char *type, const char *value)
{
	buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name,
		 type, name, value);
}

static void add_programs(struct buf *b)
{
	size_t i;

	buf_adds(b, "# HELP everruns_process_resident_memory_bytes Resident "
		    "memory of a program's processes on this host.\n"
		    "# TYPE everruns_process_resident_memory_bytes gauge\n");
	for (i = 0; i < sizeof(programs) / sizeof(programs[0]); i++) {
		struct buf pids = BUF_INIT;
		char name[32], *p, *end;
		long nproc = 0;
		long long rss = 0;

		buf_init(&pids, 64);
		snprintf(name, sizeof(name), "%s.pid", programs[i]);
		if (status_read(name, &pids) == 0) {
			for (p = pids.data; *p; p = end) {
				long pid = strtol(p, &end, 10);
				if (end == p)
					break;
				if (pid > 0)
					add_tree(pid, &nproc, &rss);
			}
		}
		buf_release(&pids);
		buf_addf(
			b,
			"everruns_process_resident_memory_bytes{program=\"%s\"}"
			" %lld\n",
			programs[i], rss);
		buf_addf(b, "everruns_processes{program=\"%s\"} %ld\n",
			 programs[i], nproc);
	}
}

static void add_sse(struct buf *b)
{
	struct buf st = BUF_INIT;
	char v[32];
	long at;

	buf_init(&st, 128);
	if (status_read("sse.status", &st) == 0 &&
	    (at = status_value(st.data, "updated_at", -1)) > 0) {
		snprintf(v, sizeof(v), "%ld",
			 status_value(st.data, "streams", 0));
		add_gauge(b, "everruns_sse_streams",
			  "Open SSE streams of everruns-sse on this host.",
			  "gauge", v);
		snprintf(v, sizeof(v), "%ld",
			 status_value(st.data, "connections", 0));
		add_gauge(b, "everruns_sse_connections",
			  "FastCGI connections of everruns-sse (streams and "
			  "long-polls).",
			  "gauge", v);
		snprintf(v, sizeof(v), "%ld", (long)time(NULL) - at);
		add_gauge(b, "everruns_sse_report_age_seconds",
			  "Seconds since everruns-sse last reported (every 2 s "
			  "while it runs).",
			  "gauge", v);
	}
	buf_release(&st);
}

void h_metrics(struct req *rq)
{
	static const char q[] =
		"SELECT (SELECT count(*) FROM turns WHERE state = 'queued'), "
		"(SELECT count(*) FROM turns "
		"  WHERE state IN ('running', 'cancelling')), "
		"round(coalesce(extract(epoch FROM now() - "
		"  (SELECT min(created_at) FROM turns WHERE state = 'queued')),"
		"  0)::numeric, 3), "
		"(SELECT count(*) FROM runners "
		"  WHERE seen_at > now() - interval '30 s'), "
		"coalesce((SELECT value FROM metric_counters "
		"  WHERE name = 'lease_losses'), 0), "
		"pg_notification_queue_usage(), "
		"(SELECT count(*) FROM turns WHERE state = 'waiting')";
	struct buf b = BUF_INIT;
	PGresult *res;

	if (!is_loopback(rq->remote_addr)) {
		res_error(rq, 404, "not_found", "Not found");
		return;
	}
	if (!(res = db_exec(rq->db, q, 0, NULL))) {
		api_db_error(rq);
		return;
	}
	buf_init(&b, 4096);
	add_gauge(&b, "everruns_turns_queued",
		  "Turns waiting for a runner (queue depth).", "gauge",
		  PQgetvalue(res, 0, 0));
	add_gauge(&b, "everruns_turns_running",
		  "Turns a runner holds (running or cancelling).", "gauge",
		  PQgetvalue(res, 0, 1));
	add_gauge(&b, "everruns_oldest_queued_turn_seconds",
		  "Age of the oldest queued turn (0: none).", "gauge",
		  PQgetvalue(res, 0, 2));
	add_gauge(&b, "everruns_runners",
		  "Runners with a heartbeat in the last 30 s, all hosts.",
		  "gauge", PQgetvalue(res, 0, 3));
	add_gauge(&b, "everruns_lease_losses_total",
		  "Turns taken over from a runner whose lease expired.",
		  "counter", PQgetvalue(res, 0, 4));
	add_gauge(&b, "everruns_notify_queue_usage_ratio",
		  "pg_notification_queue_usage(): fraction of PostgreSQL's "
		  "NOTIFY queue in use.",
		  "gauge", PQgetvalue(res, 0, 5));
	add_gauge(&b, "everruns_turns_waiting",
		  "Turns waiting for client-side tool results or approvals "
		  "(no runner holds them).",
		  "gauge", PQgetvalue(res, 0, 6));
	PQclear(res);
	add_sse(&b);
	add_programs(&b);
	add_gauge(&b, "everruns_up",
		  "1: this API answers and its database "
		  "too.",
		  "gauge", "1");
	res_raw(rq, 200, "text/plain; version=0.0.4; charset=utf-8", b.data,
		b.len);
	buf_release(&b);
}
