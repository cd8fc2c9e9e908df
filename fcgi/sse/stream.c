/*
 * stream: request dispatch for everruns-sse and GET /sessions/{id}/sse
 * (ARCHITECTURE 4.5). The request is checked like the api program checks it
 * (route, query, auth, tenant scope, the shared evq filters); errors use
 * the same JSON body (res_error). The checks that need the database (the
 * API key, then the session and cursor) are queries on dbq.c, each
 * answered through a continuation that carries the conn (c->job; the
 * request's state is c->open). A stream starts after its resume point,
 * or after the session's current last event when it has none.
 */
#include "sse.h"
#include "arena.h"
#include "auth.h"
#include "config.h"
#include "dbq.h"
#include "ids.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char V1_SESSIONS[] = "/api/v1/sessions/";

void sse_db_unavailable(struct req *rq)
{
	res_header(rq, "Retry-After", "1");
	res_error(rq, 503, "database_unavailable",
		  "The database is unavailable; try again shortly");
}

void sse_respond(struct sse_conn *c, struct req *rq)
{
	struct buf out = BUF_INIT;
	buf_init(&out, 256);
	res_head(rq, &out);
	buf_add(&out, rq->res_body.data, rq->res_body.len);
	sse_conn_send(c, out.data, out.len);
	sse_conn_finish(c);
	buf_release(&out);
}

/* "{a,b}" (evq's text[] literal) contains name? */
static int in_list(const struct buf *l, const char *name)
{
	size_t n = strlen(name);
	const char *s = l->data + 1;
	while (s < l->data + l->len) {
		size_t len = strcspn(s, ",}");
		if (len == n && !memcmp(s, name, n))
			return 1;
		s += len + 1;
	}
	return 0;
}

int sse_type_passes(const struct evq *q, const char *type)
{
	if (q->exclude.len && in_list(&q->exclude, type))
		return 0;
	return !q->types.len || in_list(&q->types, type);
}

/* An instant as the API writes it: "2026-01-02T03:04:05.678Z" (UTC). */
static void ts_format(char out[32], time_t sec, long ms)
{
	struct tm tm;
	size_t n;
	gmtime_r(&sec, &tm);
	n = strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03ldZ", ms % 1000);
}

static void ts_now(char out[32])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts_format(out, ts.tv_sec, ts.tv_nsec / 1000000);
}

static void add_id(struct buf *f, const char *prefix, const char *hex)
{
	if (hex && *hex)
		buf_addf(f, "\"%s_%s\"", prefix, hex);
	else
		buf_adds(f, "null");
}

void sse_event_frame(struct buf *f, const struct sse_event_row *r)
{
	char ts[32];
	long long sec = r->ts_us / 1000000, us = r->ts_us % 1000000;
	if (us < 0) { /* before 1970: floor, as to_char does */
		sec--;
		us += 1000000;
	}
	ts_format(ts, (time_t)sec, (long)(us / 1000));
	buf_addf(f, "event: %s\nid: evt_%s\ndata: {\"id\":\"evt_%s\",\"type\":",
		 r->type, r->id, r->id);
	buf_add_json_str(f, r->type, strlen(r->type));
	buf_addf(f,
		 ",\"ts\":\"%s\",\"session_id\":\"ses_%s\",\"sequence\":%lld,"
		 "\"context\":{\"turn_id\":",
		 ts, r->session, r->seq);
	add_id(f, "trn", r->turn);
	buf_adds(f, ",\"input_message_id\":");
	add_id(f, "msg", r->msg);
	buf_adds(f, "},\"data\":");
	buf_add(f, r->data, r->dlen);
	buf_adds(f, "}\n\n");
}

void sse_stream_event(struct sse_sub *s, const char *frame, size_t len)
{
	sse_conn_send(s->conn, frame, len);
}

/* A delta frame up to its data's first member: the Event envelope of
 * ARCHITECTURE 4.3 (id: the cursor where this delta ends, at byte alen
 * of message m), then `"data":{`. */
static void delta_head(struct buf *f, struct sse_sub *s, const char *type,
		       long long m, size_t alen, const char *turn,
		       const char *msg)
{
	char ts[32], id[EVQ_DELTA_ID_MAX];

	ts_now(ts);
	evq_delta_id(id, s->cursor, m, alen);
	buf_addf(f,
		 "event: %s\nid: %s\ndata: {\"id\":\"%s\",\"type\":\"%s\","
		 "\"ts\":\"%s\",\"session_id\":\"ses_%s\","
		 "\"context\":{\"turn_id\":",
		 type, id, id, type, ts, s->session);
	add_id(f, "trn", turn);
	buf_adds(f, ",\"input_message_id\":");
	add_id(f, "msg", msg);
	buf_adds(f, "},\"data\":{");
}

