/*
 * anthropic: the Messages API driver.
 *
 * Request: POST {base_url}/v1/messages with x-api-key and
 * anthropic-version. The system prompt is a top-level field; messages
 * alternate user/assistant, so consecutive internal messages of the same
 * wire role (tool results, a user message after them) are merged into
 * one; tool calls become tool_use blocks and results tool_result blocks.
 * Response: SSE with named events (message_start, content_block_*,
 * message_delta, message_stop, ping, error); a tool_use block's input is
 * assembled from its input_json_delta fragments and handed to the sink at
 * content_block_stop.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "llm_int.h"

#define AN_VERSION "2023-06-01"
#define AN_DEFAULT_MAX_TOKENS 4096L
#define AN_MAX_OPEN_BLOCKS 16

/* --- request -------------------------------------------------------- */

static struct json_object *new_str(const char *s)
{
	return json_object_new_string(s ? s : "");
}

static struct json_object *text_block(const char *s, size_t n)
{
	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "type", new_str("text"));
	json_object_object_add(b, "text",
			       json_object_new_string_len(s, (int)n));
	return b;
}

/* The messages being built: blocks of the same role go into the same
 * message. */
struct an_msgs {
	struct json_object *arr;     /* owned by the body */
	struct json_object *content; /* of the last message, or NULL */
	int user;                    /* the last message's role */
};

/* Steals b. */
static void add_block(struct an_msgs *ms, int user, struct json_object *b)
{
	if (!ms->content || ms->user != user) {
		struct json_object *m = json_object_new_object();
		ms->content = json_object_new_array();
		ms->user = user;
		json_object_object_add(m, "role",
				       new_str(user ? "user" : "assistant"));
		json_object_object_add(m, "content", ms->content);
		json_object_array_add(ms->arr, m);
	}
	json_object_array_add(ms->content, b);
}

static int user_blocks(struct an_msgs *ms, struct json_object *m, size_t i,
		       struct buf *err)
{
	struct json_object *c = jx_get(m, "content");
	size_t k, n;

	if (json_object_is_type(c, json_type_string)) {
		n = (size_t)json_object_get_string_len(c);
		if (n)
			add_block(ms, 1,
				  text_block(json_object_get_string(c), n));
		return 0;
	}
	n = json_object_is_type(c, json_type_array)
		    ? json_object_array_length(c)
		    : 0;
	for (k = 0; k < n; k++) {
		struct json_object *p = json_object_array_get_idx(c, k);
		struct json_object *b, *src;
		const char *type = jx_gets(p, "type");
		const char *s;

		if (type && !strcmp(type, "text")) {
			/* the API refuses empty text blocks */
			s = jx_gets(p, "text");
			if (s && *s)
				add_block(ms, 1, text_block(s, strlen(s)));
			continue;
		}
		if (!type || strcmp(type, "image")) {
			buf_addf(err, "messages[%zu]: unknown part type", i);
			return -1;
		}
		src = json_object_new_object();
		if (jx_gets(p, "data") && jx_gets(p, "media_type")) {
			json_object_object_add(src, "type", new_str("base64"));
			json_object_object_add(
				src, "media_type",
				new_str(jx_gets(p, "media_type")));
			json_object_object_add(src, "data",
					       new_str(jx_gets(p, "data")));
		} else if ((s = jx_gets(p, "url")) != NULL) {
			json_object_object_add(src, "type", new_str("url"));
			json_object_object_add(src, "url", new_str(s));
		} else {
			json_object_put(src);
			buf_addf(err,
				 "messages[%zu]: image part without "
				 "media_type and data",
				 i);
			return -1;
		}
		b = json_object_new_object();
		json_object_object_add(b, "type", new_str("image"));
		json_object_object_add(b, "source", src);
		add_block(ms, 1, b);
	}
	return 0;
}

/* The tool_use input: the arguments' object. Arguments that are not a
 * JSON object (a model's broken output) are sent as {}: their result
 * already told the model what went wrong. */
static struct json_object *tool_input(struct json_object *args)
{
	struct json_object *o = NULL;
	struct apierr e;

	if (json_object_is_type(args, json_type_object))
		return json_object_get(args);
	if (json_object_is_type(args, json_type_string))
		o = jx_parse(json_object_get_string(args),
			     (size_t)json_object_get_string_len(args), &e);
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = json_object_new_object();
	}
	return o;
}

