/*
 * llm: driver dispatch, the parser shell shared by the streaming drivers,
 * and the reading of provider error bodies.
 */
#include "llm.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "json.h"
#include "llm_int.h"
#include "utf8.h"

int llm_kind_from_type(const char *provider_type)
{
	if (!provider_type)
		return -1;
	/* "openai" is accepted as an alias: the driver speaks Chat
	 * Completions, which every OpenAI-compatible server has */
	if (!strcmp(provider_type, "openai_completions") ||
	    !strcmp(provider_type, "openai"))
		return LLM_OPENAI;
	if (!strcmp(provider_type, "anthropic"))
		return LLM_ANTHROPIC;
	if (!strcmp(provider_type, "llmsim"))
		return LLM_SIM;
	return -1;
}

int llm_build(const struct llm_request *r, struct buf *url,
	      struct curl_slist **headers, struct buf *body, struct buf *err)
{
	*headers = NULL;
	if (!r->model || !*r->model) {
		buf_adds(err, "no model name");
		return -1;
	}
	if (!json_object_is_type(r->messages, json_type_array)) {
		buf_adds(err, "messages must be an array");
		return -1;
	}
	/* it becomes a header value: CR/LF would add header lines (the API
	 * refuses such keys; one stored before it did is refused here) */
	for (const char *k = r->api_key; k && *k; k++) {
		if ((unsigned char)*k < 0x20 || *k == 0x7f) {
			buf_adds(err, "the provider's api_key contains control "
				      "characters; set it again");
			return -1;
		}
	}
	switch (r->kind) {
	case LLM_OPENAI:
		return llm_openai_build(r, url, headers, body, err);
	case LLM_ANTHROPIC:
		return llm_anthropic_build(r, url, headers, body, err);
	case LLM_SIM:
		break;
	}
	buf_adds(err, "llmsim makes no HTTP request (use llmsim_plan)");
	return -1;
}

/* --- the parser shell ----------------------------------------------- */

/* The driver's handler, until the parser failed (a limit reached in the
 * middle of a chunk stops the events after it). */
static int dispatch(void *ctx, const char *event, const char *data, size_t len)
{
	struct llm_parser *p = ctx;
	int rc = p->failed ? -1 : p->event(ctx, event, data, len);
	return rc ? rc : p->failed ? -1 : 0;
}

struct llm_parser *llm_parser_new(enum llm_kind kind,
				  const struct llm_sink *sink)
{
	struct llm_parser *p = xcalloc(1, sizeof(*p));
	sse_event_fn fn = NULL;

	p->kind = kind;
	p->sink = *sink;
	p->lim = llm_limits_config();
	buf_init(&p->err, 0);
	switch (kind) {
	case LLM_OPENAI:
		llm_openai_parser_init(p);
		fn = llm_openai_event;
		break;
	case LLM_ANTHROPIC:
		llm_anthropic_parser_init(p);
		fn = llm_anthropic_event;
		break;
	case LLM_SIM:
		llm_parser_fail(p, "llmsim has no response stream");
		break;
	}
	p->event = fn;
	sse_parser_init(&p->sse, fn ? dispatch : NULL, p);
	return p;
}

int llm_parser_fail(struct llm_parser *p, const char *fmt, ...)
{
	va_list ap;
	if (!p->failed) {
		buf_reset(&p->err);
		va_start(ap, fmt);
		buf_vaddf(&p->err, fmt, ap);
		va_end(ap);
	}
	p->failed = 1;
	return -1;
}

struct llm_limits llm_limits_config(void)
{
	struct llm_limits l;
	l.response = (size_t)config_int("llm_max_response_mb") * 1024 * 1024;
	l.text = (size_t)config_int("llm_max_text_kb") * 1024;
	l.thinking = (size_t)config_int("llm_max_thinking_kb") * 1024;
	l.tool_args = (size_t)config_int("llm_max_tool_args_kb") * 1024;
	l.tool_calls = (size_t)config_int("llm_max_tool_calls");
	return l;
}

void llm_parser_set_limits(struct llm_parser *p, const struct llm_limits *l)
{
	p->lim = *l;
}

const char *llm_parser_too_large(const struct llm_parser *p)
{
	return p->too_large;
}

/* Add n to *count; past max, fail naming the limit. */
static int count(struct llm_parser *p, size_t *count, size_t n, size_t max,
		 const char *key, const char *what)
{
	int mib;

	if (p->too_large)
		return -1;
	if (n <= max && *count <= max - n) {
		*count += n;
		return 0;
	}
	p->too_large = key;
	mib = strstr(key, "_mb") != NULL;
	return llm_parser_fail(p, "the model's %s exceeded %s (%zu %s)", what,
			       key, max / (mib ? 1024 * 1024 : 1024),
			       mib ? "MiB" : "KiB");
}

