/*
 * turn_act: a turn's act phase (ARCHITECTURE 3.3): the tool calls of the last
 * reply, one at a time (one per loop pass, so a cancel is seen between
 * tools), each announced with tool.started and recorded with
 * tool.completed; fetch_url runs as a transfer on the runner's curl multi
 * handle. Client-side calls and calls that need approval are set aside
 * (turn_wait.c). After the last, act.completed and the next reasoning, or
 * the wait for what was set aside.
 */
#include "turn_int.h"
#include "json.h"
#include "log.h"
#include "mcp.h"
#include "tools/tools.h"
#include "utf8.h"
#include "tools/virtual_bash.h"

#include <stdio.h>
#include <string.h>

/* The effective config of the capability that provides tool `name`, or
 * NULL if no capability of this turn provides it. */
static struct json_object *tool_config(struct turn *t, const char *name)
{
	const char *cap = tools_capability_of(name);
	return cap ? jx_get(t->capcfg, cap) : NULL;
}

/* tool_ctx.emit: a tool's event (file.written) in the turn's order,
 * made storable as every other event is (turn_emit). */
static void tool_event(void *arg, const char *type, const char *data)
{
	struct buf clean = BUF_INIT;
	struct json_object *d;
	struct apierr e;

	buf_init(&clean, strlen(data));
	utf8_clean(&clean, data, strlen(data));
	d = jx_parse_depth(clean.data, clean.len, TURN_CFG_DEPTH, &e);
	if (!d) {
		d = jx_obj();
		jx_put_str(d, "error", "the tool's event could not be read");
	}
	turn_emit(arg, type, d, 0, 0, EV_NORMAL, NULL);
	buf_release(&clean);
}

/* Tools whose effects outlive the turn (files, the key-value store, the
 * title) run in a transaction that first takes the turn's fence, as the
 * event writer does (the session row, then the turn row under the same
 * (id, attempt), still running): a runner that lost the turn changes
 * nothing, and no takeover can claim it while the tool runs. The
 * transaction's statement_timeout (tool_timeout_s) bounds the tool.
 * Returns 1 fenced in (commit after the tool), 0 fenced out (the turn is
 * dropped), -1 on a database error (the tool's error text is set). */
static int fence_begin(struct runner *r, struct turn *t, struct buf *error)
{
	static const char lock_session[] =
		"SELECT 1 FROM sessions WHERE id = $1 FOR NO KEY UPDATE";
	static const char lock_turn[] =
		"SELECT 1 FROM turns WHERE id = $1 AND attempt = $2 "
		"AND state = 'running' FOR SHARE";
	char att[16], tmo[48];
	const char *p[2] = {t->session, NULL};
	PGresult *res;
	int ok;

	snprintf(tmo, sizeof(tmo), "SET LOCAL statement_timeout = %ld",
		 r->tool_timeout_s * 1000);
	if (db_begin(&r->tools) != 0)
		goto fail;
	res = PQexec(r->tools.conn, tmo);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok || !(res = db_exec(&r->tools, lock_session, 1, p)))
		goto fail;
	PQclear(res);
	snprintf(att, sizeof(att), "%d", t->attempt);
	p[0] = t->id;
	p[1] = att;
	if (!(res = db_exec(&r->tools, lock_turn, 2, p)))
		goto fail;
	ok = PQntuples(res) == 1;
	PQclear(res);
	if (ok)
		return 1;
	db_rollback(&r->tools);
	log_info("turn %s: fenced before a tool (lease lost or cancelled); "
		 "dropping it",
		 t->id);
	t->dropped = 1;
	return 0;
fail:
	db_rollback(&r->tools);
	buf_adds(error, "The tool could not run: the session's data could not "
			"be reached in time; try again later.");
	return -1;
}

static int has_effects(const char *name)
{
	const char *cap = tools_capability_of(name);
	return cap &&
	       (!strcmp(cap, "session_file_system") ||
		!strcmp(cap, "session_storage") || !strcmp(cap, "session"));
}

