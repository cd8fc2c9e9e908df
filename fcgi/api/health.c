/*
 * health: GET /health (no auth). 200 with the database reachable, else 503.
 * "runners" counts runners whose heartbeat is under 30 s old;
 * "oldest_queued_turn_s" is the age of the oldest turn still queued.
 * "sandbox" (virtual_bash): "ok" when those runners can sandbox commands,
 * else the reason one of them gave; null without a runner.
 */
#include "api.h"

void h_health(struct req *rq)
{
	static const char q[] =
		"SELECT (SELECT count(*) FROM runners "
		"        WHERE seen_at > now() - interval '30 s'), "
		"round(coalesce(extract(epoch FROM now() - "
		"  (SELECT min(created_at) FROM turns WHERE state = 'queued')),"
		"  0)::numeric, 3), "
		"(SELECT to_json(coalesce(max(sandbox_error), 'ok')) FROM runners "
		" WHERE seen_at > now() - interval '30 s' HAVING count(*) > 0)";
	PGresult *res = db_exec(rq->db, q, 0, NULL);
	if (!res) {
		res_error(rq, 503, "database_unavailable",
			  "The database is unreachable");
		return;
	}
	res_jsonf(rq, 200,
		  "{\"status\":\"ok\",\"version\":\"%s\",\"database\":\"ok\","
		  "\"runners\":%s,\"oldest_queued_turn_s\":%s,\"sandbox\":%s}",
		  PACKAGE_VERSION, PQgetvalue(res, 0, 0),
		  PQgetvalue(res, 0, 1),
		  PQgetisnull(res, 0, 2) ? "null" : PQgetvalue(res, 0, 2));
	PQclear(res);
}
