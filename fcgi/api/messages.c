/*
 * messages: POST /sessions/{id}/messages starts a turn (ARCHITECTURE 3.1: one
 * transaction: idempotency key, the idle->active switch that decides
 * session_busy, the input.message and session.activated events, the queued
 * turn, the wake-ups); GET lists the conversation from the event log.
 */
#include "api.h"
#include "ids.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Check every image_file part names an image of the organization and
 * mark them attached (so housekeeping keeps them). In the send
 * transaction. 0, or -1 with the answer sent. */
static int attach_images(struct req *rq, struct message_input *in)
{
	static const char q[] =
		"WITH want AS (SELECT DISTINCT unnest($2::uuid[]) AS id), "
		"upd AS (UPDATE images i SET attached = true FROM want "
		"  WHERE i.id = want.id AND i.org_id = $1 RETURNING i.id) "
		"SELECT (SELECT count(*) FROM want) = (SELECT count(*) FROM upd)";
	struct buf arr = BUF_INIT;
	const char *p[2];
	PGresult *res;
	int ok;

	if (!in->nimages)
		return 0;
	buf_addf(&arr, "{%s}", in->images.data);
	p[0] = rq->org;
	p[1] = arr.data;
	res = db_exec(rq->db, q, 2, p);
	buf_release(&arr);
	if (!res) {
		api_db_error(rq);
		return -1;
	}
	ok = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!ok) {
		res_error(rq, 404, "not_found",
			  "message.content: image_id not found");
		return -1;
	}
	return 0;
}

void h_messages_create(struct req *rq)
{
	static const char q_send[] =
		"SELECT message, result FROM evr_message_send($1, $2, $3, $4, "
		"$5::jsonb, $6::jsonb, $7::jsonb)";
	struct json_object *body = NULL;
	struct message_input in;
	struct apierr e;
	char session[33], turn[IDS_MAX_LEN], mid[IDS_MAX_LEN];
	char model[40];
	const char *p[7];
	PGresult *res = NULL;

	message_input_init(&in);
	if (api_id(rq, rq->cap[0], "ses", "session_id", session) != 0 ||
	    idem_check_header(rq) != 0)
		goto out;
	body = api_body(rq);
	if (!body)
		goto out;
	if (message_input_parse(body, &in, &e) != 0) {
		res_apierr(rq, &e);
		goto out;
	}
	snprintf(model, sizeof(model), "mod_%s", in.model);
	if (in.has_model && api_ref(rq, model, "mod", "controls.model_id",
				    "llm_models", in.model) != 0)
		goto out;

	ids_new("trn", turn, sizeof(turn));
	ids_new("msg", mid, sizeof(mid));
	if (db_begin(rq->db) != 0) {
		api_db_error(rq);
		goto out;
	}
	/* a turn adds events: none once the organization is at its limit
	 * (after the key: a replay is answered even then) */
	if (idem_begin(rq) != 0 || api_org_quota(rq, ORG_EVENTS, 1) != 0 ||
	    attach_images(rq, &in) != 0)
		goto rollback;
	p[0] = rq->org;
	p[1] = session;
	p[2] = turn + 4;
	p[3] = mid + 4;
	p[4] = in.content.data;
	p[5] = in.controls.len ? in.controls.data : NULL;
	p[6] = in.metadata ? jx_str(in.metadata) : NULL;
	res = db_exec(rq->db, q_send, 7, p);
	if (!res) {
		/* a concurrent DELETE of the session */
		if (db_is(rq->db, DB_FK_VIOLATION))
			res_error(rq, 404, "not_found", "Session not found");
		else
			api_db_error(rq);
		goto rollback;
	}
	if (!strcmp(PQgetvalue(res, 0, 1), "gone")) {
		res_error(rq, 404, "not_found", "Session not found");
		goto rollback;
	}
	if (!strcmp(PQgetvalue(res, 0, 1), "busy")) {
		res_error(rq, 400, "session_busy",
			  "The session is working on a turn; wait for "
			  "session.idled or cancel it");
		goto rollback;
	}
	res_json(rq, 201, PQgetvalue(res, 0, 0),
		 (size_t)PQgetlength(res, 0, 0));
	if (idem_finish(rq) != 0 || db_commit(rq->db) != 0) {
		api_db_error(rq);
		goto rollback;
	}
	goto out;
rollback:
	db_rollback(rq->db);
out:
	PQclear(res);
	message_input_release(&in);
	json_object_put(body);
}

void h_messages_list(struct req *rq)
{
	static const char q[] =
		"SELECT (SELECT 1 FROM sessions WHERE id = $1 AND org_id = $2), "
		"(SELECT coalesce(json_agg(m ORDER BY seq), '[]') FROM "
		"  (SELECT api_message(e) AS m, e.seq FROM events e "
		"   WHERE e.session_id = $1 AND e.seq > $3 AND e.type IN "
		"   ('input.message', 'output.message.completed', 'tool.completed') "
		"   AND EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND org_id = $2) "
		"   ORDER BY e.seq LIMIT $4) page), "
		"(SELECT count(*) > $4 FROM (SELECT 1 FROM events e "
		"   WHERE e.session_id = $1 AND e.seq > $3 AND e.type IN "
		"   ('input.message', 'output.message.completed', 'tool.completed') "
		"   LIMIT $4 + 1) x)";
	struct apierr e;
	char session[33], after[24], lim[24];
	const char *p[4] = {session, rq->org, after, lim};
	long since = 0, limit = 1000;
	PGresult *res;

	if (api_id(rq, rq->cap[0], "ses", "session_id", session) != 0)
		return;
	if (req_query_long(rq, "since_sequence", 0, 1L << 62, &since, &e) < 0 ||
	    req_query_long(rq, "limit", 1, 1000, &limit, &e) < 0) {
		res_apierr(rq, &e);
		return;
	}
	snprintf(after, sizeof(after), "%ld", since);
	snprintf(lim, sizeof(lim), "%ld", limit);
	res = db_exec(rq->db, q, 4, p);
	if (!res) {
		api_db_error(rq);
		return;
	}
	if (PQgetisnull(res, 0, 0))
		res_error(rq, 404, "not_found", "Session not found");
	else
		res_jsonf(rq, 200, "{\"data\":%s,\"has_more\":%s}",
			  PQgetvalue(res, 0, 1),
			  PQgetvalue(res, 0, 2)[0] == 't' ? "true" : "false");
	PQclear(res);
}
