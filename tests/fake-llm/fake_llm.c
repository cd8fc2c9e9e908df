/*
 * fake-llm: a scripted stand-in for the OpenAI Chat Completions and
 * Anthropic Messages streaming APIs, for tests and benchmarks.
 *
 *   fake-llm PORT        (0: any free port)
 *
 * prints "PORT <n>" on stdout once it listens, and nothing else there.
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
 * {input,output} (default 10 and 5; OpenAI sends it only when asked
 * with stream_options.include_usage), "status"+"body" (an HTTP error
 * instead; without a body, the provider's usual error JSON),
 * "hang_after_headers", "cut_after_chunks" N (close after N events,
 * message_start/role chunk and ping included),
 * "malformed" (a non-JSON data line after the first event),
 * "stream_error" {type,message} (an error event ending the stream),
 * "raw_b64" (these bytes, base64, are the whole body instead of the
 * rendered events, in chunks of 64 KiB) with "content_encoding" (its
 * Content-Encoding header, e.g. "gzip" for a body the test compressed),
 * and "raw" (1: text, thinking and arguments are sent as they are between
 * the quotes, already JSON-escaped, in one part: for escapes such as
 * \u0000 or a lone \ud800 that a provider might send).
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "apierr.h"
#include "buf.h"
#include "json.h"
#include "wire.h"

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (64L * 1024 * 1024)

/* One provider request as GET /_requests shows it: {model, path,
 * headers, body, completed, client_disconnected}. A reset while its
 * response is still going leaves it to the connection to free. */
struct rec {
	struct json_object *o;
	int live, orphan;
};

struct conn {
	int fd;
	struct buf in, out;
	size_t out_off; /* of out, sent already */
	int streaming;  /* a response is under way */
	int chunked, hang, close_after, sent_continue;
	struct wire_stream ev; /* the events of the response */
	size_t next;           /* the next event to send */
	long cut_after;        /* close after this many events; -1: never */
	long long due;         /* when ev.v[next] may go */
	struct rec *rec;       /* of the provider request being answered */
};

static struct conn **conns;
static size_t nconns;
static struct json_object *scripts; /* model -> array of responses */
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
	json_object_put(r->o);
	free(r);
}

/* The response of r ended; flag: what to set true ("completed" ...). */
static void rec_end(struct rec *r, const char *flag)
{
	if (flag)
		json_object_object_add(r->o, flag, json_object_new_boolean(1));
	r->live = 0;
	if (r->orphan)
		rec_free(r);
}

static void clear_events(struct conn *c)
{
	wire_stream_clear(&c->ev);
	c->next = 0;
}