/* [{"type":"text","text":result}] */
static struct json_object *text_parts(const struct buf *result)
{
	struct json_object *a = json_object_new_array(), *p = jx_obj();
	jx_put_str(p, "type", "text");
	json_object_object_add(
		p, "text",
		json_object_new_string_len(result->data ? result->data : "",
					   (int)result->len));
	json_object_array_add(a, p);
	return a;
}

/* The act phase's calls are done (run, or set aside for the wait): wait
 * for answers from outside if some were set aside (turn_wait.c), else
 * act.completed and reason again. */
static void act_finish(struct runner *r, struct turn *t)
{
	struct json_object *d;

	if (turn_wait_wanted(t)) {
		turn_wait_begin(t);
		return;
	}
	d = jx_obj();
	json_object_object_add(d, "completed", json_object_new_boolean(1));
	jx_put_int(d, "success_count", t->act_ok);
	jx_put_int(d, "error_count", t->act_err);
	jx_put_int(d, "duration_ms", now_ms() - t->act_start_ms);
	turn_emit(t, "act.completed", d, 0, 0, EV_NORMAL, NULL);
	turn_reason_begin(r, t);
}

/* Record the current tool's outcome; after the last one, act_finish. */
static void act_complete(struct runner *r, struct turn *t, enum tool_status st,
			 struct buf *result, struct buf *error)
{
	struct json_object *c =
		json_object_array_get_idx(t->calls, t->act_next);
	struct json_object *d;

	d = jx_obj();
	jx_put_str(d, "tool_call_id", jx_gets(c, "id"));
	jx_put_str(d, "tool_name", jx_gets(c, "name"));
	json_object_object_add(d, "success",
			       json_object_new_boolean(st == TOOL_OK));
	jx_put_str(d, "status", st == TOOL_OK ? "success" : "error");
	if (st == TOOL_OK) {
		if (result->len > (size_t)r->tool_result_max) {
			jx_put_int(d, "size_bytes", (long long)result->len);
			json_object_object_add(d, "truncated",
					       json_object_new_boolean(1));
			result->len = utf8_cut(result->data, result->len,
					       (size_t)r->tool_result_max);
			result->data[result->len] = '\0';
		}
		/* the document's result: content parts, one text part with
		 * what the tool answered (what the model reads) */
		json_object_object_add(d, "result", text_parts(result));
		t->act_ok++;
	} else {
		jx_put_str(d, "error", error->data);
		t->act_err++;
	}
	jx_put_int(d, "duration_ms", now_ms() - t->tool_t0);
	turn_note_event(t, "tool.completed", d);
	turn_emit(t, "tool.completed", d, 0, 0, EV_NORMAL, NULL);

	if (++t->act_next < json_object_array_length(t->calls))
		return;
	act_finish(r, t);
}

/* Start the next tool of the act phase (one per loop pass, so cancels are
 * seen between tools). fetch_url goes onto the curl multi and completes
 * in turn_transfer_done; the others run here. */
