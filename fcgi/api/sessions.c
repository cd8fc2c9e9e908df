/*
 * sessions: create (with Idempotency-Key), list with filters, get, PATCH
 * title/tags/tools/approval, DELETE (ARCHITECTURE 2.3), and the caller's global
 * chat session. The multi-step writes live in SQL functions
 * (evr_session_create, evr_chat_session, evr_session_delete) so each is one
 * statement.
 */
#include "api.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "session_ext.h"

#include <stdio.h>
#include <string.h>

#define MAX_TITLE 512
#define MAX_SYSTEM_PROMPT 100000

/* Create-request fields after validation; strings borrow from the body. */
struct session_input {
	char agent[33], harness[33], model[33];
	int has_agent, has_harness, has_model;
	const char *title, *system_prompt;
	struct buf tags, caps;
	int has_tags, has_caps;
	int64_t max_iter;
	int has_max_iter;
};

static int tags_field(struct json_object *body, struct buf *out,
		      struct apierr *e)
{
	struct json_object *tags = NULL;
	int r = jx_get_array(body, "tags", 0, &tags, e);
	if (r <= 0)
		return r;
	if (api_check_tags(tags, e) != 0)
		return -1;
	api_pg_text_array(out, tags);
	return 1;
}

/* Validate the body (400s first, then references: 404s). 0 or -1 (sent). */
static int read_input(struct req *rq, struct json_object *body,
		      struct session_input *in)
{
	struct apierr e;
	struct json_object *caps = NULL;
	const char *agent = NULL, *harness = NULL, *model = NULL;

	if (jx_get_str(body, "agent_id", 0, &agent, &e) < 0 ||
	    jx_get_str(body, "harness_id", 0, &harness, &e) < 0 ||
	    jx_get_str(body, "model_id", 0, &model, &e) < 0 ||
	    jx_get_str(body, "title", MAX_TITLE, &in->title, &e) < 0 ||
	    jx_get_str(body, "system_prompt", MAX_SYSTEM_PROMPT,
		       &in->system_prompt, &e) < 0 ||
	    (in->has_max_iter = jx_get_int(body, "max_iterations", 1, 1000,
					   &in->max_iter, &e)) < 0 ||
	    (in->has_tags = tags_field(body, &in->tags, &e)) < 0 ||
	    jx_get_array(body, "capabilities", 0, &caps, &e) < 0 ||
	    (caps &&
	     api_check_capabilities(caps, "capabilities", &in->caps, &e) != 0))
		goto bad;
	in->has_caps = caps != NULL;
	if (!agent && !harness) {
		apierr_set(&e, 400, "validation_error",
			   "agent_id or harness_id: one of them is required");
		goto bad;
	}
	if (agent &&
	    api_ref(rq, agent, "agt", "agent_id", "agents", in->agent) != 0)
		return -1;
	if (harness && api_ref(rq, harness, "hns", "harness_id", "harnesses",
			       in->harness) != 0)
		return -1;
	if (model &&
	    api_ref(rq, model, "mod", "model_id", "llm_models", in->model) != 0)
		return -1;
	if (api_mcp_check_refs(rq, &in->caps) != 0)
		return -1;
	in->has_agent = agent != NULL;
	in->has_harness = harness != NULL;
	in->has_model = model != NULL;
	return 0;
bad:
	res_apierr(rq, &e);
	return -1;
}

