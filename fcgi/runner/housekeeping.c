/*
 * housekeeping: one job per minute across all runners (ARCHITECTURE 8), under a
 * transaction-scoped advisory lock so only one runner does it: purge
 * idempotency keys older than 24 h, live text of idle sessions, images
 * never attached after 24 h, runners not seen for an hour; watch the
 * notification queue (a listener that stops reading fills it, and then
 * every NOTIFYing commit in the cluster fails).
 */
#include "runner.h"
#include "log.h"

#include <stdlib.h>

void housekeeping_run(struct runner *r)
{
	static const char sql[] =
		"WITH lock AS (SELECT pg_try_advisory_xact_lock(4242002) AS ok), "
		"k AS (DELETE FROM idempotency_keys WHERE (SELECT ok FROM lock) "
		"  AND created_at < now() - interval '24 hours' RETURNING 1), "
		"l AS (DELETE FROM live_text lt WHERE (SELECT ok FROM lock) AND "
		"  NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = lt.session_id "
		"  AND s.status = 'active') RETURNING 1), "
		"i AS (DELETE FROM images WHERE (SELECT ok FROM lock) AND NOT attached "
		"  AND created_at < now() - interval '24 hours' RETURNING 1), "
		"rn AS (DELETE FROM runners WHERE (SELECT ok FROM lock) "
		"  AND seen_at < now() - interval '1 hour' RETURNING 1) "
		"SELECT (SELECT ok FROM lock), (SELECT count(*) FROM k), "
		"(SELECT count(*) FROM l), (SELECT count(*) FROM i), "
		"(SELECT count(*) FROM rn), pg_notification_queue_usage()";
	PGresult *res;
	double usage;

	if (db_begin(&r->tools) != 0)
		return;
	res = db_exec(&r->tools, sql, 0, NULL);
	if (!res) {
		db_rollback(&r->tools);
		return;
	}
	if (db_commit(&r->tools) != 0) {
		PQclear(res);
		return;
	}
	usage = atof(PQgetvalue(res, 0, 5));
	if (PQgetvalue(res, 0, 0)[0] == 't')
		log_info(
			"housekeeping: purged %s idempotency keys, %s live "
			"text rows, %s images, %s runners; notify queue %.1f%%",
			PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
			PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4),
			usage * 100);
	if (usage > 0.5)
		log_warn("the notification queue is %.0f%% full: a listener is "
			 "not reading; NOTIFYing commits fail when it is full",
			 usage * 100);
	PQclear(res);
}
