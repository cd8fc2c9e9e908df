/*
 * cancel: POST /sessions/{id}/cancel (ARCHITECTURE 3.6). The event log route
 * that used to share this file is everruns-sse's (fcgi/sse/poll.c).
 */
#include "api.h"

void h_sessions_cancel(struct req *rq)
{
	static const char q[] = "SELECT evr_cancel($1, $2)";
	char session[33];
	const char *p[2] = {rq->org, session};
	struct json_object *body;

	if (api_id(rq, rq->cap[0], "ses", "session_id", session) != 0)
		return;
	/* an empty body or {} (ARCHITECTURE 2.2); anything else must still be
	 * JSON */
	body = api_body(rq);
	if (!body)
		return;
	json_object_put(body);
	api_send_json_row(rq, 200, "Session not found", q, 2, p);
}
