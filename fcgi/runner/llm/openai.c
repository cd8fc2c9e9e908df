/*
 * openai: the Chat Completions driver (provider type openai_completions),
 * for OpenAI and the servers that copy its API (Ollama, vLLM, llama.cpp).
 *
 * Request: POST {base_url}/chat/completions, stream:true with
 * stream_options.include_usage so the last chunk carries the usage.
 * Response: data-only SSE of chat.completion.chunk objects ending with
 * "data: [DONE]". Tool calls arrive as fragments keyed by
 * delta.tool_calls[].index; they are assembled here and handed to the
 * sink, in index order, once the finish reason (or [DONE]) says they are
 * complete.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "json.h"
#include "llm_int.h"

/* A bound on the calls of one response, so a hostile stream cannot make
 * the parser allocate without limit (llm_max_tool_calls, at most this,
 * is the one that counts). */
#define OA_MAX_CALLS 4096

/* --- request -------------------------------------------------------- */

static struct json_object *new_str(const char *s)
{
	return json_object_new_string(s ? s : "");
}

/* A content or arguments value as text: strings as they are, anything
 * else serialized (a tool result may have been stored as JSON). */
static void value_text(struct json_object *v, struct buf *out)
{
	if (!v)
		return;
	if (json_object_is_type(v, json_type_string))
		buf_adds(out, json_object_get_string(v));
	else
		jx_append(out, v);
}

/* A user message's content. Plain text stays a string (every compatible
 * server accepts that, not all accept parts); with an image it becomes
 * an array of parts. Returns a new object or NULL with err set. */
static struct json_object *user_content(struct json_object *m, size_t i,
					struct buf *err)
{
	struct json_object *c = jx_get(m, "content"), *parts, *out;
	size_t k, n;
	int has_image = 0;
	struct buf t = BUF_INIT;

	if (json_object_is_type(c, json_type_array)) {
		n = json_object_array_length(c);
		for (k = 0; k < n; k++) {
			const char *type = jx_gets(
				json_object_array_get_idx(c, k), "type");
			if (type && !strcmp(type, "image"))
				has_image = 1;
			else if (!type || strcmp(type, "text")) {
				buf_addf(err,
					 "messages[%zu]: unknown part type", i);
				return NULL;
			}
		}
	}
	if (!has_image) {
		llm_user_text(m, &t);
		out = json_object_new_string_len(t.data, (int)t.len);
		buf_release(&t);
		return out;
	}
	parts = json_object_new_array();
	n = json_object_array_length(c);
	for (k = 0; k < n; k++) {
		struct json_object *p = json_object_array_get_idx(c, k), *o;
		const char *type = jx_gets(p, "type");
		o = json_object_new_object();
		if (!strcmp(type, "text")) {
			json_object_object_add(o, "type", new_str("text"));
			json_object_object_add(o, "text",
					       new_str(jx_gets(p, "text")));
		} else {
			const char *mt = jx_gets(p, "media_type");
			const char *data = jx_gets(p, "data");
			const char *url = jx_gets(p, "url");
			struct json_object *iu = json_object_new_object();
			buf_init(&t, 0);
			if (data && mt)
				buf_addf(&t, "data:%s;base64,%s", mt, data);
			else if (url)
				buf_adds(&t, url);
			json_object_object_add(iu, "url", new_str(t.data));
			buf_release(&t);
			json_object_object_add(o, "type", new_str("image_url"));
			json_object_object_add(o, "image_url", iu);
			if (!(data && mt) && !url) {
				json_object_put(o);
				json_object_put(parts);
				buf_addf(err,
					 "messages[%zu]: image part without "
					 "media_type and data",
					 i);
				return NULL;
			}
		}
		json_object_array_add(parts, o);
	}
	return parts;
}

static struct json_object *assistant_msg(struct json_object *m, size_t i,
					 struct buf *err)
{
	struct json_object *o = json_object_new_object();
	struct json_object *calls = jx_get(m, "tool_calls"), *wire;
	size_t k, n = 0;
	struct buf t = BUF_INIT;

