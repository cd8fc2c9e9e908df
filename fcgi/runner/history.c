/*
 * history: the conversation sent to a provider, built from the session's
 * event log (ARCHITECTURE 3.4). Always well formed: every tool call of an
 * assistant message is followed, right after it and in call order, by its
 * result, whatever the results' own sequences; a call without a result (a
 * cancel, a lost runner, max_iterations) gets {"error":"cancelled"};
 * results whose call is unknown are dropped. Old whole exchanges (a user
 * message and what followed it) are dropped to fit the context window.
 */
#include "runner.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

/* A user message from input.message parts. Plain text stays a string;
 * images become {"type":"image","media_type","data"} parts (image_file
 * parts were resolved to base64 by the caller into "base64"). */
static struct json_object *user_message(struct json_object *msg)
{
	struct json_object *parts = jx_get(msg, "content"), *out, *arr;
	size_t i, n = parts ? json_object_array_length(parts) : 0;
	int images = 0;
	struct buf text = BUF_INIT;

	for (i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(parts, i);
		const char *type = jx_gets(p, "type");
		if (type && !strcmp(type, "text")) {
			if (text.len)
				buf_addch(&text, '\n');
			buf_adds(&text,
				 jx_gets(p, "text") ? jx_gets(p, "text") : "");
		} else {
			images++;
		}
	}
	out = json_object_new_object();
	json_object_object_add(out, "role", json_object_new_string("user"));
	if (!images) {
		json_object_object_add(
			out, "content",
			json_object_new_string_len(text.data, (int)text.len));
		buf_release(&text);
		return out;
	}
	arr = json_object_new_array();
	for (i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(parts, i),
				   *np;
		const char *type = jx_gets(p, "type");
		np = json_object_new_object();
		if (type && !strcmp(type, "text")) {
			json_object_object_add(np, "type",
					       json_object_new_string("text"));
			json_object_object_add(
				np, "text", json_object_get(jx_get(p, "text")));
		} else if (jx_gets(p, "base64")) {
			json_object_object_add(np, "type",
					       json_object_new_string("image"));
			json_object_object_add(
				np, "media_type",
				json_object_get(jx_get(p, "media_type")));
			json_object_object_add(
				np, "data",
				json_object_get(jx_get(p, "base64")));
		} else {
			/* an image we could not resolve (e.g. a url part) is
			 * described, not silently dropped */
			json_object_object_add(np, "type",
					       json_object_new_string("text"));
			json_object_object_add(
				np, "text",
				json_object_new_string(
					"[image not available]"));
		}
		json_object_array_add(arr, np);
	}
	json_object_object_add(out, "content", arr);
	buf_release(&text);
	return out;
}

static struct json_object *assistant_message(struct json_object *msg)
{
	struct json_object *parts = jx_get(msg, "content"), *out, *calls;
	size_t i, n = parts ? json_object_array_length(parts) : 0;
	struct buf text = BUF_INIT;

	calls = json_object_new_array();
	for (i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(parts, i);
		const char *type = jx_gets(p, "type");
		if (type && !strcmp(type, "text")) {
			buf_adds(&text,
				 jx_gets(p, "text") ? jx_gets(p, "text") : "");
		} else if (type && !strcmp(type, "tool_call")) {
			struct json_object *c = json_object_new_object();
			struct json_object *args = jx_get(p, "arguments");
			json_object_object_add(
				c, "id", json_object_get(jx_get(p, "id")));
			json_object_object_add(
				c, "name", json_object_get(jx_get(p, "name")));
			json_object_object_add(
				c, "arguments",
				json_object_new_string(
					args ? json_object_to_json_string_ext(
						       args,
						       JSON_C_TO_STRING_PLAIN)
					     : "{}"));
			json_object_array_add(calls, c);
		}
	}
	out = json_object_new_object();
	json_object_object_add(out, "role",
			       json_object_new_string("assistant"));
	json_object_object_add(
		out, "content",
		json_object_new_string_len(text.data, (int)text.len));
	if (jx_gets(msg, "thinking"))
		json_object_object_add(
			out, "thinking",
			json_object_get(jx_get(msg, "thinking")));
	if (jx_gets(msg, "thinking_signature"))
		json_object_object_add(
			out, "thinking_signature",
			json_object_get(jx_get(msg, "thinking_signature")));
	if (json_object_array_length(calls))
		json_object_object_add(out, "tool_calls", calls);
	else
		json_object_put(calls);
	buf_release(&text);
	return out;
}

