/*
 * turn_wait: a turn that waits for something from outside (ARCHITECTURE
 * 3.9): the results of client-side tools and approvals of tool calls.
 *
 * At load (turn_wait_load): the layers' `tools` (client-side tools join
 * the model's tools; per-tool policies) and `approval` mode, the
 * approvals already given (tool.approval_resolved in the log), and the
 * attempt and time a resumed turn does not count (attempt_base,
 * waited_ms). In the act phase, turn_call_disposition() says what to do
 * with a call: run it, hand it to the client, or ask for approval first;
 * turn_wait_defer() sets the last two aside. After the step's last call,
 * if any were set aside, turn_wait_begin() and then turn_wait_step()
 * (once the turn's earlier events have landed) call evr_turn_wait
 * (sql/019), which writes the request events, ends the lease and sets
 * the turn waiting, in one fenced transaction; the runner then forgets
 * the turn. The API's answers queue it again and a runner resumes it from
 * the log like a takeover (turn_start.c).
 */
#include "turn_int.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "tools/tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tools that write (files, the key-value store, the title, commands) or
 * reach out (fetch_url): asked about under approval "writes". A tool of
 * no capability of the catalogue (an MCP server's) reaches out too. */
static int writes_or_reaches_out(const char *name)
{
	static const char *const w[] = {"write_file",  "edit_file",
					"delete_file", "move_file",
					"copy_file",   "make_directory",
					"kv_store",    "write_session_title",
					"bash",        "fetch_url",
					NULL};
	int i;

	for (i = 0; w[i]; i++)
		if (!strcmp(name, w[i]))
			return 1;
	return tools_capability_of(name) == NULL;
}

/* The layers' tools: client-side definitions into t->ctools and the
 * model's tools, policies into t->policy (the later layer wins), the
 * approval mode (session > agent > harness). */
static void load_tools(struct turn *t)
{
	static const char *const layers[] = {"harness", "agent", "session"};
	size_t i, j;

	t->ctools = jx_obj();
	t->policy = jx_obj();
	for (i = 0; i < 3; i++) {
		struct json_object *l = jx_get(t->cfg, layers[i]);
		struct json_object *tools = jx_get(l, "tools");
		const char *mode = jx_gets(l, "approval");
		size_t n = tools && json_object_is_type(tools, json_type_array)
				   ? json_object_array_length(tools)
				   : 0;
		if (mode)
			t->approval_mode = !strcmp(mode, "all")      ? 2
					   : !strcmp(mode, "writes") ? 1
								     : 0;
		for (j = 0; j < n; j++) {
			struct json_object *d =
				json_object_array_get_idx(tools, j);
			const char *name = jx_gets(d, "name"),
				   *type = jx_gets(d, "type"),
				   *pol = jx_gets(d, "policy");
			if (!name || !type)
				continue;
			if (pol)
				json_object_object_add(
					t->policy, name,
					json_object_new_string(pol));
			if (!strcmp(type, "client_side") &&
			    !jx_get(t->ctools, name)) {
				struct json_object *def = jx_obj();
				jx_put_str(def, "name", name);
				jx_put_str(def, "description",
					   jx_gets(d, "description"));
				json_object_object_add(
					def, "parameters",
					json_object_get(
						jx_get(d, "parameters")));
				json_object_array_add(t->tools, def);
				json_object_object_add(t->ctools, name,
						       json_object_get(d));
			}
		}
	}
}

/* Approvals given in the log (this turn's tool.approval_resolved). */
static void load_approvals(struct turn *t)
{
	struct json_object *ev = jx_get(t->cfg, "events");
	char tid[40];
	size_t i, n = ev ? json_object_array_length(ev) : 0;

	snprintf(tid, sizeof(tid), "trn_%s", t->id);
	t->approved = jx_obj();
	for (i = n; i > 0; i--) {
		struct json_object *e = json_object_array_get_idx(ev, i - 1),
				   *d = jx_get(e, "data");
		const char *type = jx_gets(e, "type"),
			   *et = jx_gets(e, "turn_id");
		if (et && strcmp(et, tid))
			break; /* the turn's own events are the tail */
		if (!type || strcmp(type, "tool.approval_resolved") ||
		    !jx_gets(d, "tool_call_id"))
			continue;
		json_object_object_add(
			t->approved, jx_gets(d, "tool_call_id"),
			json_object_new_boolean(json_object_get_boolean(
				jx_get(d, "approved"))));
	}
}

void turn_wait_load(struct turn *t)
{
	load_tools(t);
	load_approvals(t);
	t->attempt_base = json_object_get_int(jx_get(t->cfg, "attempt_base"));
	/* the wall-time limit leaves out the time spent waiting */
	t->started_ms += json_object_get_int64(jx_get(t->cfg, "waited_ms"));
}

/* Was a tool of that name offered to the model (a capability's, an MCP
 * server's or a client-side one)? A call of any other is an error the
 * model reads (turn_act.c), never a question to anyone. */
static int offered(struct turn *t, const char *name)
{
	size_t i, n = t->tools ? json_object_array_length(t->tools) : 0;

	for (i = 0; i < n; i++) {
		const char *tn =
			jx_gets(json_object_array_get_idx(t->tools, i), "name");
		if (tn && !strcmp(tn, name))
			return 1;
	}
	return 0;
}

enum call_disposition turn_call_disposition(struct turn *t, const char *name,
					    const char *id)
{
	const char *pol = name ? jx_gets(t->policy, name) : NULL;
	int client = name && jx_get(t->ctools, name) != NULL, ask;

	if (!name || !offered(t, name))
		return CALL_RUN;
	if (pol && !strcmp(pol, "requires_approval"))
		ask = 1;
	else if (pol && !strcmp(pol, "auto"))
		ask = 0;
	else if (client) /* the client runs it: asking is its own business */
		ask = 0;
	else
		ask = t->approval_mode == 2 ||
		      (t->approval_mode == 1 && writes_or_reaches_out(name));
	if (ask && !(id && json_object_get_boolean(jx_get(t->approved, id))))
		return CALL_APPROVAL;
	return client ? CALL_CLIENT : CALL_RUN;
}

int turn_wait_defer(struct turn *t, struct json_object *call)
{
	const char *name = jx_gets(call, "name"), *id = jx_gets(call, "id");
	const char *a = jx_gets(call, "arguments");
	enum call_disposition d = turn_call_disposition(t, name, id);
	struct json_object *w, *args;
	struct apierr e;

	if (d == CALL_RUN || !id)
		return 0;
	w = jx_obj();
	jx_put_str(w, "id", id);
	jx_put_str(w, "name", name);
	args = a && *a ? jx_parse_depth(a, strlen(a), TURN_EVENT_DEPTH, &e)
		       : jx_obj();
	json_object_object_add(w, "arguments",
			       args ? args : json_object_new_string(a));
	jx_put_str(w, "kind", d == CALL_CLIENT ? "client" : "approval");
	if (d == CALL_CLIENT &&
	    jx_gets(jx_get(t->ctools, name), "display_name"))
		jx_put_str(w, "display_name",
			   jx_gets(jx_get(t->ctools, name), "display_name"));
	if (!t->waits)
		t->waits = json_object_new_array();
	json_object_array_add(t->waits, w);
	return 1;
}

int turn_wait_wanted(struct turn *t)
{
	return t->waits && json_object_array_length(t->waits) > 0;
}

void turn_wait_begin(struct turn *t)
{
	t->phase = PH_WAIT;
	t->wait_retry_ms = 0;
}

void turn_wait_step(struct runner *r, struct turn *t)
{
	static const char q[] = "SELECT evr_turn_wait($1, $2, $3::jsonb, $4)";
	char att[16], secs[24];
	const char *p[4] = {t->id, att, NULL, secs};
	const char *out;
	PGresult *res;

	/* the request events come after everything the turn said */
	if (t->pending || now_ms() < t->wait_retry_ms)
		return;
	if (jx_storable(&t->waits, TURN_EVENT_DEPTH))
		log_info("turn %s: tool call arguments made storable", t->id);
	snprintf(att, sizeof(att), "%d", t->attempt);
	snprintf(secs, sizeof(secs), "%ld", r->tool_wait_max_s);
	p[2] = jx_str(t->waits);
	res = db_exec(&r->tools, q, 4, p);
	if (!res) {
		log_warn("turn %s: could not start its wait; retrying", t->id);
		t->wait_retry_ms = now_ms() + 1000;
		return;
	}
	out = db_val(res, 0, 0);
	if (out && !strcmp(out, "waiting")) {
		log_info("turn %s: waiting for %zu call(s) from outside", t->id,
			 json_object_array_length(t->waits));
		t->phase = PH_DONE; /* nothing of it stays here */
	} else if (out && !strcmp(out, "cancelled")) {
		log_info("turn %s: cancelled before its wait", t->id);
		t->phase = PH_DONE;
	} else {
		log_info("turn %s: fenced before its wait; dropping it", t->id);
		t->dropped = 1;
	}
	PQclear(res);
}

void turn_wait_close_act(struct turn *t, int attempt)
{
	struct json_object *ev = jx_get(t->cfg, "events"), *d;
	size_t i, n = ev ? json_object_array_length(ev) : 0;
	int ok = 0, err = 0;
	char tid[40];

	/* only the first claim after a resume: a later takeover of it has
	 * written its act.completed already, or will */
	if (t->attempt_base == 0 || attempt != t->attempt_base + 1)
		return;
	snprintf(tid, sizeof(tid), "trn_%s", t->id);
	for (i = n; i > 0; i--) {
		struct json_object *e = json_object_array_get_idx(ev, i - 1);
		const char *type = jx_gets(e, "type");
		if (!type || !jx_gets(e, "turn_id") ||
		    strcmp(jx_gets(e, "turn_id"), tid))
			break;
		if (!strcmp(type, "output.message.completed"))
			break;
		if (!strcmp(type, "tool.completed")) {
			if (json_object_get_boolean(
				    jx_get(jx_get(e, "data"), "success")))
				ok++;
			else
				err++;
		}
	}
	d = jx_obj();
	json_object_object_add(d, "completed", json_object_new_boolean(1));
	jx_put_int(d, "success_count", ok);
	jx_put_int(d, "error_count", err);
	turn_emit(t, "act.completed", d, 0, 0, EV_NORMAL, NULL);
}

void turn_wait_expire(struct runner *r)
{
	PGresult *res =
		db_exec(&r->tools, "SELECT evr_expire_waits()", 0, NULL);
	if (res && atoi(PQgetvalue(res, 0, 0)) > 0)
		log_info("%s turn(s) waited past tool_wait_max_s and failed",
			 PQgetvalue(res, 0, 0));
	PQclear(res);
}

#define CALL_ID_MAX 128 /* the answer routes take up to 256 bytes */

/* Has a call of list (this response's, so far) that id? */
static int in_calls(struct json_object *list, const char *id)
{
	size_t i, n = list ? json_object_array_length(list) : 0;

	for (i = 0; i < n; i++) {
		const char *c =
			jx_gets(json_object_array_get_idx(list, i), "id");
		if (c && !strcmp(c, id))
			return 1;
	}
	return 0;
}

const char *turn_wait_call_id(struct turn *t, const char *id, char *buf)
{
	size_t n = id ? strlen(id) : 0;

	if (!t->call_ids)
		t->call_ids = jx_obj();
	if (n == 0 || n > CALL_ID_MAX ||
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		       "0123456789_.:-") != n ||
	    json_object_object_get_ex(t->call_ids, id, NULL) ||
	    in_calls(t->calls, id)) {
		ids_new("call", buf, IDS_MAX_LEN);
		log_info("turn %s: a tool call's id %s; it is now %s", t->id,
			 n == 0 ? "was empty" : "was unusable or repeated",
			 buf);
		id = buf;
	}
	return id;
}

void turn_wait_note_calls(struct turn *t, struct json_object *message)
{
	struct json_object *parts = jx_get(message, "content");
	size_t i, n = json_object_is_type(parts, json_type_array)
			      ? json_object_array_length(parts)
			      : 0;

	if (!t->call_ids)
		t->call_ids = jx_obj();
	for (i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(parts, i);
		const char *type = jx_gets(p, "type"), *id = jx_gets(p, "id");
		if (type && id && !strcmp(type, "tool_call"))
			json_object_object_add(t->call_ids, id, NULL);
	}
}

void turn_wait_free(struct turn *t)
{
	json_object_put(t->call_ids);
	json_object_put(t->ctools);
	json_object_put(t->policy);
	json_object_put(t->approved);
	json_object_put(t->waits);
}