void sse_stream_delta(struct sse_sub *s, const char *type, long long m,
		      const char *turn, const char *msg, const char *delta,
		      size_t dlen, const char *acc, size_t alen)
{
	struct buf f = BUF_INIT;

	buf_init(&f, dlen + alen + 384);
	delta_head(&f, s, type, m, alen, turn, msg);
	buf_adds(&f, "\"turn_id\":");
	add_id(&f, "trn", turn);
	buf_adds(&f, ",\"delta\":");
	buf_add_json_str(&f, delta, dlen);
	buf_adds(&f, ",\"accumulated\":");
	buf_add_json_str(&f, acc, alen);
	buf_addf(&f, ",\"message_sequence\":%lld}}\n\n", m);
	sse_conn_send(s->conn, f.data, f.len);
	buf_release(&f);
}

void sse_stream_tool_delta(struct sse_sub *s, const char *x, long long m,
			   const char *turn, const char *msg, const char *delta,
			   size_t dlen, size_t alen)
{
	struct buf f = BUF_INIT;
	size_t xl = strlen(x);

	buf_init(&f, dlen + xl + 384);
	delta_head(&f, s, "tool.output.delta", m, alen, turn, msg);
	if (xl > 2) { /* the object's members */
		buf_add(&f, x + 1, xl - 2);
		buf_addch(&f, ',');
	}
	buf_adds(&f, "\"delta\":");
	buf_add_json_str(&f, delta, dlen);
	buf_addf(&f, ",\"message_sequence\":%lld}}\n\n", m);
	sse_conn_send(s->conn, f.data, f.len);
	buf_release(&f);
}

void sse_stream_close(struct sse_sub *s, const char *reason)
{
	char f[256], id[EVQ_DELTA_ID_MAX];
	int n;

	/* its id: where this stream stands, to resume from exactly there */
	evq_delta_id(id, s->cursor, s->dm, s->dm ? s->doff : 0);
	n = snprintf(f, sizeof(f),
		     "event: disconnecting\nid: %s\ndata: {\"reason\":\"%s\"%s,"
		     "\"id\":\"%s\"}\n\n",
		     id, reason,
		     strcmp(reason, "session_deleted") ? ",\"retry_ms\":100"
						       : "",
		     id);
	sse_conn_send(s->conn, f, (size_t)n);
	hub_unsubscribe(s);
	sse_conn_finish(s->conn);
}

void sse_sub_key_gone(struct sse_sub *s, const char *reason)
{
	static const char r[] = "Status: 401 Unauthorized\r\n"
				"WWW-Authenticate: Bearer\r\n"
				"Content-Type: application/json\r\n\r\n"
				"{\"error\":\"Unauthorized\",\"code\":"
				"\"unauthorized\"}";
	if (s->kind == SSE_STREAM) {
		sse_stream_close(s, reason);
		return;
	}
	hub_unsubscribe(s);
	sse_conn_send(s->conn, r, sizeof(r) - 1);
	sse_conn_finish(s->conn);
}

void sse_sub_tick(struct sse_sub *s, double now)
{
	if (s->key_exp > 0 && now >= s->key_exp) {
		sse_sub_key_gone(s, "key_expired");
		return;
	}
	if (s->kind == SSE_POLL) {
		if (now >= s->deadline)
			sse_poll_wake(s);
		return;
	}
	if (now >= s->cycle_at) {
		sse_stream_close(s, "connection_cycle");
	} else if (now >= s->next_ping) {
		s->next_ping = now + (double)config_int("sse_heartbeat_s");
		sse_conn_send(s->conn, ": ping\n\n", 8);
	}
}

void sse_sub_free(struct sse_sub *s)
{
	evq_release(&s->q);
	free(s);
}

/* --- a request's checks, one query after the other ------------------ */

void sse_open_done(struct sse_conn *c)
{
	struct sse_open *o = c->open;
	if (!o)
		return;
	c->open = NULL;
	if (o->sub)
		sse_sub_free(o->sub);
	req_release(&o->rq);
	arena_release(&o->arena);
	free(o);
}