int llm_count_tool_call(struct llm_parser *p)
{
	if (p->too_large)
		return -1;
	if (++p->tool_calls <= p->lim.tool_calls)
		return 0;
	p->too_large = "llm_max_tool_calls";
	return llm_parser_fail(p,
			       "the model's tool calls exceeded "
			       "llm_max_tool_calls (%zu)",
			       p->lim.tool_calls);
}

int llm_count_tool_args(struct llm_parser *p, size_t n)
{
	return count(p, &p->tool_args, n, p->lim.tool_args,
		     "llm_max_tool_args_kb", "tool call arguments");
}

int llm_parser_feed(struct llm_parser *p, const char *data, size_t n)
{
	if (p->failed)
		return -1;
	if (count(p, &p->got, n, p->lim.response, "llm_max_response_mb",
		  "response"))
		return -1;
	if (sse_parser_feed(&p->sse, data, n))
		return p->failed ? -1
				 : llm_parser_fail(p,
						   "event stream line or "
						   "event longer than %d "
						   "bytes",
						   SSE_MAX_LINE);
	return p->failed ? -1 : 0;
}

int llm_parser_finish(struct llm_parser *p)
{
	if (p->failed)
		return -1;
	/* a stream may end with its last event unterminated */
	if (sse_parser_end(&p->sse))
		return llm_parser_fail(p, "event stream event too long");
	if (p->failed)
		return -1;
	if (p->errored) {
		/* err holds the provider's words, see llm_emit_error() */
		p->failed = 1;
		return -1;
	}
	if (!p->complete)
		return llm_parser_fail(p, "response cut short: the stream "
					  "ended before its end marker");
	return 0;
}

const char *llm_parser_stop_reason(const struct llm_parser *p)
{
	return p->stop;
}

const char *llm_parser_thinking_signature(const struct llm_parser *p)
{
	return p->signature;
}

const char *llm_parser_error(const struct llm_parser *p)
{
	return p->failed ? p->err.data : NULL;
}

void llm_parser_free(struct llm_parser *p)
{
	if (!p)
		return;
	if (p->kind == LLM_OPENAI)
		llm_openai_parser_release(p);
	else if (p->kind == LLM_ANTHROPIC)
		llm_anthropic_parser_release(p);
	sse_parser_release(&p->sse);
	buf_release(&p->err);
	free(p->stop);
	free(p->signature);
	free(p);
}

void llm_parser_set_stop(struct llm_parser *p, const char *reason)
{
	free(p->stop);
	p->stop = xstrdup(reason);
}

struct json_object *llm_parse_chunk(struct llm_parser *p, const char *data,
				    size_t len)
{
	struct apierr e;
	struct json_object *o = jx_parse(data, len, &e);
	if (!o) {
		llm_parser_fail(p, "malformed chunk in the %s stream: %s",
				p->kind == LLM_OPENAI ? "OpenAI" : "Anthropic",
				e.msg);
		return NULL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		llm_parser_fail(p, "malformed chunk: not a JSON object");
		return NULL;
	}
	return o;
}

void llm_emit_text(struct llm_parser *p, const char *s, size_t n)
{
	if (count(p, &p->text, n, p->lim.text, "llm_max_text_kb", "text"))
		return;
	if (n && p->sink.text)
		p->sink.text(p->sink.ctx, s, n);
}

void llm_emit_thinking(struct llm_parser *p, const char *s, size_t n)
{
	if (count(p, &p->thinking, n, p->lim.thinking, "llm_max_thinking_kb",
		  "thinking"))
		return;
	if (n && p->sink.thinking)
		p->sink.thinking(p->sink.ctx, s, n);
}

void llm_emit_tool_call(struct llm_parser *p, const char *id, const char *name,
			const char *args)
{
	if (p->sink.tool_call)
		p->sink.tool_call(p->sink.ctx, id, name, *args ? args : "{}");
}

void llm_emit_usage(struct llm_parser *p, long in, long out)
{
	if (p->sink.usage)
		p->sink.usage(p->sink.ctx, in, out);
}

void llm_emit_error(struct llm_parser *p, const char *code, const char *msg,
		    int retryable)
{
	p->errored = 1;
	buf_reset(&p->err);
	buf_addf(&p->err, "provider error in the stream: %s: %s", code, msg);
	if (p->sink.error)
		p->sink.error(p->sink.ctx, code, msg, retryable);
}

/* --- helpers for the drivers ---------------------------------------- */

int llm_error_retryable(const char *code)
{
	static const char *const transient[] = {
		"overloaded", "rate_limit",  "api_error", "server",
		"timeout",    "unavailable", "internal",  NULL};
	size_t i;
	if (!code)
		return 0;
	for (i = 0; transient[i]; i++)
		if (strstr(code, transient[i]))
			return 1;
	return 0;
}

long llm_jlong(struct json_object *o, const char *key)
{
	struct json_object *v = jx_get(o, key);
	if (!json_object_is_type(v, json_type_int) &&
	    !json_object_is_type(v, json_type_double))
		return 0;
	return (long)json_object_get_int64(v);
}