void h_sessions_create(struct req *rq)
{
	static const char q[] =
		"SELECT evr_session_create($1, $2, $3, $4, $5, $6::text[], "
		"$7::jsonb, $8, $9::int)";
	struct session_input in;
	struct session_ext ext;
	struct buf ext_out = BUF_INIT;
	struct json_object *body;
	char smax[24];
	const char *p[9];
	PGresult *res = NULL;
	const char *json;

	memset(&in, 0, sizeof(in));
	buf_init(&in.tags, 0);
	buf_init(&in.caps, 0);
	if (idem_check_header(rq) != 0)
		return;
	body = api_body(rq);
	if (!body)
		return;
	if (session_ext_read(rq, body, &ext) != 0 ||
	    read_input(rq, body, &in) != 0)
		goto out;
	snprintf(smax, sizeof(smax), "%lld", (long long)in.max_iter);
	p[0] = rq->org;
	p[1] = in.has_agent ? in.agent : NULL;
	p[2] = in.has_harness ? in.harness : NULL;
	p[3] = in.has_model ? in.model : NULL;
	p[4] = in.title;
	p[5] = in.has_tags ? in.tags.data : NULL;
	p[6] = in.has_caps ? in.caps.data : NULL;
	p[7] = in.system_prompt;
	p[8] = in.has_max_iter ? smax : NULL;

	if (db_begin(rq->db) != 0) {
		api_db_error(rq);
		goto out;
	}
	switch (idem_begin(rq)) {
	case 0:
		break;
	case 1:
		db_rollback(rq->db);
		goto out;
	default:
		db_rollback(rq->db);
		goto out;
	}
	/* after the key: a replay is answered even at the limit */
	if (api_org_quota(rq, ORG_SESSIONS, 1) != 0) {
		db_rollback(rq->db);
		goto out;
	}
	res = db_exec(rq->db, q, 9, p);
	if (!res) {
		/* the agent or harness was deleted since we looked */
		db_rollback(rq->db);
		if (db_is(rq->db, DB_FK_VIOLATION))
			res_error(rq, 404, "not_found",
				  "agent_id or harness_id: not found");
		else
			api_db_error(rq);
		goto out;
	}
	json = db_val(res, 0, 0);
	if (session_ext_apply(rq, &ext, &json, &ext_out) != 0) {
		db_rollback(rq->db);
		goto out;
	}
	res_json(rq, 201, json, strlen(json));
	if (idem_finish(rq) != 0 || db_commit(rq->db) != 0) {
		db_rollback(rq->db);
		api_db_error(rq);
	}
out:
	PQclear(res);
	buf_release(&ext_out);
	buf_release(&in.tags);
	buf_release(&in.caps);
	json_object_put(body);
}

void h_sessions_list(struct req *rq)
{
	static const char q[] =
		"WITH f AS (SELECT * FROM sessions WHERE org_id = $1 "
		"AND ($2::uuid IS NULL OR agent_id = $2) "
		"AND ($3::text[] IS NULL OR tags @> $3::text[]) "
		"AND ($4::text IS NULL OR "
		"     strpos(lower(coalesce(title, '')), lower($4)) > 0)) "
		"SELECT json_build_object('data', coalesce((SELECT json_agg("
		"api_session(s) ORDER BY s.created_at DESC, s.id DESC) FROM "
		"(SELECT * FROM f ORDER BY created_at DESC, id DESC "
		"OFFSET $5 LIMIT $6) s), '[]'), "
		"'total', (SELECT count(*) FROM f), "
		"'offset', $5::int, 'limit', $6::int)";
	struct apierr e;
	struct buf tags = BUF_INIT;
	long offset, limit;
	char agent[33], so[24], sl[24];
	const char *a = req_query(rq, "agent_id"), *search;
	const char *p[6];
	int has_tags;

	if (req_page(rq, &offset, &limit, &e) != 0) {
		res_apierr(rq, &e);
		goto out;
	}
	if (a && api_id(rq, a, "agt", "agent_id", agent) != 0)
		goto out;
	if ((has_tags = api_tag_filter(rq, &tags)) < 0)
		goto out;
	search = req_query(rq, "search");
	if (search && strlen(search) > MAX_TITLE) {
		res_error(rq, 400, "validation_error",
			  "search: longer than %d bytes", MAX_TITLE);
		goto out;
	}
	snprintf(so, sizeof(so), "%ld", offset);
	snprintf(sl, sizeof(sl), "%ld", limit);
	p[0] = rq->org;
	p[1] = a ? agent : NULL;
	p[2] = has_tags ? tags.data : NULL;
	p[3] = search && *search ? search : NULL;
	p[4] = so;
	p[5] = sl;
	api_send_json_row(rq, 200, "Not found", q, 6, p);
out:
	buf_release(&tags);
}

/* The hot read: the object is built from the columns (session_json.c). */
void h_sessions_get(struct req *rq)
{
	char id[33];
	const char *p[2] = {id, rq->org};
	PGresult *res;
	if (api_id(rq, rq->cap[0], "ses", "session_id", id) != 0)
		return;
	api_fail_unclaimed(rq);
	res = db_exec_res(rq->db, session_json_sql, 2, p, NULL, NULL, 1);
	if (!res) {
		api_db_error(rq);
		return;
	}
	if (PQntuples(res) == 0) {
		res_error(rq, 404, "not_found", "Session not found");
	} else {
		rq->status = 200;
		rq->res_type = "application/json";
		buf_reset(&rq->res_body);
		if (session_json(res, &rq->res_body) != 0) {
			log_error("GET session: unexpected row shape");
			res_internal(rq);
		}
	}
	PQclear(res);
}