int sse_subscribe(struct sse_conn *c, struct sse_sub *s)
{
	struct sse_open *o = c->open;

	if (hub_subscribe(s) != 0) {
		res_header(&o->rq, "Retry-After", "5");
		res_error(&o->rq, 429, "too_many_streams",
			  "Too many streams and long-polls for this session "
			  "(sse_max_per_session) or organization "
			  "(sse_max_per_org)");
		sse_open_respond(c);
		return -1;
	}
	o->sub = NULL;
	c->sub = s;
	sse_open_done(c);
	return 0;
}

void sse_open_respond(struct sse_conn *c)
{
	sse_respond(c, &c->open->rq);
	sse_open_done(c);
}

/* The session and cursor are resolved: start the stream. */
static void stream_start(struct sse_conn *c)
{
	static const char head[] =
		"Status: 200 OK\r\nContent-Type: text/event-stream\r\n"
		"Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n"
		"retry: 1000\nevent: connected\n";
	char id[EVQ_DELTA_ID_MAX];
	struct sse_open *o = c->open;
	struct sse_sub *s = o->sub;
	struct buf f = BUF_INIT;
	double now = sse_now(), cycle;

	if (!s->q.has_cursor)
		s->cursor = o->last_seq;
	/* resumed from a delta: its message's text goes on from there */
	s->dm = s->q.dm;
	s->doff = s->q.doff;
	/* a wake-up for an event after the cursor may have come (and been
	 * dropped: no subscriber yet) while the query ran: look once */
	s->need = 1;
	if (sse_subscribe(c, s) != 0)
		return;
	cycle = (double)config_int("sse_cycle_s");
	s->cycle_at = now + cycle * (0.8 + 0.4 * drand48());
	s->next_ping = now + (double)config_int("sse_heartbeat_s");
	buf_init(&f, 256);
	buf_adds(&f, head);
	/* its id: the stream's starting point, a cursor like a delta's */
	evq_delta_id(id, s->cursor, s->dm, s->dm ? s->doff : 0);
	buf_addf(
		&f,
		"id: %s\ndata: {\"status\":\"connected\",\"session_id\":\"ses_%s\","
		"\"id\":\"%s\"}\n\n",
		id, s->session, id);
	sse_conn_send(c, f.data, f.len);
	buf_release(&f);
}

static void on_resolve(void *ctx, PGresult *res)
{
	struct sse_conn *c = ctx;
	struct sse_open *o = c->open;
	struct apierr e;
	int r;

	c->job = NULL;
	if (c->dead) {
		PQclear(res);
		return;
	}
	r = res ? evq_resolve_result(&o->sub->q, res, &o->last_seq, &e) : -1;
	PQclear(res);
	switch (r) {
	case 0:
		o->sub->cursor = o->sub->q.after;
		if (o->kind == SSE_STREAM)
			stream_start(c);
		else
			sse_poll_open(c);
		return;
	case 1:
		res_error(&o->rq, 404, "not_found", "Session not found");
		break;
	case 2:
		res_apierr(&o->rq, &e);
		break;
	default:
		sse_db_unavailable(&o->rq);
	}
	sse_open_respond(c);
}

/* The key is valid: check the id and the filters, then the session. */
static void open_sub(struct sse_conn *c)
{
	struct sse_open *o = c->open;
	struct req *rq = &o->rq;
	struct sse_sub *s;
	struct apierr e;
	const char *p[3];
	const char *sql;
	char *id;
	int n;

	id = http_decode(&o->arena, o->seg, o->seglen, 0, NULL);
	rq->cap[0] = arena_alloc(&o->arena, 33);
	rq->ncap = 1;
	if (!id || !ids_parse(id, "ses", (char *)rq->cap[0])) {
		res_error(rq, 400, "invalid_id",
			  "session_id: malformed id (expected ses_ followed "
			  "by 32 lowercase hex digits)");
		sse_open_respond(c);
		return;
	}
	s = o->sub = xcalloc(1, sizeof(*s));
	evq_init(&s->q);
	memcpy(s->q.session, rq->cap[0], 33);
	memcpy(s->q.org, rq->org, sizeof(s->q.org));
	if (evq_parse(rq, o->kind == SSE_STREAM ? rq->last_event_id : NULL,
		      o->kind == SSE_STREAM ? 0 : POLL_MAX_WAIT, &s->q,
		      &e) != 0) {
		res_apierr(rq, &e);
		sse_open_respond(c);
		return;
	}
	s->conn = c;
	s->kind = o->kind;
	s->key_exp = o->key_exp;
	memcpy(s->session, s->q.session, 33);
	memcpy(s->org, rq->org, 33);
	memcpy(s->key, rq->key, 33);
	sql = evq_resolve_query(&s->q, p, &n);
	c->job = dbq_query(sql, n, p, on_resolve, c);
}