static int has_signed_thinking(struct json_object *m)
{
	const char *t = jx_gets(m, "thinking");
	const char *sig = jx_gets(m, "thinking_signature");
	return t && *t && sig && *sig;
}

static int assistant_blocks(struct an_msgs *ms, struct json_object *m, size_t i,
			    int thinking, struct buf *err)
{
	struct json_object *calls = jx_get(m, "tool_calls"), *b;
	struct buf t = BUF_INIT;
	size_t k, n;

	/* a thinking block can only be replayed with its signature, and
	 * only matters when thinking is on */
	if (thinking && has_signed_thinking(m)) {
		b = json_object_new_object();
		json_object_object_add(b, "type", new_str("thinking"));
		json_object_object_add(b, "thinking",
				       new_str(jx_gets(m, "thinking")));
		json_object_object_add(
			b, "signature",
			new_str(jx_gets(m, "thinking_signature")));
		add_block(ms, 0, b);
	}
	llm_user_text(m, &t);
	if (t.len)
		add_block(ms, 0, text_block(t.data, t.len));
	buf_release(&t);
	n = json_object_is_type(calls, json_type_array)
		    ? json_object_array_length(calls)
		    : 0;
	for (k = 0; k < n; k++) {
		struct json_object *c = json_object_array_get_idx(calls, k);
		if (!jx_gets(c, "id") || !jx_gets(c, "name")) {
			buf_addf(err,
				 "messages[%zu].tool_calls[%zu]: id and "
				 "name are required",
				 i, k);
			return -1;
		}
		b = json_object_new_object();
		json_object_object_add(b, "type", new_str("tool_use"));
		json_object_object_add(b, "id", new_str(jx_gets(c, "id")));
		json_object_object_add(b, "name", new_str(jx_gets(c, "name")));
		json_object_object_add(b, "input",
				       tool_input(jx_get(c, "arguments")));
		add_block(ms, 0, b);
	}
	return 0;
}

static int tool_result(struct an_msgs *ms, struct json_object *m, size_t i,
		       struct buf *err)
{
	const char *id = jx_gets(m, "tool_call_id");
	struct json_object *c = jx_get(m, "content"), *b;
	struct json_object *is_err = jx_get(m, "is_error");
	struct buf t = BUF_INIT;

	if (!id) {
		buf_addf(err, "messages[%zu]: no tool_call_id", i);
		return -1;
	}
	b = json_object_new_object();
	json_object_object_add(b, "type", new_str("tool_result"));
	json_object_object_add(b, "tool_use_id", new_str(id));
	if (json_object_is_type(c, json_type_string))
		buf_adds(&t, json_object_get_string(c));
	else if (c)
		jx_append(&t, c);
	if (t.len)
		json_object_object_add(
			b, "content",
			json_object_new_string_len(t.data, (int)t.len));
	buf_release(&t);
	if (json_object_get_boolean(is_err))
		json_object_object_add(b, "is_error",
				       json_object_new_boolean(1));
	add_block(ms, 1, b);
	return 0;
}

static long thinking_budget(const char *effort)
{
	if (!effort || !*effort || !strcmp(effort, "none"))
		return 0;
	if (!strcmp(effort, "low") || !strcmp(effort, "minimal"))
		return 1024; /* the API's minimum */
	if (!strcmp(effort, "high"))
		return 16384;
	return 4096;
}

/* With thinking on, the API requires the assistant message of an
 * unfinished tool loop (the last one after the last user message) to
 * start with its signed thinking block. A history without it (written
 * by another model, or a provider that sent no signature) cannot be sent
 * with thinking, so thinking is left off for that step. */
static int thinking_possible(struct json_object *msgs)
{
	size_t n = json_object_array_length(msgs);
	while (n--) {
		struct json_object *m = json_object_array_get_idx(msgs, n);
		const char *role = jx_gets(m, "role");
		struct json_object *calls = jx_get(m, "tool_calls");
		if (!role || !strcmp(role, "user"))
			return 1;
		if (strcmp(role, "assistant"))
			continue;
		if (!json_object_is_type(calls, json_type_array) ||
		    !json_object_array_length(calls))
			return 1;
		return has_signed_thinking(m);
	}
	return 1;
}

static struct json_object *wire_tools(struct json_object *tools)
{
	struct json_object *out = json_object_new_array();
	size_t k, n = json_object_array_length(tools);

