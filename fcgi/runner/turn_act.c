/*
 * turn_act: a turn's act phase (ARCHITECTURE 3.3): the tool calls of the last
 * reply, one at a time (one per loop pass, so a cancel is seen between
 * tools), each announced with tool.started and recorded with
 * tool.completed; fetch_url runs as a transfer on the runner's curl multi
 * handle. After the last, act.completed and the next reasoning.
 */
#include "turn_int.h"
#include "json.h"
#include "tools/tools.h"

#include <string.h>

/* The effective config of the capability that provides tool `name`, or
 * NULL if no capability of this turn provides it. */
static struct json_object *tool_config(struct turn *t, const char *name)
{
	const char *cap = tools_capability_of(name);
	return cap ? jx_get(t->capcfg, cap) : NULL;
}

/* tool_ctx.emit: a tool's event (file.written) in the turn's order. */
static void tool_event(void *arg, const char *type, const char *data)
{
	writer_event(arg, type, xstrdup(data), 0, 0, EV_NORMAL, NULL);
}

/* Record the current tool's outcome; after the last one, reason again. */
static void act_complete(struct runner *r, struct turn *t,
			 enum tool_status st, struct buf *result,
			 struct buf *error)
{
	struct json_object *c = json_object_array_get_idx(t->calls, t->act_next);
	struct json_object *d;
	struct apierr e;

	d = jx_obj();
	jx_put_str(d, "tool_call_id", jx_gets(c, "id"));
	jx_put_str(d, "tool_name", jx_gets(c, "name"));
	json_object_object_add(d, "success", json_object_new_boolean(st == TOOL_OK));
	jx_put_str(d, "status", st == TOOL_OK ? "success" : "error");
	if (st == TOOL_OK) {
		struct json_object *rv = NULL;
		if (result->len > (size_t)r->tool_result_max) {
			jx_put_int(d, "size_bytes", (long long)result->len);
			json_object_object_add(d, "truncated", json_object_new_boolean(1));
			result->len = (size_t)r->tool_result_max;
			while (result->len && ((unsigned char)result->data[result->len] & 0xC0) == 0x80)
				result->len--;
			result->data[result->len] = '\0';
			rv = json_object_new_string(result->data);
		} else {
			rv = jx_parse(result->data, result->len, &e);
			if (!rv)
				rv = json_object_new_string(result->data);
		}
		json_object_object_add(d, "result", rv);
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
	d = jx_obj();
	json_object_object_add(d, "completed", json_object_new_boolean(1));
	jx_put_int(d, "success_count", t->act_ok);
	jx_put_int(d, "error_count", t->act_err);
	jx_put_int(d, "duration_ms", now_ms() - t->act_start_ms);
	turn_emit(t, "act.completed", d, 0, 0, EV_NORMAL, NULL);
	turn_reason_begin(r, t);
}

/* Start the next tool of the act phase (one per loop pass, so cancels are
 * seen between tools). fetch_url goes onto the curl multi and completes
 * in turn_transfer_done; the others run here. */
void turn_act_step(struct runner *r, struct turn *t)
{
	struct json_object *c = json_object_array_get_idx(t->calls, t->act_next);
	const char *name = jx_gets(c, "name");
	const char *a = jx_gets(c, "arguments");
	struct json_object *d, *tc, *args = NULL, *cfg;
	struct buf result = BUF_INIT, error = BUF_INIT;
	struct apierr e;
	enum tool_status st = TOOL_ERROR;

	t->tool_t0 = now_ms();
	d = jx_obj();
	tc = jx_obj();
	jx_put_str(tc, "id", jx_gets(c, "id"));
	jx_put_str(tc, "name", name);
	/* models often send "" for a tool without parameters */
	args = *a ? jx_parse(a, strlen(a), &e) : json_object_new_object();
	json_object_object_add(tc, "arguments",
			       args ? json_object_get(args) : json_object_new_string(a));
	json_object_object_add(d, "tool_call", tc);
	turn_emit(t, "tool.started", d, 0, 0, EV_NORMAL, NULL);

	cfg = tool_config(t, name);
	if (!args || !json_object_is_type(args, json_type_object)) {
		buf_adds(&error, "the arguments are not a JSON object");
	} else if (!cfg) {
		buf_addf(&error, "no tool named '%s' is available", name);
	} else if (!strcmp(name, "fetch_url")) {
		t->fetch = web_fetch_new(args, cfg, &error);
		if (t->fetch) {
			curl_easy_setopt(web_fetch_easy(t->fetch), CURLOPT_PRIVATE, t);
			curl_multi_add_handle(r->multi, web_fetch_easy(t->fetch));
			goto out; /* completes in turn_transfer_done */
		}
	} else {
		struct tool_ctx ctx = {&r->tools, t->org, t->session, t->id,
				       cfg, tool_event, t};
		st = tools_run(&ctx, name, args, &result, &error);
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
