/*
 * events: GET /sessions/{id}/events, the event log page (DESIGN 4.5),
 * without long-poll (that is the SSE program's). The filters and their
 * errors are fcgi/lib/evq.c's, shared with the SSE program.
 */
#include "api.h"
#include "evq.h"

#include <string.h>

void h_events_list(struct req *rq)
{
	struct evq q;
	struct apierr e;
	struct buf out = BUF_INIT;
	long count;
	long long last;

	evq_init(&q);
	buf_init(&out, 0);
	if (api_id(rq, rq->cap[0], "ses", "session_id", q.session) != 0)
		goto out;
	memcpy(q.org, rq->org, sizeof(q.org));
	if (evq_parse(rq, NULL, 0, &q, &e) != 0) {
		res_apierr(rq, &e);
		goto out;
	}
	switch (evq_resolve(rq->db, &q, &e)) {
	case 0:
		break;
	case 1:
		res_error(rq, 404, "not_found", "Session not found");
		goto out;
	case 2:
		res_apierr(rq, &e);
		goto out;
	default:
		api_db_error(rq);
		goto out;
	}
	if (evq_fetch(rq->db, &q, &out, &count, &last) != 0) {
		api_db_error(rq);
		goto out;
	}
	res_json(rq, 200, out.data, out.len);
out:
	buf_release(&out);
	evq_release(&q);
}

void h_sessions_cancel(struct req *rq)
{
	static const char q[] = "SELECT evr_cancel($1, $2)";
	char session[33];
	const char *p[2] = {rq->org, session};
	struct json_object *body;

	if (api_id(rq, rq->cap[0], "ses", "session_id", session) != 0)
		return;
	/* an empty body or {} (DESIGN 4.1); anything else must still be JSON */
	body = api_body(rq);
	if (!body)
		return;
	json_object_put(body);
	api_send_json_row(rq, 200, "Session not found", q, 2, p);
}