static struct json_object *tool_message(const char *id,
					struct json_object *done)
{
	struct json_object *m = json_object_new_object();
	const char *content = "{\"error\":\"cancelled\"}";
	struct buf b = BUF_INIT;

	if (done) {
		struct json_object *err = jx_get(done, "error"),
				   *res = jx_get(done, "result");
		if (err) {
			buf_adds(&b, "{\"error\":");
			buf_adds(&b, json_object_to_json_string_ext(
					     err, JSON_C_TO_STRING_PLAIN));
			buf_addch(&b, '}');
		} else if (res && json_object_is_type(res, json_type_string)) {
			buf_adds(&b, json_object_get_string(res));
		} else if (res && json_object_is_type(res, json_type_array)) {
			/* content parts (sql/015 on): their texts */
			size_t i;
			buf_adds(&b, ""); /* text even without parts */
			for (i = 0; i < json_object_array_length(res); i++) {
				const char *tx = jx_gets(
					json_object_array_get_idx(res, i),
					"text");
				if (tx)
					buf_adds(&b, tx);
			}
		} else {
			buf_adds(&b, res ? json_object_to_json_string_ext(
						   res, JSON_C_TO_STRING_PLAIN)
					 : "null");
		}
		content = b.data;
	}
	json_object_object_add(m, "role", json_object_new_string("tool"));
	json_object_object_add(m, "tool_call_id", json_object_new_string(id));
	json_object_object_add(m, "content", json_object_new_string(content));
	buf_release(&b);
	return m;
}

static size_t est_tokens(struct json_object *o)
{
	return strlen(json_object_to_json_string_ext(o,
						     JSON_C_TO_STRING_PLAIN)) /
		       4 +
	       4;
}

/* What one event contributes to the history: its messages (a user
 * message; or an assistant message followed by its calls' results) and
 * their estimated tokens. Kept on the event object itself (json-c
 * userdata) once its turn is over, so a conversation's earlier turns are
 * built once, not on every step of every later turn: events never change,
 * and the results of a finished turn's calls are final. */
struct memo {
	struct json_object *msgs; /* owned: array */
	size_t tokens;
	int user; /* starts an exchange (a user message) */
};

/* The mark of an earlier turn's event that adds no message (e.g. its
 * tool.completed, whose result is in its call's memo): skipped unread. */
static struct memo nothing;

static void memo_free(struct json_object *jso, void *ud)
{
	struct memo *m = ud;
	(void)jso;
	json_object_put(m->msgs);
	free(m);
}

/* Tool results by call id, into results, from events [from, n) not built
 * yet (no memo); the last one wins: a takeover may have run a tool twice. */
static void add_results(struct json_object *results, struct json_object *events,
			size_t from, size_t n)
{
	size_t i;
	for (i = from; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(events, i);
		const char *type;
		struct json_object *d;
		if (json_object_get_userdata(e))
			continue;
		type = jx_gets(e, "type");
		d = jx_get(e, "data");
		if (type && !strcmp(type, "tool.completed") &&
		    jx_gets(d, "tool_call_id"))
			json_object_object_add(results,
					       jx_gets(d, "tool_call_id"),
					       json_object_get(d));
	}
}

/* The messages of event e, or NULL for an event that adds none. */
static struct memo *build_event(struct json_object *e,
				struct json_object *results)
{
	const char *type = jx_gets(e, "type");
	struct json_object *m = jx_get(jx_get(e, "data"), "message");
	struct memo *mo;
	size_t i;

