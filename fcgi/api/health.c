/*
 * health: GET /health (no auth). 200 with the database reachable, else 503.
 * "runners" counts runners whose heartbeat is under runner_alive_s (30 s)
 * old; "runner_status" is "none_alive" when there is none (turns are not
 * being run); "oldest_queued_turn_s" is the age of the oldest turn still
 * queued. "sandbox" (virtual_bash): "ok" when those runners can sandbox
 * commands, else the reason one of them gave; null without a runner.
 *
 * While no runner is alive nothing runs or ends turns, so the API does:
 * api_fail_unclaimed() (here and on GET /sessions/{id}, what a client
 * looking at a stuck session calls) fails the turns that waited more than
 * no_runner_timeout_s with error_code no_runner (evr_fail_unclaimed), at
 * most once a second per process.
 */
#include "api.h"
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double alive_s(void)
{
	return (double)config_int("runner_alive_s");
}

void api_fail_unclaimed(struct req *rq)
{
	static const char q[] = "SELECT evr_fail_unclaimed($1, $2)";
	static long long last; /* ms; shared by the process's threads */
	char wait[32], alive[32];
	const char *p[2] = {wait, alive};
	double w = (double)config_int("no_runner_timeout_s");
	struct timespec ts;
	long long now, prev;

	/* at most once a second per process: it is on a hot read path, and
	 * the turns it fails have waited minutes */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	prev = __atomic_load_n(&last, __ATOMIC_RELAXED);
	if (now - prev < 1000 ||
	    !__atomic_compare_exchange_n(&last, &prev, now, 0, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return;

	snprintf(wait, sizeof(wait), "%g", w);
	snprintf(alive, sizeof(alive), "%g", alive_s());
	PQclear(db_exec(rq->db, q, 2, p));
}

void h_health(struct req *rq)
{
	static const char q[] =
		"SELECT (SELECT count(*) FROM runners "
		"        WHERE seen_at > now() - $1 * interval '1 second'), "
		"round(coalesce(extract(epoch FROM now() - "
		"  (SELECT min(coalesce(resumed_at, created_at)) FROM turns "
		"   WHERE state = 'queued')),"
		"  0)::numeric, 3), "
		"(SELECT to_json(coalesce(max(sandbox_error), 'ok')) FROM runners "
		" WHERE seen_at > now() - $1 * interval '1 second' "
		" HAVING count(*) > 0)";
	char alive[32];
	const char *p[1] = {alive};
	PGresult *res;

	api_fail_unclaimed(rq);
	snprintf(alive, sizeof(alive), "%g", alive_s());
	res = db_exec(rq->db, q, 1, p);
	if (!res) {
		res_error(rq, 503, "database_unavailable",
			  "The database is unreachable");
		return;
	}
	res_jsonf(rq, 200,
		  "{\"status\":\"ok\",\"version\":\"%s\",\"database\":\"ok\","
		  "\"runners\":%s,\"runner_status\":\"%s\","
		  "\"oldest_queued_turn_s\":%s,\"sandbox\":%s}",
		  PACKAGE_VERSION, PQgetvalue(res, 0, 0),
		  atoi(PQgetvalue(res, 0, 0)) ? "ok" : "none_alive",
		  PQgetvalue(res, 0, 1),
		  PQgetisnull(res, 0, 2) ? "null" : PQgetvalue(res, 0, 2));
	PQclear(res);
}
