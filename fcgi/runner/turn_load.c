/*
 * turn_load: a claimed turn's configuration (ARCHITECTURE 3.2: harness, agent,
 * session layers; the model by message controls > session > agent >
 * harness > organization), its images, and for a takeover where it
 * stands in the log. See turn_int.h.
 */
#include "turn_int.h"
#include "catalog.h"
#include "crypto.h"
#include "ids.h"
#include "json.h"
#include "mcp.h"
#include "tools/tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- loading a turn ------------------------------------------------------*/

/* Merge capability lists by ref (first appearance keeps its place, a later
 * layer's config wins) into t->capcfg, and collect the prompt additions
 * and tool definitions of the catalogue. */
static void merge_capabilities(struct turn *t, struct buf *prompt)
{
	static const char *layers[] = {"harness", "agent", "session"};
	struct json_object *order = json_object_new_array();
	size_t i, j;

	t->capcfg = jx_obj();
	for (i = 0; i < 3; i++) {
		struct json_object *caps =
			jx_get(jx_get(t->cfg, layers[i]), "capabilities");
		size_t n = caps ? json_object_array_length(caps) : 0;
		for (j = 0; j < n; j++) {
			struct json_object *c =
				json_object_array_get_idx(caps, j);
			const char *ref = jx_gets(c, "ref");
			struct json_object *cfg = jx_get(c, "config");
			if (!ref || !catalog_find(ref))
				continue;
			if (!jx_get(t->capcfg, ref))
				json_object_array_add(
					order, json_object_new_string(ref));
			json_object_object_add(t->capcfg, ref,
					       cfg ? json_object_get(cfg)
						   : jx_obj());
		}
	}
	t->tools = json_object_new_array();
	for (i = 0; i < json_object_array_length(order); i++) {
		const struct catalog_cap *cap =
			catalog_find(json_object_get_string(
				json_object_array_get_idx(order, i)));
		struct json_object *defs = tools_catalog_list(cap);
		for (j = 0; j < json_object_array_length(defs); j++)
			json_object_array_add(
				t->tools,
				json_object_get(
					json_object_array_get_idx(defs, j)));
		if (cap->system_prompt && *cap->system_prompt) {
			if (prompt->len)
				buf_adds(prompt, "\n\n");
			buf_adds(prompt, cap->system_prompt);
		}
	}
	json_object_put(order);
}

/* Where this turn's own events start in the session's events: they are
 * the tail (everything of earlier turns comes before its input.message),
 * so a backward walk finds them without reading the conversation. */
static size_t own_events(struct turn *t, struct json_object *events)
{
	char tid[40];
	size_t i = json_object_array_length(events);

	snprintf(tid, sizeof(tid), "trn_%s", t->id);
	while (i > 0) {
		const char *et = jx_gets(
			json_object_array_get_idx(events, i - 1), "turn_id");
		if (!et || strcmp(et, tid))
			break;
		i--;
	}
	return i;
}

/* image_file parts get their bytes (base64) from the images table. */
static int resolve_images(struct runner *r, struct turn *t, int *any)
{
	static const char q[] =
		"SELECT media_type, encode(data, 'base64') FROM images "
		"WHERE id = $1 AND org_id = $2";
	struct json_object *events = jx_get(t->cfg, "events");
	size_t i, j;

	*any = 0;
	/* the leading plain_events hold no image part (history_cache.c) */
	for (i = t->plain_events; i < json_object_array_length(events); i++) {
		struct json_object *e = json_object_array_get_idx(events, i);
		struct json_object *parts =
			jx_get(jx_get(jx_get(e, "data"), "message"), "content");
		if (!jx_gets(e, "type") ||
		    strcmp(jx_gets(e, "type"), "input.message") || !parts ||
		    !json_object_is_type(parts, json_type_array))
			continue;
		for (j = 0; j < json_object_array_length(parts); j++) {
			struct json_object *p =
				json_object_array_get_idx(parts, j);
			const char *type = jx_gets(p, "type"),
				   *img = jx_gets(p, "image_id");
			char hex[33];
			const char *prm[2] = {hex, t->org};
			PGresult *res;
			if (!type || strcmp(type, "text"))
				*any = 1;
			if (!type || strcmp(type, "image_file") || !img ||
			    !ids_parse(img, "img", hex))
				continue;
			res = db_exec(&r->tools, q, 2, prm);
			if (!res)
				return -1;
			if (PQntuples(res)) {
				jx_put_str(p, "media_type",
					   PQgetvalue(res, 0, 0));
				/* encode() wraps lines; providers want none */
				struct buf b = BUF_INIT;
				const char *s = PQgetvalue(res, 0, 1);
				buf_init(&b, (size_t)PQgetlength(res, 0, 1));
				for (; *s; s++)
					if (*s != '\n')
						buf_addch(&b, *s);
				jx_put_str(p, "base64", b.data);
				buf_release(&b);
			}
			PQclear(res);
		}
	}
	return 0;
}