void h_sessions_update(struct req *rq)
{
	static const char q[] =
		"WITH old AS (SELECT id, tags FROM sessions "
		"  WHERE id = $1 AND org_id = $2 FOR UPDATE), "
		"upd AS (UPDATE sessions s SET "
		"  title = CASE WHEN $3::bool THEN $4 ELSE s.title END, "
		"  tags = coalesce($5::text[], s.tags), "
		"  tools = coalesce($6::jsonb, s.tools), "
		"  approval = CASE WHEN $7::bool THEN $8 ELSE s.approval END, "
		"  updated_at = now() "
		"  FROM old WHERE s.id = old.id AND ($5::text[] IS NULL OR "
		"  evr_reserved_tags($5::text[]) = evr_reserved_tags(old.tags)) "
		"  RETURNING api_session(s) AS j) "
		"SELECT (SELECT count(*) FROM old), (SELECT j FROM upd)";
	struct json_object *body, *t = NULL;
	struct apierr e;
	struct buf tags = BUF_INIT, tools = BUF_INIT;
	struct json_object *tl;
	const char *title = NULL, *approval = NULL;
	char id[33];
	const char *p[8];
	int has_title, has_tags, has_approval;
	PGresult *res = NULL;

	if (api_id(rq, rq->cap[0], "ses", "session_id", id) != 0)
		return;
	body = api_body(rq);
	if (!body)
		return;
	/* "title": null clears the title */
	has_title = json_object_object_get_ex(body, "title", &t);
	if (jx_get_str(body, "title", MAX_TITLE, &title, &e) < 0 ||
	    (has_tags = tags_field(body, &tags, &e)) < 0 ||
	    ((tl = jx_get(body, "tools")) &&
	     api_check_tools(tl, &tools, &e) != 0) ||
	    api_check_approval(body, &approval, &has_approval, &e) != 0) {
		res_apierr(rq, &e);
		goto out;
	}
	if (api_tools_clash(rq, tools.len ? tools.data : NULL, NULL, NULL, id))
		goto out;
	p[0] = id;
	p[1] = rq->org;
	p[2] = has_title ? "true" : "false";
	p[3] = title;
	p[4] = has_tags ? tags.data : NULL;
	p[5] = tools.len ? tools.data : NULL;
	p[6] = has_approval ? "true" : "false";
	p[7] = approval;
	res = db_exec(rq->db, q, 8, p);
	if (!res) {
		api_db_error(rq);
		goto out;
	}
	if (!strcmp(PQgetvalue(res, 0, 0), "0"))
		res_error(rq, 404, "not_found", "Session not found");
	else if (PQgetisnull(res, 0, 1))
		res_error(rq, 400, "validation_error",
			  "tags: the global-chat and user:* tags cannot be "
			  "added or removed");
	else
		res_json(rq, 200, PQgetvalue(res, 0, 1),
			 (size_t)PQgetlength(res, 0, 1));
out:
	PQclear(res);
	buf_release(&tags);
	buf_release(&tools);
	json_object_put(body);
}

void h_sessions_delete(struct req *rq)
{
	static const char q[] = "SELECT evr_session_delete($1, $2)";
	char id[33];
	const char *p[2] = {id, rq->org};
	PGresult *res;

	if (api_id(rq, rq->cap[0], "ses", "session_id", id) != 0)
		return;
	res = db_exec(rq->db, q, 2, p);
	if (!res) {
		api_db_error(rq);
		return;
	}
	if (PQgetvalue(res, 0, 0)[0] == 't')
		res_empty(rq, 204);
	else
		res_error(rq, 404, "not_found", "Session not found");
	PQclear(res);
}

void h_sessions_chat(struct req *rq)
{
	static const char q[] = "SELECT evr_chat_session($1, $2)";
	const char *p[2] = {rq->org, rq->user};
	struct json_object *body = api_body(rq);

	if (!body)
		return;
	json_object_put(body);
	api_send_json_row(rq, 200, "Not found", q, 2, p);
}