/* A complete non-streamed answer. */
static void reply(struct conn *c, int status, const char *type,
		  const char *body, size_t len)
{
	buf_addf(&c->out,
		 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
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
	const char *s;
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	reply(c, status, "application/json", s, strlen(s));
	json_object_put(o);
}

/* --- endpoints ------------------------------------------------------ */

/* The next scripted response of model (a new reference), or NULL. */
static struct json_object *pop_response(const char *model)
{
	struct json_object *q = json_object_object_get(scripts, model), *r;
	if (!q || !json_object_array_length(q))
		return NULL;
	r = json_object_get(json_object_array_get_idx(q, 0));
	json_object_array_del_idx(q, 0, 1);
	return r;
}

/* A parsed request; everything points into the connection's buffer. */
struct req {
	const char *method, *path, *query, *body;
	size_t len;
	struct json_object *headers; /* owned until a handler takes it */
};

/* The bytes of base64 text b64 as pieces of at most 64 KiB. */
static void raw_pieces(struct wire_stream *s, const char *b64)
{
	size_t n = strlen(b64) / 4 * 3, off;
	unsigned char *all = xmalloc(n + 3);
	int got = EVP_DecodeBlock(all, (const unsigned char *)b64,
				  (int)(n / 3 * 4));

	n = got < 0 ? 0 : (size_t)got;
	/* EVP_DecodeBlock counts the padding as bytes */
	for (off = strlen(b64); off && b64[off - 1] == '=' && n; off--)
		n--;
	s->v = xrealloc(s->v, (s->n + n / 65536 + 1) * sizeof(*s->v));
	for (off = 0; off < n; off += 65536) {
		struct wire_piece *p = &s->v[s->n++];
		p->len = n - off < 65536 ? n - off : 65536;
		p->data = xmalloc(p->len);
		memcpy(p->data, all + off, p->len);
		p->delay_ms = 0;
	}
	free(all);
}

static void provider(struct conn *c, enum wire w, struct req *q)
{
	struct apierr e;
	/* providers read deeper JSON than our API takes: a history may
	 * carry tool arguments nested as deep as the API allows, a few
	 * levels down in the request */
	struct json_object *req = jx_parse_depth(q->body, q->len, 128, &e), *r;
	const char *model = wire_str(req, "model");
	struct rec *rec = xcalloc(1, sizeof(*rec));

	rec->o = json_object_new_object();
	json_object_object_add(rec->o, "model",
			       json_object_new_string(model ? model : ""));
	json_object_object_add(rec->o, "path", json_object_new_string(q->path));
	json_object_object_add(rec->o, "headers", q->headers);
	json_object_object_add(rec->o, "body", req);
	json_object_object_add(rec->o, "completed", json_object_new_boolean(0));
	json_object_object_add(rec->o, "client_disconnected",
			       json_object_new_boolean(0));
	q->headers = NULL;
	model = json_object_get_string(json_object_object_get(rec->o, "model"));
	rec->live = 1;
	recs = xrealloc(recs, (nrecs + 1) * sizeof(*recs));
	recs[nrecs++] = rec;
	c->rec = rec;
	if (!req) {
		reply_s(c, 400, "{\"error\":\"bad json\"}");
		return;
	}
	r = pop_response(model);
	if (!r)
		r = json_tokener_parse("{\"text\":\"ok\"}");
	if (wire_int(r, "status", 200) != 200) {
		struct buf b = BUF_INIT;
		int status = (int)wire_int(r, "status", 200);
		wire_error_body(w, status, r, &b);
		reply(c, status, "application/json", b.data, b.len);
		buf_release(&b);
		json_object_put(r);
		return;
	}
	buf_adds(&c->out, "HTTP/1.1 200 OK\r\n"
			  "Content-Type: text/event-stream\r\n"
			  "Cache-Control: no-cache\r\n"
			  "Transfer-Encoding: chunked\r\n");
	if (wire_str(r, "content_encoding"))
		buf_addf(&c->out, "Content-Encoding: %s\r\n",
			 wire_str(r, "content_encoding"));
	if (c->close_after)
		buf_adds(&c->out, "Connection: close\r\n");
	buf_adds(&c->out, "\r\n");
	c->streaming = 1;
	c->chunked = 1;
	c->hang = (int)wire_int(r, "hang_after_headers", 0);
	c->cut_after = wire_int(r, "cut_after_chunks", -1);
	if (wire_str(r, "raw_b64"))
		raw_pieces(&c->ev, wire_str(r, "raw_b64"));
	else if (!c->hang)
		wire_render(&c->ev, w, r, req, model);
	c->due = now_ms();
	json_object_put(r);
}

static void openai_endpoint(struct conn *c, struct req *q)
{
	provider(c, W_OPENAI, q);
}

static void anthropic_endpoint(struct conn *c, struct req *q)
{
	provider(c, W_ANTHROPIC, q);
}

static void script_endpoint(struct conn *c, struct req *q)
{
	struct apierr e;
	struct json_object *o = jx_parse(q->body, q->len, &e), *arr, *queue;
	const char *model = wire_str(o, "model");
	struct buf b = BUF_INIT;
	size_t i;

	if (!model || !json_object_object_get_ex(o, "responses", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		json_object_put(o);
		reply_s(c, 400, "{\"error\":\"want model and responses\"}");
		return;
	}
	queue = json_object_object_get(scripts, model);
	if (!queue) {
		queue = json_object_new_array();
		json_object_object_add(scripts, model, queue);
	}
	for (i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *r = json_object_array_get_idx(arr, i);
		json_object_array_add(queue, json_object_get(r));
	}
	buf_addf(&b, "{\"queued\":%zu}", json_object_array_length(queue));
	reply_s(c, 200, b.data);
	buf_release(&b);
	json_object_put(o);
}

static void requests_endpoint(struct conn *c, struct req *q)
{
	struct json_object *list = json_object_new_array(), *o;
	const char *v = q->query ? strstr(q->query, "model=") : NULL, *m;
	char model[512];
	size_t i, k = 0;
	unsigned int ch;

	/* the model parameter, %-decoded */
	for (v = v ? v + 6 : ""; *v && *v != '&' && k + 1 < sizeof(model);
	     v++) {
		if (*v == '%' && sscanf(v + 1, "%2x", &ch) == 1) {
			model[k++] = (char)ch;
			v += 2;
		} else {
			model[k++] = *v == '+' ? ' ' : *v;
		}
	}
	model[k] = '\0';
	for (i = 0; i < nrecs; i++) {
		o = recs[i]->o;
		m = json_object_get_string(json_object_object_get(o, "model"));
		if (!*model || !strcmp(model, m))
			json_object_array_add(list, json_object_get(o));
	}
	reply_json(c, 200, list);
}

static void reset_endpoint(struct conn *c, struct req *q)
{
	size_t i;

	(void)q;
	json_object_put(scripts);
	scripts = json_object_new_object();
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
}

static const struct route {
	const char *method, *path;
	void (*fn)(struct conn *c, struct req *q);
} routes[] = {
	{"POST", "/v1/chat/completions", openai_endpoint},
	{"POST", "/chat/completions", openai_endpoint},
	{"POST", "/v1/messages", anthropic_endpoint},
	{"POST", "/_script", script_endpoint},
	{"GET", "/_requests", requests_endpoint},
	{"POST", "/_reset", reset_endpoint},
};

/* --- HTTP ----------------------------------------------------------- */

/* Read the head's fields into q->headers (names lowercased). The head
 * is edited in place and put back as it was, since a request whose body
 * is still on its way is parsed again. */
static void parse_fields(struct conn *c, char *line, char *end, struct req *q,
			 long *clen, int *expect)
{
	char *next, *colon, *v, *p;

	for (; line < end; line = next + 2) {
		next = strstr(line, "\r\n");
		*next = '\0';
		colon = strchr(line, ':');
		if (colon) {
			*colon = '\0';
			for (p = line; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			for (v = colon + 1; *v == ' '; v++)
				;
			json_object_object_add(q->headers, line,
					       json_object_new_string(v));
			if (!strcmp(line, "content-length"))
				*clen = strtol(v, NULL, 10);
			else if (!strcmp(line, "connection"))
				c->close_after = !strcasecmp(v, "close");
			else if (!strcmp(line, "expect"))
				*expect = !strcasecmp(v, "100-continue");
			else if (!strcmp(line, "transfer-encoding"))
				*clen = -1; /* chunked uploads: not needed */
			*colon = ':';
		}
		*next = '\r';
	}
}

/* Parse and answer one request from c->in. Returns 1 if one was taken,
 * 0 if more bytes are needed, -1 to close the connection. */
static int take_request(struct conn *c)
{
	char *end = strstr(c->in.data, "\r\n\r\n"), *qm;
	char method[16], target[2048], version[16];
	struct req q = {method, target, NULL, NULL, 0, NULL};
	long clen = 0;
	size_t head, i;
	int expect = 0;

	if (!end)
		return c->in.len > MAX_HEAD ? -1 : 0;
	head = (size_t)(end - c->in.data) + 4;
	if (sscanf(c->in.data, "%15s %2047s %15s", method, target, version) !=
	    3)
		return -1;
	c->close_after = !strcmp(version, "HTTP/1.0");
	q.headers = json_object_new_object();
	parse_fields(c, strstr(c->in.data, "\r\n") + 2, end, &q, &clen,
		     &expect);
	if (clen < 0 || clen > MAX_BODY) {
		json_object_put(q.headers);
		c->close_after = 1;
		reply(c, clen < 0 ? 411 : 413, "text/plain", "", 0);
		buf_reset(&c->in);
		return 1;
	}
	if (c->in.len < head + (size_t)clen) {
		json_object_put(q.headers);
		if (expect && !c->sent_continue)
			buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
		c->sent_continue = expect;
		return 0;
	}
	c->sent_continue = 0;
	qm = strchr(target, '?');
	if (qm) {
		*qm = '\0';
		q.query = qm + 1;
	}
	q.body = c->in.data + head;
	q.len = (size_t)clen;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(method, routes[i].method) &&
		    !strcmp(target, routes[i].path))
			break;
	if (i < sizeof(routes) / sizeof(routes[0]))
		routes[i].fn(c, &q);
	else
		reply_s(c, 404, "{\"error\":\"not found\"}");
	json_object_put(q.headers);
	head += (size_t)clen;
	memmove(c->in.data, c->in.data + head, c->in.len - head);
	c->in.len -= head;
	c->in.data[c->in.len] = '\0';
	return 1;
}

static void conn_close(size_t i, int by_client)
{
	struct conn *c = conns[i];
	if (c->rec)
		rec_end(c->rec, by_client ? "client_disconnected" : NULL);
	close(c->fd);
	clear_events(c);
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
		if (c->next < c->ev.n) {
			struct wire_piece *p = &c->ev.v[c->next];
			if (c->due > now)
				return 0;
			buf_addf(&c->out, "%zx\r\n", p->len);
			buf_add(&c->out, p->data, p->len);
			buf_adds(&c->out, "\r\n");
			if (++c->next < c->ev.n)
				c->due = now + c->ev.v[c->next].delay_ms;
			continue;
		}
		if (c->chunked) {
			buf_adds(&c->out, "0\r\n\r\n");
			c->chunked = 0;
			continue;
		}
		/* the response is complete */
		if (c->rec)
			rec_end(c->rec, "completed");
		c->rec = NULL;
		clear_events(c);
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
			    c->next < c->ev.n) {
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
						fprintf(stderr,
							"fake-llm: out of file "
							"descriptors\n");
					break;
				}
				c = xcalloc(1, sizeof(*c));
				c->fd = fd;
				c->cut_after = -1;
				buf_init(&c->in, 1024);
				buf_init(&c->out, 0);
				conns = xrealloc(conns,
						 (nconns + 1) * sizeof(*conns));
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
	scripts = json_object_new_object();
	/* many slow streams need many descriptors */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	a.sin_port = htons((unsigned short)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
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