/* The turn's events: what the runner's history cache holds of the
 * session, then what the claim brought; and, for a takeover, whether
 * turn.started is among the turn's own. */
static void load_events(struct turn *t)
{
	struct json_object *ev;
	size_t k, n;

	json_object_object_add(
		t->cfg, "events",
		history_cache_merge(t->session, t->id, jx_get(t->cfg, "events"),
				    &t->plain_events, &t->cached_events));
	if (jx_gets(t->cfg, "input_message_id"))
		ids_parse(jx_gets(t->cfg, "input_message_id"), "msg",
			  t->input_msg);
	ev = jx_get(t->cfg, "events");
	n = json_object_array_length(ev);
	for (k = own_events(t, ev); k < n; k++) {
		const char *type =
			jx_gets(json_object_array_get_idx(ev, k), "type");
		if (type && !strcmp(type, "turn.started"))
			t->announced = 1;
	}
}

/* t->system_prompt: the harness, agent and session prompts in that
 * order, then what the merged capabilities add (t->tools, t->capcfg). */
static void load_prompt(struct turn *t)
{
	static const char *const layers[] = {"harness", "agent", "session"};
	struct buf prompt = BUF_INIT;
	int i;

	for (i = 0; i < 3; i++) {
		const char *sp =
			jx_gets(jx_get(t->cfg, layers[i]), "system_prompt");
		if (sp && *sp) {
			if (prompt.len)
				buf_adds(&prompt, "\n\n");
			buf_adds(&prompt, sp);
		}
	}
	merge_capabilities(t, &prompt);
	t->system_prompt = buf_detach(&prompt, NULL);
}

/* The message controls (max_tokens, temperature, reasoning effort) and
 * the iteration cap (session > agent > the runner's default). */
static void load_controls(struct runner *r, struct turn *t)
{
	struct json_object *ctl = jx_get(t->cfg, "controls");
	struct json_object *sess = jx_get(t->cfg, "session");
	struct json_object *agent = jx_get(t->cfg, "agent");
	struct apierr e;
	const char *v;
	int64_t n64;
	double dv;

	if (jx_get_int(ctl, "max_tokens", 1, 1000000, &n64, &e) > 0)
		t->max_tokens = (long)n64;
	if (jx_get_double(ctl, "temperature", 0, 2, &dv, &e) > 0) {
		t->temperature = dv;
		t->has_temperature = 1;
	}
	v = jx_gets(jx_get(ctl, "reasoning"), "effort");
	snprintf(t->effort, sizeof(t->effort), "%s", v ? v : "");
	t->max_iterations = (int)r->default_max_iterations;
	if (jx_get(agent, "max_iterations"))
		t->max_iterations =
			json_object_get_int(jx_get(agent, "max_iterations"));
	if (jx_get(sess, "max_iterations"))
		t->max_iterations =
			json_object_get_int(jx_get(sess, "max_iterations"));
}

/* The resolved model, its provider and the provider's key; *vision when
 * the model takes images. 0, or -1 with the turn failed (no model, a
 * disabled one, a key this server cannot open). */
