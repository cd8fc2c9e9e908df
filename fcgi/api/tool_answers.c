/*
 * tool_answers: the answers to a waiting turn (ARCHITECTURE 3.9):
 *   POST /sessions/{id}/tool-results   {"tool_results": [{tool_call_id,
 *                                        result?, error?}]}
 *   POST /sessions/{id}/tool-approvals {"approvals": [{tool_call_id,
 *                                        approved, reason?}]}
 * Both answer {"accepted": n, "status": <the session's status after>}.
 * The shape is checked here (400 validation_error, duplicate_tool_call);
 * the rest, in one transaction, by evr_tool_answer (sql/019): 404 for
 * another organization's or no session, 409 not_waiting,
 * 400 unknown_tool_call, 409 already_answered, 400 wrong_kind. Nothing is
 * written unless every answer of the request is accepted.
 *
 * A result is stored as the text the model reads (a string as it is, any
 * other JSON as its compact JSON text), cut at tool_result_max_bytes as a
 * built-in tool's result is (with size_bytes and truncated); an error
 * likewise.
 */
#include "api.h"
#include "config.h"
#include "json.h"
#include "utf8.h"

#include <stdio.h>
#include <string.h>

#define CALL_ID_MAX 256

/* Check the list; 0, or -1 with the 400 in e. */
static int check_answers(struct json_object *list, const char *field,
			 int approvals, struct apierr *e)
{
	struct json_object *seen = jx_obj();
	size_t i, n = json_object_array_length(list);
	char name[64];
	int rc = -1;

	if (n == 0) {
		apierr_field(e, field, "must name at least one tool call");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(list, i), *v;
		const char *id = NULL, *s = NULL;

		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		if (!json_object_is_type(a, json_type_object)) {
			apierr_field(e, name, "must be an object");
			goto out;
		}
		if (jx_get_str(a, "tool_call_id", CALL_ID_MAX, &id, e) < 0)
			goto out;
		if (!id || !*id) {
			apierr_set(e, 400, "validation_error",
				   "%s.tool_call_id: is required", name);
			goto out;
		}
		if (jx_get(seen, id)) {
			apierr_set(e, 400, "duplicate_tool_call",
				   "%s.tool_call_id: '%s' is answered twice "
				   "in this request",
				   name, id);
			goto out;
		}
		json_object_object_add(seen, id, json_object_new_boolean(1));
		if (approvals) {
			if (!json_object_object_get_ex(a, "approved", &v) ||
			    !json_object_is_type(v, json_type_boolean)) {
				apierr_set(e, 400, "validation_error",
					   "%s.approved: must be true or false",
					   name);
				goto out;
			}
			if (jx_get_str(
				    a, "reason",
				    (size_t)config_int("tool_reason_max_bytes"),
				    &s, e) < 0)
				goto out;
		} else {
			if (jx_get_str(a, "error", 0, &s, e) < 0)
				goto out;
		}
	}
	rc = 0;
out:
	json_object_put(seen);
	return rc;
}

/* A string member cut to at most max bytes (whole characters). */
static void put_cut(struct json_object *o, const char *key, const char *s,
		    size_t n, size_t max)
{
	size_t k = n > max ? utf8_cut(s, n, max) : n;
	json_object_object_add(o, key, json_object_new_string_len(s, (int)k));
	if (k < n) {
		jx_put_int(o, "size_bytes", (long long)n);
		json_object_object_add(o, "truncated",
				       json_object_new_boolean(1));
	}
}

/* Client results as evr_tool_answer takes them: [{tool_call_id, text} or
 * {tool_call_id, error}], each cut at tool_result_max_bytes. */
static struct json_object *normalize_results(struct json_object *list)
{
	struct json_object *out = json_object_new_array();
	size_t max = (size_t)config_int("tool_result_max_bytes");
	size_t i;