void turn_act_step(struct runner *r, struct turn *t)
{
	struct json_object *c =
		json_object_array_get_idx(t->calls, t->act_next);
	const char *name = jx_gets(c, "name");
	const char *a = jx_gets(c, "arguments");
	struct json_object *d, *tc, *args = NULL, *cfg;
	struct buf result = BUF_INIT, error = BUF_INIT;
	struct apierr e;
	enum tool_status st = TOOL_ERROR;

	/* a client-side call, or one that needs approval first, waits */
	if (turn_wait_defer(t, c)) {
		if (++t->act_next >= json_object_array_length(t->calls))
			act_finish(r, t);
		return;
	}
	t->tool_t0 = now_ms();
	d = jx_obj();
	tc = jx_obj();
	jx_put_str(tc, "id", jx_gets(c, "id"));
	jx_put_str(tc, "name", name);
	/* models often send "" for a tool without parameters */
	args = *a ? jx_parse(a, strlen(a), &e) : json_object_new_object();
	json_object_object_add(tc, "arguments",
			       args ? json_object_get(args)
				    : json_object_new_string(a));
	json_object_object_add(d, "tool_call", tc);
	turn_emit(t, "tool.started", d, 0, 0, EV_NORMAL, NULL);

	cfg = tool_config(t, name);
	if (!args || !json_object_is_type(args, json_type_object)) {
		buf_adds(&error, "the arguments are not a JSON object");
	} else if (mcp_is_tool(t, name)) {
		if (mcp_call_start(r, t, name, args, &error) == 0)
			goto out; /* completes in mcp_transfer_done */
	} else if (!cfg) {
		buf_addf(&error, "no tool named '%s' is available", name);
	} else if (!strcmp(name, "fetch_url")) {
		t->fetch = web_fetch_new(args, cfg, &error);
		if (t->fetch) {
			curl_easy_setopt(web_fetch_easy(t->fetch),
					 CURLOPT_PRIVATE, t);
			curl_multi_add_handle(r->multi,
					      web_fetch_easy(t->fetch));
			goto out; /* completes in turn_transfer_done */
		}
	} else if (!strcmp(name, "bash")) {
		/* runs in the sandbox, watched by the loop (virtual_bash.c) */
		if (tools_check_args(name, args, &error) == 0 &&
		    (t->vbash = vbash_start(r, t, jx_gets(c, "id"), args, cfg,
					    &error)))
			goto out; /* completes in vbash_step */
	} else {
		struct tool_ctx ctx = {&r->tools, t->org,     t->session, t->id,
				       cfg,       tool_event, t};
		int fenced;
		r->tools.sqlstate[0] = '\0';
		fenced = has_effects(name) ? fence_begin(r, t, &error) : 2;
		if (!fenced)
			goto out; /* dropped: nothing more of this attempt */
		st = fenced < 0 ? TOOL_ERROR
				: tools_run(&ctx, name, args, &result, &error);
		if (fenced == 1 && st != TOOL_OK) {
			db_rollback(&r->tools);
		} else if (fenced == 1 && db_commit(&r->tools) != 0) {
			buf_reset(&result);
			buf_adds(&error,
				 "The tool's changes could not be saved "
				 "(a database error); try again later.");
			st = TOOL_ERROR;
		}
		if (st == TOOL_ERROR && r->tools.sqlstate[0] &&
		    !strcmp(r->tools.sqlstate, "57014")) {
			buf_reset(&error);
			buf_addf(&error,
				 "The tool %s did not finish within %ld s.",
				 name, r->tool_timeout_s);
		}
		r->tools.sqlstate[0] = '\0';
		if (st == TOOL_UNKNOWN) {
			buf_reset(&error);
			buf_addf(&error, "the tool '%s' cannot run here", name);
			st = TOOL_ERROR;
		}
	}
	act_complete(r, t, st, &result, &error);
out:
	json_object_put(args);
	buf_release(&result);
	buf_release(&error);
}

void turn_act_tool_done(struct runner *r, struct turn *t, enum tool_status st,
			struct buf *result, struct buf *error)
{
	act_complete(r, t, st, result, error);
}

/* The fetch_url transfer of the current tool ended. */
void turn_act_fetch_done(struct runner *r, struct turn *t, CURLcode rc)
{
	struct buf result = BUF_INIT, error = BUF_INIT;
	enum tool_status st;

	curl_multi_remove_handle(r->multi, web_fetch_easy(t->fetch));
	st = web_fetch_done(t->fetch, rc, &result, &error);
	web_fetch_free(t->fetch);
	t->fetch = NULL;
	if (!t->dropped && t->phase == PH_ACT)
		act_complete(r, t, st, &result, &error);
	buf_release(&result);
	buf_release(&error);
}