	for (k = 0; k < n; k++) {
		struct json_object *t = json_object_array_get_idx(tools, k);
		struct json_object *w = json_object_new_object();
		struct json_object *params = jx_get(t, "parameters");
		const char *desc = jx_gets(t, "description");

		json_object_object_add(w, "name", new_str(jx_gets(t, "name")));
		if (desc)
			json_object_object_add(w, "description", new_str(desc));
		/* borrowed from the request: take a reference */
		json_object_object_add(
			w, "input_schema",
			params ? json_object_get(params)
			       : json_tokener_parse("{\"type\":\"object\","
						    "\"properties\":{}}"));
		json_object_array_add(out, w);
	}
	return out;
}

int llm_anthropic_build(const struct llm_request *r, struct buf *url,
			struct curl_slist **headers, struct buf *body,
			struct buf *err)
{
	struct json_object *root = json_object_new_object(), *th;
	struct an_msgs ms = {json_object_new_array(), NULL, 0};
	struct buf sys = BUF_INIT;
	size_t i, n = json_object_array_length(r->messages);
	long budget = thinking_budget(r->reasoning_effort);
	long max = r->max_tokens > 0 ? r->max_tokens : AN_DEFAULT_MAX_TOKENS;
	int rc = -1;

	if (budget && !thinking_possible(r->messages))
		budget = 0;
	for (i = 0; i < n; i++) {
		struct json_object *m;
		const char *role;
		int bad = 0;

		m = json_object_array_get_idx(r->messages, i);
		role = jx_gets(m, "role");
		if (!role) {
			buf_addf(err, "messages[%zu]: no role", i);
			goto out;
		}
		if (!strcmp(role, "system")) {
			if (sys.len)
				buf_adds(&sys, "\n\n");
			llm_user_text(m, &sys);
		} else if (!strcmp(role, "user")) {
			bad = user_blocks(&ms, m, i, err);
		} else if (!strcmp(role, "assistant")) {
			bad = assistant_blocks(&ms, m, i, budget > 0, err);
		} else if (!strcmp(role, "tool")) {
			bad = tool_result(&ms, m, i, err);
		} else {
			buf_addf(err, "messages[%zu]: unknown role %s", i,
				 role);
			bad = -1;
		}
		if (bad)
			goto out;
	}
	json_object_object_add(root, "model", new_str(r->model));
	/* max_tokens counts the thinking too: keep the asked room for the
	 * answer on top of the budget */
	if (budget && max <= budget)
		max += budget;
	json_object_object_add(root, "max_tokens", json_object_new_int64(max));
	if (sys.len)
		json_object_object_add(
			root, "system",
			json_object_new_string_len(sys.data, (int)sys.len));
	json_object_object_add(root, "messages", json_object_get(ms.arr));
	if (r->tools && json_object_is_type(r->tools, json_type_array) &&
	    json_object_array_length(r->tools) > 0)
		json_object_object_add(root, "tools", wire_tools(r->tools));
	json_object_object_add(root, "stream", json_object_new_boolean(1));
	if (budget) {
		th = json_object_new_object();
		json_object_object_add(th, "type", new_str("enabled"));
		json_object_object_add(th, "budget_tokens",
				       json_object_new_int64(budget));
		json_object_object_add(root, "thinking", th);
	} else if (r->has_temperature && isfinite(r->temperature)) {
		/* the API refuses a temperature with thinking on */
		char num[32];
		snprintf(num, sizeof(num), "%g", r->temperature);
		json_object_object_add(
			root, "temperature",
			json_object_new_double_s(r->temperature, num));
	}

	llm_url_join(url, r->base_url, "https://api.anthropic.com", "");
	/* accept a base_url given with or without its /v1 */
	if (url->len >= 3 && !strcmp(url->data + url->len - 3, "/v1"))
		buf_adds(url, "/messages");
	else
		buf_adds(url, "/v1/messages");
	llm_header(headers, "Content-Type: application/json");
	llm_header(headers, "Accept: text/event-stream");
	if (r->api_key && *r->api_key)
		llm_header(headers, "x-api-key: %s", r->api_key);
	llm_header(headers, "anthropic-version: " AN_VERSION);
	jx_append(body, root);
	rc = 0;
out:
	json_object_put(ms.arr);
	json_object_put(root);
	buf_release(&sys);
	return rc;
}

/* --- response ------------------------------------------------------- */

enum an_type { AN_TEXT, AN_TOOL, AN_THINKING, AN_OTHER };