	llm_user_text(m, &t);
	if (json_object_is_type(calls, json_type_array))
		n = json_object_array_length(calls);
	json_object_object_add(o, "role", new_str("assistant"));
	/* with tool calls an empty answer is null, as OpenAI sends it */
	json_object_object_add(o, "content",
			       t.len || !n ? new_str(t.data) : NULL);
	buf_release(&t);
	if (!n)
		return o;
	wire = json_object_new_array();
	json_object_object_add(o, "tool_calls", wire);
	for (k = 0; k < n; k++) {
		struct json_object *c = json_object_array_get_idx(calls, k);
		struct json_object *w, *fn;
		const char *id = jx_gets(c, "id");
		const char *name = jx_gets(c, "name");
		if (!id || !name) {
			buf_addf(err,
				 "messages[%zu].tool_calls[%zu]: id and "
				 "name are required",
				 i, k);
			json_object_put(o);
			return NULL;
		}
		w = json_object_new_object();
		fn = json_object_new_object();
		json_object_array_add(wire, w);
		buf_init(&t, 0);
		value_text(jx_get(c, "arguments"), &t);
		json_object_object_add(w, "id", new_str(id));
		json_object_object_add(w, "type", new_str("function"));
		json_object_object_add(fn, "name", new_str(name));
		json_object_object_add(fn, "arguments",
				       new_str(t.len ? t.data : "{}"));
		json_object_object_add(w, "function", fn);
		buf_release(&t);
	}
	return o;
}

/* One internal message in wire form: a new object, or NULL with err. */
static struct json_object *wire_msg(struct json_object *m, size_t i,
				    struct buf *err)
{
	const char *role = jx_gets(m, "role");
	struct json_object *o, *c;
	struct buf t = BUF_INIT;

	if (!role) {
		buf_addf(err, "messages[%zu]: no role", i);
		return NULL;
	}
	if (!strcmp(role, "assistant"))
		return assistant_msg(m, i, err);
	if (!strcmp(role, "user")) {
		c = user_content(m, i, err);
		if (!c)
			return NULL;
		o = json_object_new_object();
		json_object_object_add(o, "role", new_str("user"));
		json_object_object_add(o, "content", c);
		return o;
	}
	if (strcmp(role, "system") && strcmp(role, "tool")) {
		buf_addf(err, "messages[%zu]: unknown role %s", i, role);
		return NULL;
	}
	o = json_object_new_object();
	json_object_object_add(o, "role", new_str(role));
	if (!strcmp(role, "tool")) {
		const char *id = jx_gets(m, "tool_call_id");
		if (!id) {
			buf_addf(err, "messages[%zu]: no tool_call_id", i);
			json_object_put(o);
			return NULL;
		}
		json_object_object_add(o, "tool_call_id", new_str(id));
	}
	if (!strcmp(role, "tool"))
		value_text(jx_get(m, "content"), &t);
	else
		llm_user_text(m, &t);
	json_object_object_add(o, "content",
			       json_object_new_string_len(t.data, (int)t.len));
	buf_release(&t);
	return o;
}

static struct json_object *wire_tools(struct json_object *tools)
{
	struct json_object *out = json_object_new_array();
	size_t k, n = json_object_array_length(tools);

	for (k = 0; k < n; k++) {
		struct json_object *t = json_object_array_get_idx(tools, k);
		struct json_object *w = json_object_new_object();
		struct json_object *fn = json_object_new_object();
		struct json_object *params = jx_get(t, "parameters");
		const char *desc = jx_gets(t, "description");

		json_object_object_add(fn, "name", new_str(jx_gets(t, "name")));
		if (desc)
			json_object_object_add(fn, "description",
					       new_str(desc));
		/* borrowed from the request: take a reference, the body
		 * tree is freed before the request is */
		json_object_object_add(
			fn, "parameters",
			params ? json_object_get(params)
			       : json_tokener_parse("{\"type\":\"object\","
						    "\"properties\":{}}"));
		json_object_object_add(w, "type", new_str("function"));
		json_object_object_add(w, "function", fn);
		json_object_array_add(out, w);
	}
	return out;
}

int llm_openai_build(const struct llm_request *r, struct buf *url,
		     struct curl_slist **headers, struct buf *body,
		     struct buf *err)
{
	struct json_object *root = json_object_new_object();
	struct json_object *msgs = json_object_new_array(), *so;
	size_t i, n = json_object_array_length(r->messages);
	int official = !r->base_url || !*r->base_url ||
		       strstr(r->base_url, "api.openai.com") != NULL;
	int rc = -1;