	if (!type || !m ||
	    (strcmp(type, "input.message") &&
	     strcmp(type, "output.message.completed")))
		return NULL;
	mo = xcalloc(1, sizeof(*mo));
	mo->msgs = json_object_new_array();
	if (!strcmp(type, "input.message")) {
		json_object_array_add(mo->msgs, user_message(m));
		mo->user = 1;
	} else {
		struct json_object *am = assistant_message(m);
		struct json_object *calls = jx_get(am, "tool_calls");
		size_t j, nc = calls ? json_object_array_length(calls) : 0;
		json_object_array_add(mo->msgs, am);
		for (j = 0; j < nc; j++) {
			const char *id = jx_gets(
				json_object_array_get_idx(calls, j), "id");
			if (id)
				json_object_array_add(
					mo->msgs,
					tool_message(id, jx_get(results, id)));
		}
	}
	for (i = 0; i < json_object_array_length(mo->msgs); i++)
		mo->tokens +=
			est_tokens(json_object_array_get_idx(mo->msgs, i));
	return mo;
}

struct json_object *history_build(struct json_object *events,
				  const char *current_turn,
				  const char *system_prompt,
				  long context_tokens, long reserve_tokens,
				  long *tokens, int *too_long)
{
	struct json_object *results = json_object_new_object(), *out, *sys;
	size_t i, n = json_object_array_length(events), start, total = 0;
	struct memo **g = xcalloc(n ? n : 1, sizeof(*g));
	char *fresh = xcalloc(n ? n : 1, 1);
	size_t ng = 0;

	*too_long = 0;
	add_results(results, events, 0, n);
	/* the messages in order, results right after their call */
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(events, i);
		struct memo *mo = json_object_get_userdata(e);
		const char *et;
		if (mo == &nothing)
			continue;
		if (!mo) {
			mo = build_event(e, results);
			et = jx_gets(e, "turn_id");
			if (!mo) {
				if (et && strcmp(et, current_turn))
					json_object_set_userdata(e, &nothing,
								 NULL);
				continue;
			}
			if (et && strcmp(et, current_turn)) {
				json_object_set_userdata(e, mo, memo_free);
			} else {
				fresh[ng] = 1; /* this turn's: freed below */
			}
		}
		g[ng++] = mo;
	}
	json_object_put(results);

	/* fit the window: drop the oldest exchanges, keep the newest */
	for (i = 0; i < ng; i++)
		total += g[i]->tokens;
	sys = json_object_new_object();
	json_object_object_add(sys, "role", json_object_new_string("system"));
	json_object_object_add(sys, "content",
			       json_object_new_string(system_prompt));
	total += est_tokens(sys);
	start = 0;
	while (context_tokens > 0 &&
	       total + (size_t)reserve_tokens > (size_t)context_tokens) {
		/* the next exchange starts at the next user message */
		size_t j = start + 1;
		while (j < ng && !g[j]->user)
			j++;
		if (j >= ng) {
			*too_long = 1;
			break;
		}
		for (; start < j; start++)
			total -= g[start]->tokens;
	}
	out = json_object_new_array();
	if (*system_prompt)
		json_object_array_add(out, sys);
	else
		json_object_put(sys);
	for (i = start; i < ng; i++) {
		size_t j;
		for (j = 0; j < json_object_array_length(g[i]->msgs); j++)
			json_object_array_add(
				out, json_object_get(json_object_array_get_idx(
					     g[i]->msgs, j)));
	}
	for (i = 0; i < ng; i++)
		if (fresh[i])
			memo_free(NULL, g[i]);
	free(g);
	free(fresh);
	*tokens = (long)total;
	return out;
}

/* A session's cached events as messages. msgs: slot 0 for the system
 * message, then the messages of the first `events` cached events (n
 * items with the slot), then whatever the last build appended for its
 * turn (cut off at the next build). */
struct history_prefix {
	struct json_object *msgs;
	size_t n, tokens, events;
};