static void on_auth(void *ctx, PGresult *res)
{
	struct sse_conn *c = ctx;
	struct req *rq = &c->open->rq;
	int a, touch = 0;

	c->job = NULL;
	if (c->dead) {
		PQclear(res);
		return;
	}
	a = res ? auth_lookup_result(res, rq->org, rq->user, rq->key, rq->role,
				     &touch)
		: -1;
	/* an expiring key's connections end when it does */
	if (a == 1 && !PQgetisnull(res, 0, 4))
		c->open->key_exp = sse_now() + atof(PQgetvalue(res, 0, 4));
	PQclear(res);
	if (touch) {
		const char *k[1] = {rq->key};
		dbq_query(auth_touch_sql, 1, k, NULL, NULL);
	}
	if (a < 0) {
		sse_db_unavailable(rq);
	} else if (a == 0) {
		res_header(rq, "WWW-Authenticate", "Bearer");
		res_error(rq, 401, "unauthorized", "Unauthorized");
	} else {
		open_sub(c);
		return;
	}
	sse_open_respond(c);
}

static const char *param_dup(struct sse_conn *c, struct arena *a,
			     const char *name)
{
	const char *v = fcgi_param(&c->fp, name);
	return v && *v ? arena_strdup(a, v) : NULL;
}

/* "/api/v1/sessions/{id}/sse" (SSE_STREAM) or ".../events" (SSE_POLL):
 * 0 with the kind and the id segment in *seg, -1 for anything else. */
static int route(const char *path, const char **seg, size_t *seglen,
		 enum sse_kind *kind)
{
	const char *s, *slash;
	if (strncmp(path, V1_SESSIONS, sizeof(V1_SESSIONS) - 1))
		return -1;
	s = path + sizeof(V1_SESSIONS) - 1;
	slash = strchr(s, '/');
	if (!slash || slash == s)
		return -1;
	*seg = s;
	*seglen = (size_t)(slash - s);
	if (!strcmp(slash, "/sse"))
		*kind = SSE_STREAM;
	else if (!strcmp(slash, "/events"))
		*kind = SSE_POLL;
	else
		return -1;
	return 0;
}

void sse_serve(struct sse_conn *c)
{
	struct sse_open *o = xcalloc(1, sizeof(*o));
	struct req *rq = &o->rq;
	const char *uri, *q;
	char *path, hash[65];
	const char *p[1] = {hash};

	c->open = o;
	o->arena = (struct arena)ARENA_INIT;
	req_init(rq, &o->arena);
	rq->method = param_dup(c, &o->arena, "REQUEST_METHOD");
	uri = fcgi_param(&c->fp, "REQUEST_URI");
	if (!rq->method || !uri) {
		res_error(rq, 400, "bad_request", "Missing request line");
		goto respond;
	}
	q = strchr(uri, '?');
	path = q ? arena_strndup(&o->arena, uri, (size_t)(q - uri))
		 : arena_strdup(&o->arena, uri);
	rq->path = path;
	rq->query = q ? arena_strdup(&o->arena, q + 1) : "";
	rq->authorization = param_dup(c, &o->arena, "HTTP_AUTHORIZATION");
	rq->last_event_id = param_dup(c, &o->arena, "HTTP_LAST_EVENT_ID");
	rq->remote_addr = param_dup(c, &o->arena, "REMOTE_ADDR");
	if (route(path, &o->seg, &o->seglen, &o->kind) != 0) {
		res_error(rq, 404, "not_found", "No such route");
		goto respond;
	}
	if (strcmp(rq->method, "GET")) {
		res_header(rq, "Allow", "GET");
		res_error(rq, 405, "method_not_allowed",
			  "Method %s not allowed here; allowed: GET",
			  rq->method);
		goto respond;
	}
	req_parse_query(rq);
	if (rq->qp_bad) {
		res_error(rq, 400, "validation_error", "%s: not valid UTF-8",
			  rq->qp_bad);
		goto respond;
	}
	if (rq->qp_overflow) {
		res_error(rq, 400, "validation_error",
			  "Too many query parameters (at most %d)", REQ_MAX_QP);
		goto respond;
	}
	if (!auth_hash(rq->authorization, hash)) {
		res_header(rq, "WWW-Authenticate", "Bearer");
		res_error(rq, 401, "unauthorized", "Unauthorized");
		goto respond;
	}
	c->job = dbq_query(auth_lookup_sql, 1, p, on_auth, c);
	return;
respond:
	sse_open_respond(c);
}