struct an_block {
	long index;
	enum an_type type;
	char *id, *name;
	struct buf json; /* tool input fragments; thinking signature */
	char *input;     /* a tool input given whole at the start */
};

struct an_state {
	struct an_block open[AN_MAX_OPEN_BLOCKS];
	size_t n;
	long in, out;      /* usage so far */
	int thinking_seen; /* thinking blocks, redacted ones included */
	int done;          /* message_stop seen */
};

void llm_anthropic_parser_init(struct llm_parser *p)
{
	p->drv = xcalloc(1, sizeof(struct an_state));
}

static void drop_block(struct an_state *st, size_t i)
{
	free(st->open[i].id);
	free(st->open[i].name);
	free(st->open[i].input);
	buf_release(&st->open[i].json);
	st->open[i] = st->open[--st->n];
}

void llm_anthropic_parser_release(struct llm_parser *p)
{
	struct an_state *st = p->drv;
	if (!st)
		return;
	while (st->n)
		drop_block(st, st->n - 1);
	free(st);
	p->drv = NULL;
}

static struct an_block *find_block(struct an_state *st, long index)
{
	size_t i;
	for (i = 0; i < st->n; i++)
		if (st->open[i].index == index)
			return &st->open[i];
	return NULL;
}

static int block_start(struct llm_parser *p, struct an_state *st,
		       struct json_object *o)
{
	struct json_object *cb = jx_get(o, "content_block"), *in;
	const char *type = jx_gets(cb, "type");
	long index = llm_jlong(o, "index");
	struct an_block *b;
	const char *s;

	if (!type)
		return llm_parser_fail(p, "content_block_start without a "
					  "block type");
	if (find_block(st, index))
		return llm_parser_fail(p, "content block %ld started twice",
				       index);
	if (st->n == AN_MAX_OPEN_BLOCKS)
		return llm_parser_fail(p, "too many open content blocks");
	b = &st->open[st->n++];
	memset(b, 0, sizeof(*b));
	b->index = index;
	buf_init(&b->json, 0);
	b->type = AN_OTHER;
	if (!strcmp(type, "text")) {
		b->type = AN_TEXT;
		if ((s = jx_gets(cb, "text")) != NULL)
			llm_emit_text(p, s, strlen(s));
	} else if (!strcmp(type, "thinking")) {
		b->type = AN_THINKING;
		if ((s = jx_gets(cb, "thinking")) != NULL)
			llm_emit_thinking(p, s, strlen(s));
		if ((s = jx_gets(cb, "signature")) != NULL)
			buf_adds(&b->json, s);
	} else if (!strcmp(type, "redacted_thinking")) {
		/* it cannot be replayed without its data: no signature */
		st->thinking_seen++;
		free(p->signature);
		p->signature = NULL;
	} else if (!strcmp(type, "tool_use")) {
		if (llm_count_tool_call(p))
			return -1;
		b->type = AN_TOOL;
		if (!jx_gets(cb, "id") || !jx_gets(cb, "name"))
			return llm_parser_fail(p, "tool_use block without id "
						  "or name");
		b->id = xstrdup(jx_gets(cb, "id"));
		b->name = xstrdup(jx_gets(cb, "name"));
		in = jx_get(cb, "input");
		if (json_object_is_type(in, json_type_object) &&
		    json_object_object_length(in) > 0) {
			if (llm_count_tool_args(p, strlen(jx_str(in))))
				return -1;
			b->input = xstrdup(jx_str(in));
		}
	}
	/* other block types (server tools, their results) are run by the
	 * provider and not ours to handle */
	return 0;
}

static size_t vlen(struct json_object *v)
{
	return (size_t)json_object_get_string_len(v);
}

static int block_delta(struct llm_parser *p, struct an_state *st,
		       struct json_object *o)
{
	struct json_object *d = jx_get(o, "delta"), *v;
	const char *type = jx_gets(d, "type");
	struct an_block *b = find_block(st, llm_jlong(o, "index"));

