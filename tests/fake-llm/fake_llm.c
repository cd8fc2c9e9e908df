/*
 * fake-llm: a scripted stand-in for the OpenAI Chat Completions and
 * Anthropic Messages streaming APIs, for tests and benchmarks.
 *
 *   fake-llm PORT        (0: pick a free port and print "PORT <n>")
 *
 * One thread, non-blocking sockets and poll(), so a thousand slow streams
 * cost a thousand file descriptors and nothing more. HTTP/1.1 with
 * keep-alive; streams use chunked encoding as the real providers do.
 *
 * Provider endpoints: POST /v1/chat/completions and /chat/completions
 * (OpenAI wire format), POST /v1/messages (Anthropic). Each request pops
 * the next scripted response of its model (the body's "model"), or
 * answers "ok". Control endpoints:
 *   POST /_script   {"model":M,"responses":[R,...]} appends to M's queue
 *   GET  /_requests?model=M   [{model,path,headers,body,completed,
 *                               client_disconnected}] in arrival order
 *   POST /_reset    forget every script and request
 * A response R combines: "text", "chunks" (deltas, default 1),
 * "thinking", "tool_calls" [{id,name,arguments}], "split" (fragments per
 * arguments string, default 1), "delay_ms" (between events), "usage"
 * {input,output}, "status"+"body" (an HTTP error instead),
 * "hang_after_headers", "cut_after_chunks" N (close after N events),
 * "malformed" (a non-JSON data line after the first event) and
 * "stream_error" {type,message} (an error event ending the stream).
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "apierr.h"
#include "buf.h"
#include "json.h"

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (64L * 1024 * 1024)

enum wire { W_OPENAI, W_ANTHROPIC };

/* One provider request, kept for GET /_requests. A reset while its
 * response is still going leaves it to the connection to free. */
struct rec {
	char *model, *path;
	struct json_object *headers, *body;
	int completed, disconnected;
	int live, orphan;
};

struct piece {
	char *data;
	size_t len;
	long delay_ms; /* wait before sending it */
};

struct conn {
	int fd;
	struct buf in, out;
	size_t out_off;
	int streaming;	    /* a response is under way */
	int chunked, hang, close_after, sent_continue;
	struct piece *pieces;
	size_t npieces, next;
	long cut_after; /* close after this many pieces; -1: never */
	long long due;	/* when pieces[next] may go */
	struct rec *rec;
};

struct script {
	char *model;
	struct json_object *queue; /* array of responses */
	size_t head;
};

static struct conn **conns;
static size_t nconns;
static struct script *scripts;
static size_t nscripts;
static struct rec **recs;
static size_t nrecs;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rec_free(struct rec *r)
{
	free(r->model);
	free(r->path);
	json_object_put(r->headers);
	json_object_put(r->body);
	free(r);
}

static void add_piece(struct conn *c, struct buf *b, long delay)
{
	struct piece *p;
	c->pieces = xrealloc(c->pieces, (c->npieces + 1) * sizeof(*p));
	p = &c->pieces[c->npieces++];
	p->data = buf_detach(b, &p->len);
	p->delay_ms = c->npieces > 1 ? delay : 0;
}

static void clear_pieces(struct conn *c)
{
	size_t i;
	for (i = 0; i < c->npieces; i++)
		free(c->pieces[i].data);
	free(c->pieces);
	c->pieces = NULL;
	c->npieces = c->next = 0;
}

/* A complete non-streamed answer. */
static void reply(struct conn *c, int status, const char *type,
		  const char *body, size_t len)
{
	buf_addf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			  "Content-Length: %zu\r\n%s\r\n",
		 status, http_reason(status), type, len,
		 c->close_after ? "Connection: close\r\n" : "");
	buf_add(&c->out, body, len);
	c->streaming = 1;
	c->chunked = 0;
}

static void reply_s(struct conn *c, int status, const char *body)
{
	reply(c, status, "application/json", body, strlen(body));
}

static void reply_json(struct conn *c, int status, struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	reply(c, status, "application/json", s, strlen(s));
	json_object_put(o);
}

/* --- rendering a scripted response ---------------------------------- */

static long jint(struct json_object *o, const char *key, long def)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return def;
	return (long)json_object_get_int64(v);
}

static const char *jstr(struct json_object *o, const char *key)
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