	json_object_object_add(root, "model", new_str(r->model));
	json_object_object_add(root, "messages", msgs);
	for (i = 0; i < n; i++) {
		struct json_object *w = wire_msg(
			json_object_array_get_idx(r->messages, i), i, err);
		if (!w)
			goto out;
		json_object_array_add(msgs, w);
	}
	if (r->tools && json_object_is_type(r->tools, json_type_array) &&
	    json_object_array_length(r->tools) > 0)
		json_object_object_add(root, "tools", wire_tools(r->tools));
	json_object_object_add(root, "stream", json_object_new_boolean(1));
	so = json_object_new_object();
	json_object_object_add(so, "include_usage", json_object_new_boolean(1));
	json_object_object_add(root, "stream_options", so);
	/* OpenAI's reasoning models refuse max_tokens; the compatible
	 * servers do not all know its successor */
	if (r->max_tokens > 0)
		json_object_object_add(
			root, official ? "max_completion_tokens" : "max_tokens",
			json_object_new_int64(r->max_tokens));
	if (r->has_temperature && isfinite(r->temperature)) {
		char num[32];
		snprintf(num, sizeof(num), "%g", r->temperature);
		json_object_object_add(
			root, "temperature",
			json_object_new_double_s(r->temperature, num));
	}
	if (r->reasoning_effort && *r->reasoning_effort &&
	    strcmp(r->reasoning_effort, "none"))
		json_object_object_add(root, "reasoning_effort",
				       new_str(r->reasoning_effort));

	llm_url_join(url, r->base_url, "https://api.openai.com/v1",
		     "/chat/completions");
	llm_header(headers, "Content-Type: application/json");
	llm_header(headers, "Accept: text/event-stream");
	if (r->api_key && *r->api_key)
		llm_header(headers, "Authorization: Bearer %s", r->api_key);
	jx_append(body, root);
	rc = 0;
out:
	json_object_put(root);
	return rc;
}

/* --- response ------------------------------------------------------- */

struct oa_call {
	long index;
	char *id, *name; /* NULL until their fragment arrives */
	struct buf args;
};

struct oa_state {
	struct oa_call *calls;
	size_t n, cap;
	int emitted; /* the calls went to the sink */
	int done;    /* [DONE] seen: ignore the rest */
};

void llm_openai_parser_init(struct llm_parser *p)
{
	p->drv = xcalloc(1, sizeof(struct oa_state));
}

void llm_openai_parser_release(struct llm_parser *p)
{
	struct oa_state *st = p->drv;
	size_t i;
	if (!st)
		return;
	for (i = 0; i < st->n; i++) {
		free(st->calls[i].id);
		free(st->calls[i].name);
		buf_release(&st->calls[i].args);
	}
	free(st->calls);
	free(st);
	p->drv = NULL;
}

static int emit_calls(struct llm_parser *p, struct oa_state *st)
{
	size_t i, j;
	char idbuf[IDS_MAX_LEN];

	if (st->emitted)
		return 0;
	st->emitted = 1;
	/* insertion sort by index: the calls are few and mostly sorted */
	for (i = 1; i < st->n; i++) {
		struct oa_call c = st->calls[i];
		for (j = i; j > 0 && st->calls[j - 1].index > c.index; j--)
			st->calls[j] = st->calls[j - 1];
		st->calls[j] = c;
	}
	for (i = 0; i < st->n; i++) {
		struct oa_call *c = &st->calls[i];
		if (!c->name || !*c->name)
			return llm_parser_fail(p, "tool call %ld has no name",
					       c->index);
		/* some local servers send no id: the history needs one to
		 * pair the result with its call */
		if (!c->id) {
			ids_new("call", idbuf, sizeof(idbuf));
			c->id = xstrdup(idbuf);
		}
		llm_emit_tool_call(p, c->id, c->name, c->args.data);
	}
	return 0;
}

static struct oa_call *new_call(struct oa_state *st, long index)
{
	struct oa_call *c;
	if (st->n == st->cap) {
		st->cap = st->cap ? 2 * st->cap : 4;
		st->calls = xrealloc(st->calls, st->cap * sizeof(*st->calls));
	}
	c = &st->calls[st->n++];
	memset(c, 0, sizeof(*c));
	c->index = index;
	buf_init(&c->args, 0);
	return c;
}

static int tool_delta(struct llm_parser *p, struct oa_state *st,
		      struct json_object *tc)
{
	struct json_object *fn = jx_get(tc, "function");
	struct json_object *iv = jx_get(tc, "index");
	const char *id = jx_gets(tc, "id");
	const char *name = jx_gets(fn, "name");
	const char *args = jx_gets(fn, "arguments");
	struct oa_call *c = NULL;
	long index, top = -1;
	size_t i;