	if (!type)
		return 0;
	if (!strcmp(type, "text_delta")) {
		v = jx_get(d, "text");
		if (json_object_is_type(v, json_type_string))
			llm_emit_text(p, json_object_get_string(v), vlen(v));
	} else if (!strcmp(type, "thinking_delta")) {
		v = jx_get(d, "thinking");
		if (json_object_is_type(v, json_type_string))
			llm_emit_thinking(p, json_object_get_string(v),
					  vlen(v));
	} else if (!strcmp(type, "input_json_delta")) {
		v = jx_get(d, "partial_json");
		if (!b || b->type != AN_TOOL)
			return llm_parser_fail(p, "input_json_delta outside a "
						  "tool_use block");
		if (json_object_is_type(v, json_type_string)) {
			if (b->json.len + vlen(v) > SSE_MAX_LINE)
				return llm_parser_fail(p, "tool input too "
							  "long");
			if (llm_count_tool_args(p, vlen(v)))
				return -1;
			buf_add(&b->json, json_object_get_string(v), vlen(v));
		}
	} else if (!strcmp(type, "signature_delta")) {
		v = jx_get(d, "signature");
		if (b && b->type == AN_THINKING &&
		    json_object_is_type(v, json_type_string))
			buf_add(&b->json, json_object_get_string(v), vlen(v));
	}
	/* unknown delta types (citations ...) are ignored, as the API's
	 * versioning policy asks */
	return 0;
}

static int block_stop(struct llm_parser *p, struct an_state *st,
		      struct json_object *o)
{
	struct an_block *b = find_block(st, llm_jlong(o, "index"));

	if (!b)
		return 0;
	if (b->type == AN_TOOL) {
		size_t k = 0;
		while (k < b->json.len &&
		       (b->json.data[k] == ' ' || b->json.data[k] == '\t' ||
			b->json.data[k] == '\r' || b->json.data[k] == '\n'))
			k++;
		/* empty fragments mean no arguments */
		llm_emit_tool_call(p, b->id, b->name,
				   k < b->json.len ? b->json.data
				   : b->input      ? b->input
						   : "{}");
	} else if (b->type == AN_THINKING) {
		/* one signature can only cover one thinking text; with more
		 * blocks the joined text has none */
		free(p->signature);
		p->signature = !st->thinking_seen++ && b->json.len
				       ? xstrdup(b->json.data)
				       : NULL;
	}
	drop_block(st, (size_t)(b - st->open));
	return 0;
}

static void usage(struct llm_parser *p, struct an_state *st,
		  struct json_object *u)
{
	if (!json_object_is_type(u, json_type_object))
		return;
	/* cached input is input too: report what the call consumed */
	if (jx_get(u, "input_tokens"))
		st->in = llm_jlong(u, "input_tokens") +
			 llm_jlong(u, "cache_creation_input_tokens") +
			 llm_jlong(u, "cache_read_input_tokens");
	if (jx_get(u, "output_tokens"))
		st->out = llm_jlong(u, "output_tokens");
	llm_emit_usage(p, st->in, st->out);
}

int llm_anthropic_event(void *ctx, const char *event, const char *data,
			size_t len)
{
	struct llm_parser *p = ctx;
	struct an_state *st = p->drv;
	struct json_object *o, *e;
	const char *type, *stop;
	int rc = 0;

	if (p->errored || st->done)
		return 0;
	o = llm_parse_chunk(p, data, len);
	if (!o)
		return -1;
	type = jx_gets(o, "type");
	if (!type)
		type = event; /* the data's type is the reliable one */
	if (!strcmp(type, "message_start")) {
		usage(p, st, jx_get(jx_get(o, "message"), "usage"));
	} else if (!strcmp(type, "content_block_start")) {
		rc = block_start(p, st, o);
	} else if (!strcmp(type, "content_block_delta")) {
		rc = block_delta(p, st, o);
	} else if (!strcmp(type, "content_block_stop")) {
		rc = block_stop(p, st, o);
	} else if (!strcmp(type, "message_delta")) {
		stop = jx_gets(jx_get(o, "delta"), "stop_reason");
		if (stop) {
			llm_parser_set_stop(p, stop);
			p->complete = 1;
		}
		usage(p, st, jx_get(o, "usage"));
	} else if (!strcmp(type, "message_stop")) {
		st->done = 1;
		p->complete = 1;
	} else if (!strcmp(type, "error")) {
		e = jx_get(o, "error");
		type = jx_gets(e, "type");
		llm_emit_error(p, type ? type : "error",
			       jx_gets(e, "message")
				       ? jx_gets(e, "message")
				       : "the provider reported an error",
			       llm_error_retryable(type));
	}
	/* ping and event types added later: nothing to do */
	json_object_put(o);
	return rc;
}