struct out {
	struct conn *c;
	enum wire w;
	const char *model;
	long delay;
	struct buf b;
};

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
	add_piece(o->c, &o->b, o->delay);
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
	add_piece(o->c, &o->b, o->delay);
}

/* Send s in n parts, each as pre + JSON string + post: an OpenAI delta
 * object or the data of an Anthropic content_block_delta. */
static void parts(struct out *o, const char *s, long n, const char *pre,
		  const char *post)
{
	size_t len = strlen(s), i, a, z;
	struct buf d = BUF_INIT;

	buf_init(&d, 0);
	for (i = 0, n = n < 1 ? 1 : n; i < (size_t)n; i++) {
		a = cut_at(s, len, i, (size_t)n);
		z = cut_at(s, len, i + 1, (size_t)n);
		if (z == a)
			continue;
		buf_reset(&d);
		buf_adds(&d, pre);
		buf_add_json_str(&d, s + a, z - a);
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
 * block of type `block` at index idx. */
static void block(struct out *o, const char *s, long n, const char *field,
		  const char *block, int idx)
{
	struct buf pre = BUF_INIT;

	buf_init(&pre, 0);
	if (o->w == W_OPENAI) {
		buf_addf(&pre, "{\"%s\":", field);
		parts(o, s, n, pre.data, "}");
		buf_release(&pre);
		return;
	}
	an_event(o, "content_block_start",
		 "{\"type\":\"content_block_start\",\"index\":%d,"
		 "\"content_block\":{\"type\":\"%s\",\"%s\":\"\"}}",
		 idx, block, block);
	buf_addf(&pre, "{\"type\":\"content_block_delta\",\"index\":%d,"
		       "\"delta\":{\"type\":\"%s_delta\",\"%s\":",
		 idx, block, block);
	parts(o, s, n, pre.data, "}}");
	if (!strcmp(block, "thinking"))
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
	const char *id = jstr(tc, "id"), *name = jstr(tc, "name");
	const char *args = jstr(tc, "arguments");
	struct buf d = BUF_INIT;

	buf_init(&d, 0);
	id = id ? id : "call_fake";
	name = name ? name : "tool";
	if (o->w == W_OPENAI)
		buf_addf(&d, "{\"tool_calls\":[{\"index\":%d,\"id\":", idx);
	else
		buf_addf(&d, "{\"type\":\"content_block_start\",\"index\":%d,"
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
		buf_addf(&d, "{\"tool_calls\":[{\"index\":%d,\"function\":"
			     "{\"arguments\":",
			 idx);
	else
		buf_addf(&d, "{\"type\":\"content_block_delta\",\"index\":%d,"
			     "\"delta\":{\"type\":\"input_json_delta\","
			     "\"partial_json\":",
			 blk);
	parts(o, args ? args : "{}", split, d.data,
	      o->w == W_OPENAI ? "}}]}" : "}}");
	if (o->w == W_ANTHROPIC)
		an_block_stop(o, blk);
	buf_release(&d);
}

static void render_stream(struct conn *c, enum wire w, struct json_object *r,
			  struct json_object *req, const char *model)
{
	struct out o = {c, w, model, jint(r, "delay_ms", 0), BUF_INIT};
	struct json_object *tcs = NULL, *usage = NULL, *se = NULL, *so = NULL;
	const char *text = jstr(r, "text"), *thinking = jstr(r, "thinking");
	long chunks = jint(r, "chunks", 1), in, out;
	int blk = 0;
	size_t i, ntc = 0;

	buf_init(&o.b, 0);
	json_object_object_get_ex(r, "tool_calls", &tcs);
	json_object_object_get_ex(r, "usage", &usage);
	json_object_object_get_ex(r, "stream_error", &se);
	if (json_object_is_type(tcs, json_type_array))
		ntc = json_object_array_length(tcs);
	if (!text && !ntc && !thinking)
		text = "ok";
	in = jint(usage, "input", 10);
	out = jint(usage, "output", 5);
	if (w == W_OPENAI) {
		oa_delta(&o, "{\"role\":\"assistant\",\"content\":\"\"}", "null");
	} else {
		struct buf m = BUF_INIT;
		buf_init(&m, 0);
		buf_add_json_str(&m, model, strlen(model));
		an_event(&o, "message_start",
			 "{\"type\":\"message_start\",\"message\":{\"id\":"
			 "\"msg_fake\",\"type\":\"message\",\"role\":\"assistant\","
			 "\"model\":%s,\"content\":[],\"stop_reason\":null,"
			 "\"stop_sequence\":null,\"usage\":{\"input_tokens\":%ld,"
			 "\"output_tokens\":1}}}",
			 m.data, in);
		buf_release(&m);
		an_event(&o, "ping", "{\"type\": \"ping\"}");
	}
	if (jint(r, "malformed", 0))
		an_event(&o, "message", "{\"this is\": not JSON");
	if (thinking)
		block(&o, thinking, chunks, "reasoning_content", "thinking", blk++);
	if (text)
		block(&o, text, chunks, "content", "text", blk++);
	for (i = 0; i < ntc; i++)
		tool_call(&o, json_object_array_get_idx(tcs, i),
			  jint(r, "split", 1), (int)i, blk++);
	if (se) {
		/* a provider failing mid-stream: its error, then the end */
		const char *t = jstr(se, "type"), *m = jstr(se, "message");
		struct buf j = BUF_INIT;
		t = t ? t : "overloaded_error";
		m = m ? m : "Overloaded";
		buf_init(&j, 0);
		buf_add_json_str(&j, t, strlen(t));
		buf_adds(&j, ",\"message\":");
		buf_add_json_str(&j, m, strlen(m));
		an_event(&o, "error", "{\"type\":\"error\",\"error\":{\"type\":%s}}",
			 j.data);
		buf_release(&j);
	} else if (w == W_OPENAI) {
		oa_delta(&o, "{}", ntc ? "\"tool_calls\"" : "\"stop\"");
		/* like OpenAI: the usage chunk only when asked for */
		json_object_object_get_ex(req, "stream_options", &so);
		if (json_object_get_boolean(json_object_object_get(so, "include_usage"))) {
			oa_chunk_start(&o);
			buf_addf(&o.b, "],\"usage\":{\"prompt_tokens\":%ld,"
				       "\"completion_tokens\":%ld,\"total_tokens\":%ld}}\n\n",
				 in, out, in + out);
			add_piece(c, &o.b, o.delay);
		}
		buf_adds(&o.b, "data: [DONE]\n\n");
		add_piece(c, &o.b, o.delay);
	} else {
		an_event(&o, "message_delta",
			 "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
			 "\"%s\",\"stop_sequence\":null},\"usage\":{"
			 "\"output_tokens\":%ld}}",
			 ntc ? "tool_use" : "end_turn", out);
		an_event(&o, "message_stop", "{\"type\":\"message_stop\"}");
	}
	buf_release(&o.b);
}

/* --- endpoints ------------------------------------------------------ */

static struct script *script_for(const char *model, int create)
{
	size_t i;
	for (i = 0; i < nscripts; i++)
		if (!strcmp(scripts[i].model, model))
			return &scripts[i];
	if (!create)
		return NULL;
	scripts = xrealloc(scripts, (nscripts + 1) * sizeof(*scripts));
	scripts[nscripts].model = xstrdup(model);
	scripts[nscripts].queue = json_object_new_array();
	scripts[nscripts].head = 0;
	return &scripts[nscripts++];
}

/* The next scripted response of model (a new reference), or NULL. */
static struct json_object *pop_response(const char *model)
{
	struct script *s = script_for(model, 0);
	if (!s || s->head >= json_object_array_length(s->queue))
		return NULL;
	return json_object_get(json_object_array_get_idx(s->queue, s->head++));
}

static void error_reply(struct conn *c, enum wire w, int status,
			struct json_object *r)
{
	const char *body = jstr(r, "body");
	const char *type = status == 429	? "rate_limit_error"
			   : status == 529	? "overloaded_error"
			   : status == 401	? "authentication_error"
			   : status >= 500	? "api_error"
						: "invalid_request_error";
	struct buf b = BUF_INIT;

	buf_init(&b, 0);
	if (body) {
		buf_adds(&b, body);
	} else if (w == W_ANTHROPIC) {
		buf_addf(&b, "{\"type\":\"error\",\"error\":{\"type\":\"%s\","
			     "\"message\":\"fake error %d\"}}",
			 type, status);
	} else {
		buf_addf(&b, "{\"error\":{\"message\":\"fake error %d\","
			     "\"type\":\"%s\",\"param\":null,\"code\":null}}",
			 status, type);
	}
	reply(c, status, "application/json", b.data, b.len);
	buf_release(&b);
}

static void provider(struct conn *c, enum wire w, const char *path,
		     struct json_object *headers, const char *body, size_t len)
{
	struct apierr e;
	struct json_object *req = jx_parse(body, len, &e), *r;
	const char *model = jstr(req, "model");
	struct rec *rec = xcalloc(1, sizeof(*rec));
	long status;

	rec->model = xstrdup(model ? model : "");
	rec->path = xstrdup(path);
	rec->headers = headers;
	rec->body = req;
	rec->live = 1;
	recs = xrealloc(recs, (nrecs + 1) * sizeof(*recs));
	recs[nrecs++] = rec;
	c->rec = rec;
	if (!req) {
		reply_s(c, 400, "{\"error\":\"bad json\"}");
		return;
	}
	r = pop_response(rec->model);
	if (!r)
		r = json_tokener_parse("{\"text\":\"ok\"}");
	status = jint(r, "status", 200);
	if (status != 200) {
		error_reply(c, w, (int)status, r);
	} else {
		buf_adds(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: "
				  "text/event-stream\r\nCache-Control: no-cache\r\n"
				  "Transfer-Encoding: chunked\r\n");
		if (c->close_after)
			buf_adds(&c->out, "Connection: close\r\n");
		buf_adds(&c->out, "\r\n");
		c->streaming = 1;
		c->chunked = 1;
		c->hang = (int)jint(r, "hang_after_headers", 0);
		c->cut_after = jint(r, "cut_after_chunks", -1);
		if (!c->hang)
			render_stream(c, w, r, req, rec->model);
		c->due = now_ms();
	}
	json_object_put(r);
}

static void control(struct conn *c, const char *method, const char *path,
		    const char *query, const char *body, size_t len)
{
	struct apierr e;
	struct json_object *o, *resp, *arr;
	struct script *s;
	size_t i;

	if (!strcmp(method, "POST") && !strcmp(path, "/_script")) {
		o = jx_parse(body, len, &e);
		if (!jstr(o, "model") ||
		    !json_object_object_get_ex(o, "responses", &arr) ||
		    !json_object_is_type(arr, json_type_array)) {
			json_object_put(o);
			reply_s(c, 400, "{\"error\":\"want {model, responses}\"}");
			return;
		}
		s = script_for(jstr(o, "model"), 1);
		for (i = 0; i < json_object_array_length(arr); i++)
			json_object_array_add(
				s->queue,
				json_object_get(json_object_array_get_idx(arr, i)));
		resp = json_object_new_object();
		json_object_object_add(
			resp, "queued",
			json_object_new_int64((int64_t)(json_object_array_length(s->queue) -
							s->head)));
		json_object_put(o);
		reply_json(c, 200, resp);
	} else if (!strcmp(method, "GET") && !strcmp(path, "/_requests")) {
		char model[512] = "";
		const char *q = query ? strstr(query, "model=") : NULL;
		size_t k = 0;
		/* the value, %-decoded */
		for (q = q ? q + 6 : ""; *q && *q != '&' && k + 1 < sizeof(model); q++) {
			unsigned int ch;
			if (*q == '%' && sscanf(q + 1, "%2x", &ch) == 1) {
				model[k++] = (char)ch;
				q += 2;
			} else {
				model[k++] = *q == '+' ? ' ' : *q;
			}
		}
		model[k] = '\0';
		resp = json_object_new_array();
		for (i = 0; i < nrecs; i++) {
			struct rec *r = recs[i];
			if (*model && strcmp(r->model, model))
				continue;
			o = json_object_new_object();
			json_object_object_add(o, "model", json_object_new_string(r->model));
			json_object_object_add(o, "path", json_object_new_string(r->path));
			json_object_object_add(o, "headers", json_object_get(r->headers));
			json_object_object_add(o, "body", json_object_get(r->body));
			json_object_object_add(o, "completed",
					       json_object_new_boolean(r->completed));
			json_object_object_add(o, "client_disconnected",
					       json_object_new_boolean(r->disconnected));
			json_object_array_add(resp, o);
		}
		reply_json(c, 200, resp);
	} else if (!strcmp(method, "POST") && !strcmp(path, "/_reset")) {
		for (i = 0; i < nscripts; i++) {
			free(scripts[i].model);
			json_object_put(scripts[i].queue);
		}
		free(scripts);
		scripts = NULL;
		nscripts = 0;
		for (i = 0; i < nrecs; i++) {
			if (recs[i]->live)
				recs[i]->orphan = 1;
			else
				rec_free(recs[i]);
		}
		free(recs);
		recs = NULL;
		nrecs = 0;
		reply_s(c, 200, "{\"ok\":true}");
	} else {
		reply_s(c, 404, "{\"error\":\"not found\"}");
	}
}

/* --- HTTP ----------------------------------------------------------- */

/* Parse and answer one request from c->in. Returns 1 if one was taken,
 * 0 if more bytes are needed, -1 to close the connection. */
static int take_request(struct conn *c)
{
	char *end = strstr(c->in.data, "\r\n\r\n"), *line, *next, *sp, *q;
	char method[16], target[2048], version[16];
	struct json_object *headers;
	long clen = 0;
	size_t head, total;
	int expect = 0;

	if (!end)
		return c->in.len > MAX_HEAD ? -1 : 0;
	head = (size_t)(end - c->in.data) + 4;
	if (sscanf(c->in.data, "%15s %2047s %15s", method, target, version) != 3)
		return -1;
	c->close_after = !strcmp(version, "HTTP/1.0");
	headers = json_object_new_object();
	line = strstr(c->in.data, "\r\n") + 2;
	/* the head is parsed in place and put back as it was, since a
	 * request whose body is still on its way is parsed again */
	for (; line < end; line = next + 2) {
		char *colon, *p;
		next = strstr(line, "\r\n");
		*next = '\0';
		colon = strchr(line, ':');
		if (colon) {
			*colon = '\0';
			for (p = line; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			for (sp = colon + 1; *sp == ' '; sp++)
				;
			json_object_object_add(headers, line,
					       json_object_new_string(sp));
			if (!strcmp(line, "content-length"))
				clen = strtol(sp, NULL, 10);
			else if (!strcmp(line, "connection"))
				c->close_after = !strcasecmp(sp, "close");
			else if (!strcmp(line, "expect"))
				expect = !strcasecmp(sp, "100-continue");
			else if (!strcmp(line, "transfer-encoding"))
				clen = -1;
			*colon = ':';
		}
		*next = '\r';
	}
	if (clen < 0 || clen > MAX_BODY) {
		json_object_put(headers);
		c->close_after = 1;
		reply(c, clen < 0 ? 411 : 413, "text/plain", "", 0);
		buf_reset(&c->in);
		return 1;
	}
	total = head + (size_t)clen;
	if (c->in.len < total) {
		json_object_put(headers);
		if (expect && !c->sent_continue) {
			buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
			c->sent_continue = 1;
		}
		return 0;
	}
	c->sent_continue = 0;
	q = strchr(target, '?');
	if (q)
		*q++ = '\0';
	if (!strcmp(method, "POST") && (!strcmp(target, "/v1/chat/completions") ||
					!strcmp(target, "/chat/completions")))
		provider(c, W_OPENAI, target, headers, c->in.data + head, (size_t)clen);
	else if (!strcmp(method, "POST") && !strcmp(target, "/v1/messages"))
		provider(c, W_ANTHROPIC, target, headers, c->in.data + head,
			 (size_t)clen);
	else {
		json_object_put(headers);
		control(c, method, target, q, c->in.data + head, (size_t)clen);
	}
	memmove(c->in.data, c->in.data + total, c->in.len - total);
	c->in.len -= total;
	c->in.data[c->in.len] = '\0';
	return 1;
}

static void conn_close(size_t i, int by_client)
{
	struct conn *c = conns[i];
	if (c->rec) {
		c->rec->live = 0;
		if (by_client && !c->rec->completed)
			c->rec->disconnected = 1;
		if (c->rec->orphan)
			rec_free(c->rec);
	}
	close(c->fd);
	clear_pieces(c);
	buf_release(&c->in);
	buf_release(&c->out);
	free(c);
	conns[i] = conns[--nconns];
}

/* Move what is due to the socket. Returns -1 if the connection must be
 * closed (1 in *by_client if the client went away). */
static int pump(struct conn *c, long long now, int *by_client)
{
	for (;;) {
		while (c->out_off < c->out.len) {
			ssize_t n = send(c->fd, c->out.data + c->out_off,
					 c->out.len - c->out_off, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
			if (n < 0) {
				*by_client = 1;
				return -1;
			}
			c->out_off += (size_t)n;
		}
		buf_reset(&c->out);
		c->out_off = 0;
		if (!c->streaming || c->hang)
			return 0;
		if (c->cut_after >= 0 && c->next == (size_t)c->cut_after)
			return -1;
		if (c->next < c->npieces) {
			struct piece *p = &c->pieces[c->next];
			if (c->due > now)
				return 0;
			buf_addf(&c->out, "%zx\r\n", p->len);
			buf_add(&c->out, p->data, p->len);
			buf_adds(&c->out, "\r\n");
			if (++c->next < c->npieces)
				c->due = now + c->pieces[c->next].delay_ms;
			continue;
		}
		if (c->chunked) {
			buf_adds(&c->out, "0\r\n\r\n");
			c->chunked = 0;
			continue;
		}
		/* the response is complete */
		if (c->rec) {
			c->rec->completed = 1;
			c->rec->live = 0;
			if (c->rec->orphan)
				rec_free(c->rec);
			c->rec = NULL;
		}
		clear_pieces(c);
		c->streaming = 0;
		if (c->close_after)
			return -1;
		switch (take_request(c)) {
		case -1:
			return -1;
		case 0:
			return 0;
		}
	}
}

static void serve(int lfd)
{
	struct pollfd *pfd = NULL;
	size_t cap = 0, i;

	for (;;) {
		long long now = now_ms();
		int timeout = -1;

		if (cap < nconns + 1) {
			cap = 2 * (nconns + 1);
			pfd = xrealloc(pfd, cap * sizeof(*pfd));
		}
		pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (i = 0; i < nconns; i++) {
			struct conn *c = conns[i];
			pfd[i + 1] = (struct pollfd){
				.fd = c->fd,
				.events = (short)(POLLIN |
						  (c->out.len ? POLLOUT : 0))};
			if (c->streaming && !c->hang && !c->out.len &&
			    c->next < c->npieces) {
				long long w = c->due > now ? c->due - now : 0;
				if (timeout < 0 || w < timeout)
					timeout = (int)w;
			}
		}
		if (poll(pfd, nconns + 1, timeout) < 0 && errno != EINTR) {
			perror("fake-llm: poll");
			exit(1);
		}
		now = now_ms();
		/* backwards, since closing moves the last connection into
		 * the freed slot; new connections go after those polled */
		for (i = nconns; i-- > 0;) {
			struct conn *c = conns[i];
			int by_client = 0, rc = 0;
			if (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) {
				char tmp[16384];
				ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
				if (n == 0 || (n < 0 && errno != EAGAIN &&
					       errno != EINTR)) {
					conn_close(i, 1);
					continue;
				}
				if (n > 0)
					buf_add(&c->in, tmp, (size_t)n);
				if (!c->streaming)
					rc = take_request(c);
			}
			if (rc >= 0)
				rc = pump(c, now, &by_client);
			if (rc < 0)
				conn_close(i, by_client);
		}
		if (pfd[0].revents & POLLIN) {
			for (;;) {
				int fd = accept4(lfd, NULL, NULL,
						 SOCK_NONBLOCK | SOCK_CLOEXEC);
				struct conn *c;
				if (fd < 0) {
					if (errno == EMFILE || errno == ENFILE)
						fprintf(stderr, "fake-llm: out of "
								"file descriptors\n");
					break;
				}
				c = xcalloc(1, sizeof(*c));
				c->fd = fd;
				c->cut_after = -1;
				buf_init(&c->in, 1024);
				buf_init(&c->out, 0);
				conns = xrealloc(conns, (nconns + 1) * sizeof(*conns));
				conns[nconns++] = c;
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	struct rlimit rl;
	int lfd, one = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: fake-llm PORT (0: any)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* many slow streams need many descriptors */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	a.sin_port = htons((unsigned short)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4096) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen)) {
		perror("fake-llm");
		return 1;
	}
	printf("PORT %d\n", ntohs(a.sin_port));
	fflush(stdout);
	serve(lfd);
	return 0;
}