static int load_model(struct runner *r, struct turn *t, int *vision)
{
	struct json_object *model = jx_get(t->cfg, "model"), *caps;
	struct buf key = BUF_INIT;
	size_t k;

	if (!model) {
		turn_fail(t, "model_not_found",
			  "no model is configured for this session");
		return -1;
	}
	t->model = xstrdup(jx_gets(model, "model_id"));
	t->model_id = xstrdup(jx_gets(model, "id"));
	t->provider_id = xstrdup(jx_gets(model, "provider_id"));
	t->base_url = jx_gets(model, "base_url")
			      ? xstrdup(jx_gets(model, "base_url"))
			      : NULL;
	t->context_tokens =
		json_object_get_int64(jx_get(model, "context_tokens"));
	t->kind = (enum llm_kind)llm_kind_from_type(
		jx_gets(model, "provider_type"));
	caps = jx_get(model, "capabilities");
	for (k = 0; caps && k < json_object_array_length(caps); k++)
		if (!strcmp(json_object_get_string(
				    json_object_array_get_idx(caps, k)),
			    "vision"))
			*vision = 1;
	if (!json_object_get_boolean(jx_get(model, "enabled")) ||
	    strcmp(jx_gets(model, "provider_status"), "active")) {
		turn_fail(t, "model_disabled", "the model %s is disabled",
			  t->model);
		return -1;
	}
	if (jx_gets(model, "api_key_enc")) {
		if (keyring_open(&r->keys, jx_gets(model, "api_key_enc"),
				 &key) != 0) {
			turn_fail(
				t, "provider_key_unreadable",
				"the provider's API key cannot be decrypted with "
				"this server's key");
			buf_release(&key);
			return -1;
		}
		t->api_key = xstrdup(key.data);
	}
	buf_release(&key);
	return 0;
}

int turn_load(struct runner *r, struct turn *t, const char *cfg)
{
	struct apierr e;
	int any_image = 0, vision = 0;

	if (!cfg) {
		t->dropped = 1; /* the turn or its session is gone */
		return -1;
	}
	t->cfg = jx_parse_depth(cfg, strlen(cfg), TURN_CFG_DEPTH, &e);
	if (!t->cfg) {
		/* never left to a takeover, which would fare no better */
		turn_fail(t, "turn_unloadable",
			  "the runner cannot read this turn's data (%s)",
			  e.msg);
		return 0;
	}
	load_events(t);
	load_prompt(t);
	t->mcp = mcp_turn_new(r, jx_get(t->cfg, "mcp"));
	turn_wait_load(t); /* client-side tools, policies: turn_wait.c */
	load_controls(r, t);
	if (load_model(r, t, &vision) != 0)
		return 0; /* failed: its closing events are queued */
	if (resolve_images(r, t, &any_image) != 0)
		return -1;
	if (any_image && !vision)
		turn_fail(t, "unsupported_input",
			  "the model %s does not accept images", t->model);
	return 0;
}

/* Where a taken-over turn stands: iterations so far and the tool calls
 * of its last message that have no result yet. */
int turn_resume_point(struct turn *t)
{
	struct json_object *events = jx_get(t->cfg, "events"), *last = NULL;
	struct json_object *done = jx_obj();
	char tid[40];
	size_t i, n = json_object_array_length(events);
	int pending = 0;

	snprintf(tid, sizeof(tid), "trn_%s", t->id);
	for (i = own_events(t, events); i < n; i++) {
		struct json_object *e = json_object_array_get_idx(events, i);
		const char *type = jx_gets(e, "type"),
			   *et = jx_gets(e, "turn_id");
		if (!type || !et || strcmp(et, tid))
			continue;
		if (!strcmp(type, "reason.started"))
			t->iterations++;
		else if (!strcmp(type, "output.message.completed")) {
			last = jx_get(jx_get(e, "data"), "message");
			turn_wait_note_calls(t, last);
		} else if (!strcmp(type, "tool.completed"))
			json_object_object_add(
				done,
				jx_gets(jx_get(e, "data"), "tool_call_id"),
				json_object_new_boolean(1));
	}
	json_object_put(t->calls);
	t->calls = json_object_new_array();
	if (last) {
		struct json_object *parts = jx_get(last, "content");
		for (i = 0; parts && i < json_object_array_length(parts); i++) {
			struct json_object *p = json_object_array_get_idx(parts,
									  i),
					   *c;
			if (!jx_gets(p, "type") ||
			    strcmp(jx_gets(p, "type"), "tool_call") ||
			    jx_get(done, jx_gets(p, "id")))
				continue;
			c = jx_obj();
			jx_put_str(c, "id", jx_gets(p, "id"));
			jx_put_str(c, "name", jx_gets(p, "name"));
			jx_put_str(c, "arguments",
				   jx_get(p, "arguments")
					   ? json_object_to_json_string_ext(
						     jx_get(p, "arguments"),
						     JSON_C_TO_STRING_PLAIN)
					   : "{}");
			json_object_array_add(t->calls, c);
			pending++;
		}
	}
	json_object_put(done);
	return pending;
}