	if (st->emitted)
		return llm_parser_fail(p, "tool call fragment after the "
					  "finish reason");
	for (i = 0; i < st->n; i++)
		if (st->calls[i].index > top)
			top = st->calls[i].index;
	index = json_object_is_type(iv, json_type_int)
			? (long)json_object_get_int64(iv)
			: (id || !st->n ? top + 1 : st->calls[st->n - 1].index);
	for (i = 0; i < st->n && !c; i++)
		if (st->calls[i].index == index)
			c = &st->calls[i];
	/* a different id at a known index is a new call: some compatible
	 * servers number every call 0 */
	if (c && id && c->id && strcmp(c->id, id)) {
		c = NULL;
		index = top + 1;
	}
	if (!c) {
		if (st->n == OA_MAX_CALLS)
			return llm_parser_fail(p, "more than %d tool calls",
					       OA_MAX_CALLS);
		if (llm_count_tool_call(p))
			return -1;
		c = new_call(st, index);
	}
	if (id && *id && !c->id)
		c->id = xstrdup(id);
	if (name && *name && !c->name)
		c->name = xstrdup(name);
	if (args) {
		if (c->args.len + strlen(args) > SSE_MAX_LINE)
			return llm_parser_fail(p, "tool call arguments too "
						  "long");
		if (llm_count_tool_args(p, strlen(args)))
			return -1;
		buf_adds(&c->args, args);
	}
	return 0;
}

static int delta(struct llm_parser *p, struct oa_state *st,
		 struct json_object *d)
{
	/* compatible servers name the reasoning text differently; a
	 * refusal is what the user gets to read instead of an answer */
	static const struct {
		const char *key;
		void (*emit)(struct llm_parser *, const char *, size_t);
	} fields[] = {
		{"reasoning_content", llm_emit_thinking},
		{"reasoning", llm_emit_thinking},
		{"content", llm_emit_text},
		{"refusal", llm_emit_text},
	};
	struct json_object *v, *tcs = jx_get(d, "tool_calls");
	size_t i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		v = jx_get(d, fields[i].key);
		if (json_object_is_type(v, json_type_string))
			fields[i].emit(p, json_object_get_string(v),
				       (size_t)json_object_get_string_len(v));
	}
	if (!json_object_is_type(tcs, json_type_array))
		return 0;
	for (i = 0; i < json_object_array_length(tcs); i++)
		if (tool_delta(p, st, json_object_array_get_idx(tcs, i)))
			return -1;
	return 0;
}

static void stream_error(struct llm_parser *p, struct json_object *e)
{
	const char *code = jx_gets(e, "code");
	const char *msg = jx_gets(e, "message");
	if (!code)
		code = jx_gets(e, "type");
	if (json_object_is_type(e, json_type_string))
		msg = json_object_get_string(e);
	llm_emit_error(p, code ? code : "error",
		       msg ? msg : "the provider reported an error",
		       llm_error_retryable(code));
}

int llm_openai_event(void *ctx, const char *event, const char *data, size_t len)
{
	struct llm_parser *p = ctx;
	struct oa_state *st = p->drv;
	struct json_object *o, *choices, *usage, *e;
	size_t i, k;
	int rc = 0;

	(void)event; /* data-only stream */
	if (p->errored || st->done)
		return 0;
	for (k = 0; k < len && (data[k] == ' ' || data[k] == '\t'); k++)
		;
	if (k == len)
		return 0; /* an empty data line: a keep-alive of sorts */
	if (len - k >= 6 && !memcmp(data + k, "[DONE]", 6)) {
		st->done = 1;
		p->complete = 1;
		return emit_calls(p, st);
	}
	o = llm_parse_chunk(p, data, len);
	if (!o)
		return -1;
	e = jx_get(o, "error");
	if (e) {
		stream_error(p, e);
		goto out;
	}
	choices = jx_get(o, "choices");
	for (i = 0; json_object_is_type(choices, json_type_array) &&
		    i < json_object_array_length(choices);
	     i++) {
		struct json_object *c = json_object_array_get_idx(choices, i);
		const char *fr = jx_gets(c, "finish_reason");
		/* one answer is asked for (no n > 1): other choices are
		 * not ours */
		if (llm_jlong(c, "index") != 0)
			continue;
		rc = delta(p, st, jx_get(c, "delta"));
		if (rc)
			goto out;
		if (fr && *fr) {
			llm_parser_set_stop(p, fr);
			p->complete = 1;
			rc = emit_calls(p, st);
			if (rc)
				goto out;
		}
	}
	usage = jx_get(o, "usage");
	if (json_object_is_type(usage, json_type_object))
		llm_emit_usage(p, llm_jlong(usage, "prompt_tokens"),
			       llm_jlong(usage, "completion_tokens"));
out:
	json_object_put(o);
	return rc;
}