	for (i = 0; i < json_object_array_length(list); i++) {
		struct json_object *a = json_object_array_get_idx(list, i);
		struct json_object *o = jx_obj(), *res = jx_get(a, "result");
		const char *err = jx_gets(a, "error"), *s;

		jx_put_str(o, "tool_call_id", jx_gets(a, "tool_call_id"));
		if (err) {
			put_cut(o, "error", err, strlen(err), max);
		} else if (res && json_object_is_type(res, json_type_string)) {
			put_cut(o, "text", json_object_get_string(res),
				(size_t)json_object_get_string_len(res), max);
		} else {
			/* JSON text as JSON writes it: "/" is no "\/" */
			s = res ? json_object_to_json_string_ext(
					  res,
					  JSON_C_TO_STRING_PLAIN |
						  JSON_C_TO_STRING_NOSLASHESCAPE)
				: "null";
			put_cut(o, "text", s, strlen(s), max);
		}
		json_object_array_add(out, o);
	}
	return out;
}

static void answer(struct req *rq, int approvals)
{
	static const char q[] = "SELECT evr_tool_answer($1, $2, $3, $4::jsonb)";
	const char *field = approvals ? "approvals" : "tool_results";
	struct json_object *body, *list = NULL, *r = NULL, *norm = NULL;
	struct apierr e;
	char session[33];
	const char *p[4], *code, *id;
	PGresult *res;

	if (api_id(rq, rq->cap[0], "ses", "session_id", session) != 0)
		return;
	if (!(body = api_body(rq)))
		return;
	if (jx_get_array(body, field, (size_t)config_int("tool_answers_max"),
			 &list, &e) < 0 ||
	    (!list && apierr_field(&e, field, "is required")) ||
	    check_answers(list, field, approvals, &e) != 0) {
		res_apierr(rq, &e);
		goto out;
	}
	p[0] = rq->org;
	p[1] = session;
	p[2] = approvals ? "approval" : "client";
	norm = approvals ? json_object_get(list) : normalize_results(list);
	p[3] = jx_str(norm);
	if (!(res = db_exec(rq->db, q, 4, p))) {
		api_db_error(rq);
		goto out;
	}
	r = jx_parse(db_val(res, 0, 0), strlen(db_val(res, 0, 0)), &e);
	PQclear(res);
	code = r ? jx_gets(r, "code") : NULL;
	id = r ? jx_gets(r, "id") : NULL;
	if (!code) {
		res_internal(rq);
	} else if (!strcmp(code, "ok")) {
		struct json_object *o = jx_obj();
		jx_put_int(o, "accepted",
			   json_object_get_int64(jx_get(r, "accepted")));
		jx_put_str(o, "status", jx_gets(r, "status"));
		res_json(rq, 200, jx_str(o), strlen(jx_str(o)));
		json_object_put(o);
	} else if (!strcmp(code, "not_found")) {
		res_error(rq, 404, "not_found", "Session not found");
	} else if (!strcmp(code, "not_waiting")) {
		res_error(rq, 409, "not_waiting",
			  "The session is not waiting for tool results or "
			  "approvals (status: %s)",
			  jx_gets(r, "status"));
	} else if (!strcmp(code, "unknown_tool_call")) {
		res_error(rq, 400, "unknown_tool_call",
			  "tool_call_id '%s': no such call is pending in this "
			  "session",
			  id ? id : "");
	} else if (!strcmp(code, "already_answered")) {
		res_error(rq, 409, "already_answered",
			  "tool_call_id '%s': this call was already answered",
			  id ? id : "");
	} else if (!strcmp(code, "wrong_kind")) {
		res_error(rq, 400, "wrong_kind",
			  "tool_call_id '%s': this call waits for %s; send it "
			  "to %s",
			  id ? id : "",
			  approvals ? "a result of the client" : "an approval",
			  approvals ? "POST .../tool-results"
				    : "POST .../tool-approvals");
	} else {
		res_internal(rq);
	}
out:
	json_object_put(norm);
	json_object_put(r);
	json_object_put(body);
}

void h_tool_results(struct req *rq)
{
	answer(rq, 0);
}

void h_tool_approvals(struct req *rq)
{
	answer(rq, 1);
}
