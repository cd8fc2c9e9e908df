/*
 * wire: fake-llm's scripted responses in the providers' wire formats:
 * the SSE events of a stream (OpenAI chat.completion.chunk data lines,
 * Anthropic named events) and the JSON body of an HTTP error. The
 * fields of a response are described in fake_llm.c.
 */
#include "wire.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct out {
	struct wire_stream *s;
	enum wire w;
	const char *model;
	long delay;
	struct buf b; /* the event being written */
	int raw;      /* strings go out as they are, already JSON-escaped */
};

/* The event in o->b is complete: queue it. */
static void add_piece(struct out *o)
{
	struct wire_stream *s = o->s;
	struct wire_piece *p;
	s->v = xrealloc(s->v, (s->n + 1) * sizeof(*p));
	p = &s->v[s->n++];
	p->data = buf_detach(&o->b, &p->len);
	p->delay_ms = s->n > 1 ? o->delay : 0;
}

void wire_stream_clear(struct wire_stream *s)
{
	size_t i;
	for (i = 0; i < s->n; i++)
		free(s->v[i].data);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

long wire_int(struct json_object *o, const char *key, long def)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return def;
	return (long)json_object_get_int64(v);
}

const char *wire_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Boundaries of part i of n of s, moved off UTF-8 continuation bytes so
 * that every part is valid text. */
static size_t cut_at(const char *s, size_t len, size_t i, size_t n)
{
	size_t k = len * i / n;
	while (k < len && ((unsigned char)s[k] & 0xC0) == 0x80)
		k++;
	return k;
}

static void oa_chunk_start(struct out *o)
{
	buf_adds(&o->b, "data: {\"id\":\"chatcmpl-fake\",\"object\":"
			"\"chat.completion.chunk\",\"created\":1700000000,"
			"\"model\":");
	buf_add_json_str(&o->b, o->model, strlen(o->model));
	buf_adds(&o->b, ",\"choices\":[");
}

static void oa_delta(struct out *o, const char *delta_json, const char *fin)
{
	oa_chunk_start(o);
	buf_addf(&o->b, "{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n",
		 delta_json, fin);
	add_piece(o);
}