void history_prefix_free(struct history_prefix *pre)
{
	if (!pre)
		return;
	json_object_put(pre->msgs);
	free(pre);
}

/* Append the messages of events[from..to) to a; the memos of other
 * turns' events are kept on them, the current turn's are not. Returns
 * their tokens, or -1 if an event of the current turn was met while
 * `earlier` says there can be none. */
static long add_events(struct json_object *a, struct json_object *events,
		       size_t from, size_t to, struct json_object *results,
		       const char *current_turn, int earlier)
{
	long tokens = 0;
	size_t i, j;

	for (i = from; i < to; i++) {
		struct json_object *e = json_object_array_get_idx(events, i);
		struct memo *mo = json_object_get_userdata(e);
		int fresh = 0;
		if (mo == &nothing)
			continue;
		if (!mo) {
			const char *et = jx_gets(e, "turn_id");
			int other = et && strcmp(et, current_turn);
			if (earlier && !other)
				return -1;
			mo = build_event(e, results);
			if (!mo) {
				if (other)
					json_object_set_userdata(e, &nothing,
								 NULL);
				continue;
			}
			if (other)
				json_object_set_userdata(e, mo, memo_free);
			else
				fresh = 1;
		}
		for (j = 0; j < json_object_array_length(mo->msgs); j++)
			json_object_array_add(
				a, json_object_get(json_object_array_get_idx(
					   mo->msgs, j)));
		tokens += (long)mo->tokens;
		if (fresh)
			memo_free(NULL, mo);
	}
	return tokens;
}

struct json_object *
history_build_shared(struct history_prefix **prep, struct json_object *events,
		     size_t cached, const char *current_turn,
		     const char *system_prompt, long context_tokens,
		     long reserve_tokens, long *tokens)
{
	struct history_prefix *pre = *prep;
	struct json_object *results, *sys;
	size_t n = json_object_array_length(events), len;
	long more, tail;

	if (!*system_prompt || cached > n)
		return NULL;
	if (pre && pre->events > cached) { /* not this cache's: start over */
		history_prefix_free(pre);
		pre = *prep = NULL;
	}
	if (!pre) {
		pre = *prep = xcalloc(1, sizeof(*pre));
		pre->msgs = json_object_new_array();
		json_object_array_add(pre->msgs, json_object_new_object());
		pre->n = 1;
	}
	len = json_object_array_length(pre->msgs);
	if (len > pre->n) /* the last build's turn */
		json_object_array_del_idx(pre->msgs, pre->n, len - pre->n);

	results = json_object_new_object();
	add_results(results, events, pre->events, n);
	/* the cache's new events join the prefix for good */
	more = add_events(pre->msgs, events, pre->events, cached, results,
			  current_turn, 1);
	if (more < 0) {
		json_object_put(results);
		len = json_object_array_length(pre->msgs);
		if (len > pre->n)
			json_object_array_del_idx(pre->msgs, pre->n,
						  len - pre->n);
		return NULL;
	}
	pre->tokens += (size_t)more;
	pre->n = json_object_array_length(pre->msgs);
	pre->events = cached;
	/* then this turn's part, up to the next build */
	tail = add_events(pre->msgs, events, cached, n, results, current_turn,
			  0);
	json_object_put(results);

	sys = json_object_new_object();
	json_object_object_add(sys, "role", json_object_new_string("system"));
	json_object_object_add(sys, "content",
			       json_object_new_string(system_prompt));
	*tokens = (long)(pre->tokens + (size_t)tail + est_tokens(sys));
	if (context_tokens > 0 && *tokens + reserve_tokens > context_tokens) {
		/* needs trimming: history_build drops the oldest exchanges */
		json_object_put(sys);
		len = json_object_array_length(pre->msgs);
		json_object_array_del_idx(pre->msgs, pre->n, len - pre->n);
		return NULL;
	}
	json_object_array_put_idx(pre->msgs, 0, sys);
	return json_object_get(pre->msgs);
}
