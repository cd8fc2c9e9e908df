/*
 * quota: the per-organization limits checked before a change that adds
 * to them (README "Limits"): sessions (org_max_sessions, on session
 * create), durable events (org_max_events, before a message starts a
 * turn) and stored bytes (org_max_storage_mb: session files, charged as
 * sql/012_quotas.sql says, plus images; on image upload; file writes
 * check it in their own statement). One query (evr_org_usage) reads the
 * organization's usage; it is not locked, so concurrent requests of one
 * organization may pass a limit by what they add together.
 */
#include "api.h"
#include "config.h"

#include <stdlib.h>

#define MIB (1024LL * 1024)

long long api_org_limit(enum org_quota q)
{
	switch (q) {
	case ORG_SESSIONS:
		return config_int("org_max_sessions");
	case ORG_EVENTS:
		return config_int("org_max_events");
	default:
		return config_int("org_max_storage_mb") * MIB;
	}
}

int api_org_quota(struct req *rq, enum org_quota q, long long adding)
{
	static const char sql[] =
		"SELECT sessions, stored, events FROM evr_org_usage($1)";
	const char *p[1] = {rq->org};
	long long limit = api_org_limit(q), used;
	PGresult *res = db_exec(rq->db, sql, 1, p);

	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		api_db_error(rq);
		return -1;
	}
	used = strtoll(PQgetvalue(res, 0,
				  q == ORG_SESSIONS  ? 0
				  : q == ORG_STORAGE ? 1
						     : 2),
		       NULL, 10);
	PQclear(res);
	if (used + adding <= limit)
		return 0;
	switch (q) {
	case ORG_SESSIONS:
		res_header(rq, "Retry-After", "3600");
		res_error(rq, 429, "org_session_limit",
			  "The organization has %lld sessions, its limit "
			  "(org_max_sessions = %lld); delete some first",
			  used, limit);
		break;
	case ORG_EVENTS:
		res_header(rq, "Retry-After", "3600");
		res_error(rq, 429, "org_event_limit",
			  "The organization holds %lld events, its limit "
			  "(org_max_events = %lld); delete sessions first",
			  used, limit);
		break;
	default:
		res_error(rq, 413, "org_storage_full",
			  "The organization's files and images would exceed "
			  "%lld bytes (org_max_storage_mb); %lld are used",
			  limit, used);
	}
	return -1;
}