static void an_event(struct out *o, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void an_event(struct out *o, const char *name, const char *fmt, ...)
{
	va_list ap;
	buf_addf(&o->b, "event: %s\ndata: ", name);
	va_start(ap, fmt);
	buf_vaddf(&o->b, fmt, ap);
	va_end(ap);
	buf_adds(&o->b, "\n\n");
	add_piece(o);
}

/* Send s in n parts, each as pre + JSON string + post: an OpenAI delta
 * object or the data of an Anthropic content_block_delta. */
static void parts(struct out *o, const char *s, long n, const char *pre,
		  const char *post)
{
	size_t len = strlen(s), i, a, z;
	struct buf d = BUF_INIT;

	if (o->raw) /* one part: a cut could split an escape */
		n = 1;
	for (i = 0, n = n < 1 ? 1 : n; i < (size_t)n; i++) {
		a = cut_at(s, len, i, (size_t)n);
		z = cut_at(s, len, i + 1, (size_t)n);
		if (z == a)
			continue;
		buf_reset(&d);
		buf_adds(&d, pre);
		if (o->raw) {
			buf_addch(&d, '"');
			buf_add(&d, s + a, z - a);
			buf_addch(&d, '"');
		} else {
			buf_add_json_str(&d, s + a, z - a);
		}
		buf_adds(&d, post);
		if (o->w == W_OPENAI)
			oa_delta(o, d.data, "null");
		else
			an_event(o, "content_block_delta", "%s", d.data);
	}
	buf_release(&d);
}

static void an_block_stop(struct out *o, int idx)
{
	an_event(o, "content_block_stop",
		 "{\"type\":\"content_block_stop\",\"index\":%d}", idx);
}

/* A text or thinking block: OpenAI delta field `field`, or an Anthropic
 * block of that type at index idx. */
static void block(struct out *o, const char *s, long n, const char *field,
		  const char *type, int idx)
{
	struct buf pre = BUF_INIT;

	if (o->w == W_OPENAI) {
		buf_addf(&pre, "{\"%s\":", field);
		parts(o, s, n, pre.data, "}");
		buf_release(&pre);
		return;
	}
	an_event(o, "content_block_start",
		 "{\"type\":\"content_block_start\",\"index\":%d,"
		 "\"content_block\":{\"type\":\"%s\",\"%s\":\"\"}}",
		 idx, type, type);
	buf_addf(&pre,
		 "{\"type\":\"content_block_delta\",\"index\":%d,"
		 "\"delta\":{\"type\":\"%s_delta\",\"%s\":",
		 idx, type, type);
	parts(o, s, n, pre.data, "}}");
	if (!strcmp(type, "thinking"))
		an_event(o, "content_block_delta",
			 "{\"type\":\"content_block_delta\",\"index\":%d,"
			 "\"delta\":{\"type\":\"signature_delta\","
			 "\"signature\":\"ZmFrZS1zaWduYXR1cmU=\"}}",
			 idx);
	an_block_stop(o, idx);
	buf_release(&pre);
}

/* Tool call number idx (content block blk): its start, then its
 * arguments in `split` fragments. */
static void tool_call(struct out *o, struct json_object *tc, long split,
		      int idx, int blk)
{
	const char *id = wire_str(tc, "id"), *name = wire_str(tc, "name");
	const char *args = wire_str(tc, "arguments");
	struct buf d = BUF_INIT;

	id = id ? id : "call_fake";
	name = name ? name : "tool";
	if (o->w == W_OPENAI)
		buf_addf(&d, "{\"tool_calls\":[{\"index\":%d,\"id\":", idx);
	else
		buf_addf(&d,
			 "{\"type\":\"content_block_start\",\"index\":%d,"
			 "\"content_block\":{\"type\":\"tool_use\",\"id\":",
			 blk);
	buf_add_json_str(&d, id, strlen(id));
	buf_adds(&d, o->w == W_OPENAI ? ",\"type\":\"function\",\"function\":"
					"{\"name\":"
				      : ",\"name\":");
	buf_add_json_str(&d, name, strlen(name));
	if (o->w == W_OPENAI) {
		buf_adds(&d, ",\"arguments\":\"\"}}]}");
		oa_delta(o, d.data, "null");
	} else {
		buf_adds(&d, ",\"input\":{}}}");
		an_event(o, "content_block_start", "%s", d.data);
	}
	buf_reset(&d);
	if (o->w == W_OPENAI)
		buf_addf(&d,
			 "{\"tool_calls\":[{\"index\":%d,\"function\":"
			 "{\"arguments\":",
			 idx);
	else
		buf_addf(&d,
			 "{\"type\":\"content_block_delta\",\"index\":%d,"
			 "\"delta\":{\"type\":\"input_json_delta\","
			 "\"partial_json\":",
			 blk);
	parts(o, args ? args : "{}", split, d.data,
	      o->w == W_OPENAI ? "}}]}" : "}}");
	if (o->w == W_ANTHROPIC)
		an_block_stop(o, blk);
	buf_release(&d);
}

static void stream_start(struct out *o, long in)
{
	struct buf m = BUF_INIT;

	if (o->w == W_OPENAI) {
		oa_delta(o, "{\"role\":\"assistant\",\"content\":\"\"}",
			 "null");
		return;
	}
	buf_add_json_str(&m, o->model, strlen(o->model));
	an_event(o, "message_start",
		 "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_fake\","
		 "\"type\":\"message\",\"role\":\"assistant\",\"model\":%s,"
		 "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
		 "\"usage\":{\"input_tokens\":%ld,\"output_tokens\":1}}}",
		 m.data, in);
	buf_release(&m);
	an_event(o, "ping", "{\"type\": \"ping\"}");
}

/* A provider failing mid-stream: its error event ends the stream. The
 * same data serves OpenAI, whose chunks signal errors by an "error"
 * key. */
static void stream_error(struct out *o, struct json_object *se)
{
	const char *t = wire_str(se, "type"), *m = wire_str(se, "message");
	struct buf j = BUF_INIT;

	t = t ? t : "overloaded_error";
	m = m ? m : "Overloaded";
	buf_add_json_str(&j, t, strlen(t));
	buf_adds(&j, ",\"message\":");
	buf_add_json_str(&j, m, strlen(m));
	an_event(o, "error", "{\"type\":\"error\",\"error\":{\"type\":%s}}",
		 j.data);
	buf_release(&j);
}

static void stream_end(struct out *o, struct json_object *req, int tools,
		       long in, long out)
{
	struct json_object *so = NULL;

	if (o->w == W_ANTHROPIC) {
		an_event(o, "message_delta",
			 "{\"type\":\"message_delta\",\"delta\":{"
			 "\"stop_reason\":\"%s\",\"stop_sequence\":null},"
			 "\"usage\":{\"output_tokens\":%ld}}",
			 tools ? "tool_use" : "end_turn", out);
		an_event(o, "message_stop", "{\"type\":\"message_stop\"}");
		return;
	}
	oa_delta(o, "{}", tools ? "\"tool_calls\"" : "\"stop\"");
	/* like OpenAI: the usage chunk only when asked for */
	json_object_object_get_ex(req, "stream_options", &so);
	so = json_object_object_get(so, "include_usage");
	if (json_object_get_boolean(so)) {
		oa_chunk_start(o);
		buf_addf(&o->b,
			 "],\"usage\":{\"prompt_tokens\":%ld,"
			 "\"completion_tokens\":%ld,"
			 "\"total_tokens\":%ld}}\n\n",
			 in, out, in + out);
		add_piece(o);
	}
	buf_adds(&o->b, "data: [DONE]\n\n");
	add_piece(o);
}

void wire_render(struct wire_stream *s, enum wire w, struct json_object *r,
		 struct json_object *req, const char *model)
{
	struct out o = {s, w, model, wire_int(r, "delay_ms", 0), BUF_INIT, 0};
	struct json_object *tcs = NULL, *usage = NULL, *se = NULL;
	const char *text = wire_str(r, "text");
	const char *thinking = wire_str(r, "thinking");
	long chunks = wire_int(r, "chunks", 1), in, out;
	int blk = 0;
	size_t i, ntc = 0;

	buf_init(&o.b, 0);
	o.raw = (int)wire_int(r, "raw", 0);
	json_object_object_get_ex(r, "tool_calls", &tcs);
	json_object_object_get_ex(r, "usage", &usage);
	json_object_object_get_ex(r, "stream_error", &se);
	if (json_object_is_type(tcs, json_type_array))
		ntc = json_object_array_length(tcs);
	if (!text && !ntc && !thinking)
		text = "ok";
	in = wire_int(usage, "input", 10);
	out = wire_int(usage, "output", 5);
	stream_start(&o, in);
	if (wire_int(r, "malformed", 0))
		an_event(&o, "message", "{\"this is\": not JSON");
	if (thinking)
		block(&o, thinking, chunks, "reasoning_content", "thinking",
		      blk++);
	if (text)
		block(&o, text, chunks, "content", "text", blk++);
	for (i = 0; i < ntc; i++)
		tool_call(&o, json_object_array_get_idx(tcs, i),
			  wire_int(r, "split", 1), (int)i, blk++);
	if (se)
		stream_error(&o, se);
	else
		stream_end(&o, req, ntc > 0, in, out);
	buf_release(&o.b);
}

void wire_error_body(enum wire w, int status, struct json_object *r,
		     struct buf *out)
{
	const char *body = wire_str(r, "body");
	const char *type = status == 429   ? "rate_limit_error"
			   : status == 529 ? "overloaded_error"
			   : status == 401 ? "authentication_error"
			   : status >= 500 ? "api_error"
					   : "invalid_request_error";

	if (body) {
		buf_adds(out, body);
	} else if (w == W_ANTHROPIC) {
		buf_addf(out,
			 "{\"type\":\"error\",\"error\":{\"type\":\"%s\","
			 "\"message\":\"fake error %d\"}}",
			 type, status);
	} else {
		buf_addf(out,
			 "{\"error\":{\"message\":\"fake error %d\","
			 "\"type\":\"%s\",\"param\":null,\"code\":null}}",
			 status, type);
	}
}