void llm_url_join(struct buf *url, const char *base, const char *def,
		  const char *path)
{
	size_t n;
	if (!base || !*base)
		base = def;
	n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	buf_add(url, base, n);
	buf_adds(url, path);
}

void llm_header(struct curl_slist **h, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	struct curl_slist *n;
	va_list ap;

	buf_init(&line, 64);
	va_start(ap, fmt);
	buf_vaddf(&line, fmt, ap);
	va_end(ap);
	n = curl_slist_append(*h, line.data);
	if (!n)
		abort();
	*h = n;
	buf_release(&line);
}

void llm_user_text(struct json_object *msg, struct buf *out)
{
	struct json_object *c = jx_get(msg, "content");
	size_t i, n, before = out->len;

	if (json_object_is_type(c, json_type_string)) {
		buf_adds(out, json_object_get_string(c));
		return;
	}
	if (!json_object_is_type(c, json_type_array))
		return;
	n = json_object_array_length(c);
	for (i = 0; i < n; i++) {
		struct json_object *part = json_object_array_get_idx(c, i);
		const char *type = jx_gets(part, "type");
		const char *text = jx_gets(part, "text");
		if (!type || strcmp(type, "text") || !text)
			continue;
		if (out->len > before)
			buf_addch(out, '\n');
		buf_adds(out, text);
	}
}

/* --- HTTP errors ---------------------------------------------------- */

static const char *status_words(long status)
{
	switch (status) {
	case 400:
		return "bad request";
	case 401:
		return "authentication failed";
	case 403:
		return "permission denied";
	case 404:
		return "not found";
	case 408:
		return "request timeout";
	case 413:
		return "request too large";
	case 422:
		return "unprocessable request";
	case 429:
		return "rate limited";
	case 500:
		return "provider error";
	case 502:
		return "bad gateway";
	case 503:
		return "service unavailable";
	case 504:
		return "gateway timeout";
	case 529:
		return "overloaded";
	}
	if (status >= 500)
		return "provider error";
	if (status >= 400)
		return "request refused";
	return "unexpected HTTP status";
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Append ": " and s[0..n) as one readable line: trimmed, at most `max`
 * bytes cut on a UTF-8 boundary, control characters as spaces. Nothing
 * if it is blank. */
static void add_line(struct buf *out, const char *s, size_t n, size_t max)
{
	size_t i;
	int cut = 0;

	while (n && is_ws(*s)) {
		s++;
		n--;
	}
	while (n && is_ws(s[n - 1]))
		n--;
	if (!n)
		return;
	if (n > max) {
		n = utf8_cut(s, n, max);
		cut = 1;
	}
	buf_adds(out, ": ");
	for (i = 0; i < n; i++)
		buf_addch(out, (unsigned char)s[i] < 0x20 ? ' ' : s[i]);
	if (cut)
		buf_adds(out, "...");
}

/* The "message" string of a JSON error body that was cut short (the
 * error body of a stream may arrive partially): the raw characters up to
 * the closing quote or the end, escapes left as they are. */
static int partial_message(const char *body, size_t len, const char **s,
			   size_t *n)
{
	static const char key[] = "\"message\"";
	const char *p = body, *end = body + len, *q;

	for (;;) {
		p = memchr(p, '"', (size_t)(end - p));
		if (!p || (size_t)(end - p) < sizeof(key) - 1)
			return 0;
		if (!memcmp(p, key, sizeof(key) - 1))
			break;
		p++;
	}
	p += sizeof(key) - 1;
	while (p < end && (is_ws(*p) || *p == ':'))
		p++;
	if (p == end || *p != '"')
		return 0;
	for (q = ++p; q < end && *q != '"'; q++)
		if (*q == '\\')
			q++;
	*s = p;
	*n = (size_t)((q < end ? q : end) - p);
	return 1;
}

void llm_http_error(enum llm_kind kind, long status, const char *body,
		    size_t len, struct buf *out)
{
	struct json_object *o = NULL, *e;
	const char *msg = NULL, *s;
	size_t n;
	struct apierr ae;

	(void)kind; /* both providers put the text in error.message */
	buf_addf(out, "%s (%ld)", status_words(status), status);
	if (!body || !len)
		return;
	o = jx_parse(body, len, &ae);
	if (o) {
		e = jx_get(o, "error");
		if (json_object_is_type(e, json_type_string))
			msg = json_object_get_string(e);
		else if ((s = jx_gets(e, "message")) != NULL)
			msg = s;
		else
			msg = jx_gets(o, "message");
		if (msg)
			add_line(out, msg, strlen(msg), 300);
	} else if (partial_message(body, len, &s, &n)) {
		add_line(out, s, n, 300);
	} else {
		while (len && is_ws(*body)) {
			body++;
			len--;
		}
		/* plain text from a proxy: its first line. An HTML page says
		 * no more than its status. */
		if (len && *body != '<') {
			const char *nl = memchr(body, '\n', len);
			add_line(out, body, nl ? (size_t)(nl - body) : len,
				 200);
		}
	}
	json_object_put(o);
}
