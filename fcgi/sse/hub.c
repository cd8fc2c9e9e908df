/*
 * hub: the process's one LISTEN connection (channels `ev` and `evd`) and
 * the map session -> subscribers (DESIGN 2, 4.5).
 *
 * A notification is only a wake-up: `ev` raises the session's highest
 * known sequence and puts it on the dirty list; hub_run() then catches
 * every lagging subscriber up with ONE query for all dirty sessions (an
 * unnest of (session, cursor) pairs, at most HUB_PER_SESSION events per
 * session per round; a session that hit the bound stays dirty). `evd`
 * deltas are delivered after that round, so a stream always has the
 * *.started event before the first delta of its message.
 *
 * Deltas: each session keeps the text of its current message (acc) so a
 * subscriber that joined late, or lagged, gets the missing text as one
 * delta; when the session's acc does not start at offset 0 it is loaded
 * from live_text.
 *
 * After a lost connection the hub reconnects (from hub_tick) and marks
 * every subscriber for catch-up, so a lost NOTIFY never loses an event;
 * a safety round every HUB_SAFETY_S does the same.
 */
#include "sse.h"
#include "config.h"
#include "log.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define HUB_BUCKETS 4096
#define HUB_PER_SESSION 200
#define HUB_SAFETY_S 30.0
#define HUB_ROUNDS 8

struct hub_session {
	char id[33];
	struct hub_session *hnext;
	struct sse_sub *subs, *tail;
	int nstreams;
	long long known;          /* highest sequence announced */
	int dirty, gc;
	struct hub_session *dnext, *gnext;
	long long acc_m;          /* message whose text acc holds (0: none) */
	struct buf acc;
	long long type_m;         /* message whose delta type is dtype */
	const char *dtype;
	int ndeltas;              /* of the pending deltas, this session's */
};

struct hub_org {
	char id[33];
	int n;
	struct hub_org *hnext;
};

struct delta {
	char s[33];
	long long m, bound;
	size_t off;
	char *d;
	size_t dlen;
	int done;
};

static PGconn *lconn;
static char *lconninfo;
static int lepfd = -1;
static double next_try, next_safety;
static struct hub_session *sessions[HUB_BUCKETS];
static struct hub_org *orgs[HUB_BUCKETS];
static struct hub_session *dirty, *garbage;
static struct delta *deltas;
static size_t ndeltas, deltas_cap;
static long max_per_session, max_per_org;

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % HUB_BUCKETS;
}

static struct hub_session *session_get(const char *id, int create)
{
	unsigned h = hash(id);
	struct hub_session *hs;
	for (hs = sessions[h]; hs; hs = hs->hnext)
		if (!strcmp(hs->id, id))
			return hs;
	if (!create)
		return NULL;
	hs = xcalloc(1, sizeof(*hs));
	memcpy(hs->id, id, sizeof(hs->id));
	buf_init(&hs->acc, 0);
	hs->hnext = sessions[h];
	sessions[h] = hs;
	return hs;
}

static void session_free(struct hub_session *hs)
{
	struct hub_session **pp = &sessions[hash(hs->id)];
	while (*pp != hs)
		pp = &(*pp)->hnext;
	*pp = hs->hnext;
	buf_release(&hs->acc);
	free(hs);
}

static struct hub_org *org_get(const char *id, int create)
{
	unsigned h = hash(id);
	struct hub_org *o;
	for (o = orgs[h]; o; o = o->hnext)
		if (!strcmp(o->id, id))
			return o;
	if (!create)
		return NULL;
	o = xcalloc(1, sizeof(*o));
	memcpy(o->id, id, sizeof(o->id));
	o->hnext = orgs[h];
	orgs[h] = o;
	return o;
}

static void org_drop(const char *id)
{
	struct hub_org **pp = &orgs[hash(id)], *o;
	for (; (o = *pp); pp = &o->hnext) {
		if (strcmp(o->id, id))
			continue;
		if (--o->n <= 0) {
			*pp = o->hnext;
			free(o);
		}
		return;
	}
}

static void mark_dirty(struct hub_session *hs)
{
	if (hs->dirty)
		return;
	hs->dirty = 1;
	hs->dnext = dirty;
	dirty = hs;
}

static int live(const struct sse_sub *s)
{
	return !s->conn->dead && !s->conn->closing;
}

/* --- the LISTEN connection ------------------------------------------ */

static void all_need(void)
{
	size_t i;
	struct hub_session *hs;
	struct sse_sub *s;
	for (i = 0; i < HUB_BUCKETS; i++)
		for (hs = sessions[i]; hs; hs = hs->hnext) {
			for (s = hs->subs; s; s = s->s_next)
				s->need = 1;
			mark_dirty(hs);
		}
}

static void hub_down(void)
{
	if (!lconn)
		return;
	epoll_ctl(lepfd, EPOLL_CTL_DEL, PQsocket(lconn), NULL);
	PQfinish(lconn);
	lconn = NULL;
	next_try = 0;
	log_warn("LISTEN connection lost; reconnecting");
}

static int hub_connect(void)
{
	/* libpq ignores the TCP settings on a unix socket; later keywords
	 * override what the dbname connection string says */
	static const char *const kw[] = {
		"dbname", "keepalives", "keepalives_idle",
		"keepalives_interval", "keepalives_count", "tcp_user_timeout",
		"application_name", NULL};
	const char *val[] = {lconninfo, "1", "30", "10", "3", "60000",
			     "everruns-sse", NULL};
	struct epoll_event ev;
	PGresult *res;

	lconn = PQconnectdbParams(kw, val, 1);
	if (PQstatus(lconn) != CONNECTION_OK) {
		log_error("LISTEN connection: %s", PQerrorMessage(lconn));
		goto fail;
	}
	res = PQexec(lconn, "LISTEN ev; LISTEN evd");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_error("LISTEN: %s", PQerrorMessage(lconn));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	PQsetnonblocking(lconn, 1);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = sse_hub_tag();
	if (epoll_ctl(lepfd, EPOLL_CTL_ADD, PQsocket(lconn), &ev) != 0)
		goto fail;
	/* notifications sent while we were away are gone: read the table */
	all_need();
	log_info("listening on channels ev, evd");
	return 0;
fail:
	PQfinish(lconn);
	lconn = NULL;
	return -1;
}

int hub_init(const char *conninfo, int epfd)
{
	lconninfo = xstrdup(conninfo);
	lepfd = epfd;
	max_per_session = config_long("sse_max_per_session", 5);
	max_per_org = config_long("sse_max_per_org", 1000);
	next_safety = sse_now() + HUB_SAFETY_S;
	return hub_connect();
}

int hub_fd(void)
{
	return lconn ? PQsocket(lconn) : -1;
}

void hub_tick(double now)
{
	if (!lconn && now >= next_try) {
		next_try = now + 1.0;
		hub_connect();
	}
	if (now >= next_safety) {
		next_safety = now + HUB_SAFETY_S;
		all_need();
	}
}

static void on_ev(const char *payload)
{
	char id[33];
	const char *colon = strchr(payload, ':');
	struct hub_session *hs;
	struct sse_sub *s, *next;
	long long seq;

	if (!colon || colon - payload != 32)
		return;
	memcpy(id, payload, 32);
	id[32] = '\0';
	if (!(hs = session_get(id, 0)))
		return;
	seq = strtoll(colon + 1, NULL, 10);
	if (seq > 0) {
		if (seq > hs->known)
			hs->known = seq;
		mark_dirty(hs);
		return;
	}
	for (s = hs->subs; s; s = next) {
		next = s->s_next;
		if (!live(s))
			continue;
		if (s->kind == SSE_STREAM)
			sse_stream_close(s, "session_deleted");
		else
			sse_poll_wake(s);
	}
}

static void on_evd(const char *payload)
{
	struct json_object *o = json_tokener_parse(payload), *v;
	struct delta *d;
	struct hub_session *hs;
	const char *s;

	if (!o)
		return;
	if (!json_object_object_get_ex(o, "s", &v) ||
	    !(s = json_object_get_string(v)) || strlen(s) != 32 ||
	    !(hs = session_get(s, 0)))
		goto out;
	if (ndeltas == deltas_cap) {
		deltas_cap = deltas_cap ? deltas_cap * 2 : 64;
		deltas = xrealloc(deltas, deltas_cap * sizeof(*deltas));
	}
	d = &deltas[ndeltas];
	memcpy(d->s, s, 33);
	d->m = json_object_object_get_ex(o, "m", &v) ? json_object_get_int64(v) : 0;
	d->off = json_object_object_get_ex(o, "off", &v)
			 ? (size_t)json_object_get_int64(v) : 0;
	if (!json_object_object_get_ex(o, "d", &v) || d->m <= 0)
		goto out;
	d->dlen = (size_t)json_object_get_string_len(v);
	d->d = xstrndup(json_object_get_string(v), d->dlen);
	d->bound = hs->known;
	d->done = 0;
	hs->ndeltas++;
	ndeltas++;
out:
	json_object_put(o);
}

void hub_readable(void)
{
	PGnotify *n;
	if (!lconn)
		return;
	if (!PQconsumeInput(lconn)) {
		hub_down();
		return;
	}
	while ((n = PQnotifies(lconn))) {
		if (!strcmp(n->relname, "ev"))
			on_ev(n->extra);
		else if (!strcmp(n->relname, "evd"))
			on_evd(n->extra);
		PQfreemem(n);
	}
	if (PQstatus(lconn) == CONNECTION_BAD)
		hub_down();
}

/* --- subscribers ------------------------------------------------------ */

int hub_subscribe(struct sse_sub *s)
{
	struct hub_session *hs = session_get(s->session, 1);
	struct hub_org *o;

	if (s->kind == SSE_STREAM) {
		if (hs->nstreams >= max_per_session) {
			struct sse_sub *old;
			for (old = hs->subs; old; old = old->s_next)
				if (old->kind == SSE_STREAM && live(old) &&
				    !strcmp(old->key, s->key))
					break;
			if (!old)
				goto full;
			sse_stream_close(old, "replaced");
		}
		o = org_get(s->org, 0);
		if (o && o->n >= max_per_org)
			goto full;
		org_get(s->org, 1)->n++;
		hs->nstreams++;
	}
	s->hs = hs;
	s->s_prev = hs->tail;
	s->s_next = NULL;
	if (hs->tail)
		hs->tail->s_next = s;
	else
		hs->subs = s;
	hs->tail = s;
	if (s->need)
		mark_dirty(hs);
	return 0;
full:
	if (!hs->subs && !hs->gc) {
		hs->gc = 1;
		hs->gnext = garbage;
		garbage = hs;
	}
	return -1;
}

void hub_unsubscribe(struct sse_sub *s)
{
	struct hub_session *hs = s->hs;
	if (!hs)
		return;
	if (s->s_prev)
		s->s_prev->s_next = s->s_next;
	else
		hs->subs = s->s_next;
	if (s->s_next)
		s->s_next->s_prev = s->s_prev;
	else
		hs->tail = s->s_prev;
	if (s->kind == SSE_STREAM) {
		hs->nstreams--;
		org_drop(s->org);
	}
	s->hs = NULL;
	s->s_prev = s->s_next = NULL;
	/* freed at the end of hub_run: someone may be walking its list */
	if (!hs->subs && !hs->gc) {
		hs->gc = 1;
		hs->gnext = garbage;
		garbage = hs;
	}
}

void hub_kick(struct sse_sub *s)
{
	s->need = 1;
	if (s->hs)
		mark_dirty(s->hs);
}

/* --- catch-up --------------------------------------------------------- */

static int wants(const struct sse_sub *s, const struct hub_session *hs)
{
	return live(s) && !s->lagging && (s->need || s->cursor < hs->known);
}

static void one_delta(struct delta *d);

/* The session's pending deltas announced before event `seq`. */
static void deltas_before(struct hub_session *hs, long long seq)
{
	size_t i;
	for (i = 0; i < ndeltas && hs->ndeltas > 0; i++)
		if (!deltas[i].done && deltas[i].bound < seq &&
		    !strcmp(deltas[i].s, hs->id))
			one_delta(&deltas[i]);
}

/* The frame of catch-up row i (columns: see catch_up). */
static void row_frame(struct buf *f, PGresult *res, int i, long long seq,
		      const char *type)
{
	struct sse_event_row r;
	r.seq = seq;
	r.type = type;
	r.session = PQgetvalue(res, i, 0);
	r.id = PQgetvalue(res, i, 3);
	r.data = PQgetvalue(res, i, 4);
	r.dlen = (size_t)PQgetlength(res, i, 4);
	r.ts_us = strtoll(PQgetvalue(res, i, 6), NULL, 10);
	r.turn = PQgetvalue(res, i, 7);
	r.msg = PQgetvalue(res, i, 8);
	buf_init(f, r.dlen + 320);
	sse_event_frame(f, &r);
}

/* Hand the rows [from, to) of session hs to its subscribers, with the
 * session's deltas in their place among them. */
static void deliver(struct hub_session *hs, PGresult *res, int from, int to)
{
	struct sse_sub *s, *next;
	int i, full = to - from >= HUB_PER_SESSION;

	for (s = hs->subs; s; s = s->s_next)
		s->in_round = wants(s, hs);
	for (i = from; i < to; i++) {
		long long seq = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		const char *type = PQgetvalue(res, i, 2);
		struct buf frame = BUF_INIT; /* rendered on first use */
		deltas_before(hs, seq);
		if (seq > hs->known)
			hs->known = seq;
		if (!strcmp(type, "output.message.started") ||
		    !strcmp(type, "reason.thinking.started")) {
			hs->type_m = seq;
			hs->dtype = type[0] == 'o' ? "output.message.delta"
						   : "reason.thinking.delta";
		}
		for (s = hs->subs; s; s = next) {
			next = s->s_next; /* a woken poll leaves the list */
			if (!s->in_round || !live(s) || s->lagging ||
			    seq <= s->cursor)
				continue;
			s->cursor = seq;
			if (!sse_type_passes(&s->q, type))
				continue;
			if (s->kind == SSE_POLL)
				sse_poll_wake(s);
			else {
				if (!frame.len)
					row_frame(&frame, res, i, seq, type);
				sse_stream_event(s, frame.data, frame.len);
			}
		}
		buf_release(&frame);
	}
	for (s = hs->subs; s; s = s->s_next)
		if (s->in_round && !full && live(s) && !s->lagging)
			s->need = 0;
	if (full)
		mark_dirty(hs);
}

static void session_gone(struct hub_session *hs)
{
	struct sse_sub *s, *next;
	for (s = hs->subs; s; s = next) {
		next = s->s_next;
		if (!live(s))
			continue;
		if (s->kind == SSE_STREAM)
			sse_stream_close(s, "session_deleted");
		else
			sse_poll_wake(s);
	}
}

/* One catch-up query for every dirty session. 1 if it ran. */
static int catch_up(void)
{
	static const char qs[] =
		"SELECT replace(c.session::text, '-', ''), x.seq, x.type, x.id, x.data, "
		"EXISTS (SELECT 1 FROM sessions s WHERE s.id = c.session), "
		"x.ts_us, x.turn, x.msg "
		"FROM unnest($1::uuid[], $2::bigint[]) AS c(session, after) "
		"LEFT JOIN LATERAL (SELECT e.seq, e.type, "
		"replace(e.id::text, '-', '') AS id, e.data::text AS data, "
		"(extract(epoch FROM e.ts) * 1000000)::bigint AS ts_us, "
		"replace(e.turn_id::text, '-', '') AS turn, "
		"replace(e.input_message_id::text, '-', '') AS msg FROM events e "
		"WHERE e.session_id = c.session AND e.seq > c.after "
		"ORDER BY e.seq LIMIT 200) x ON true "
		"ORDER BY 1, x.seq";
	struct buf ids = BUF_INIT, afters = BUF_INIT;
	struct hub_session *hs, *list = dirty;
	PGresult *res = NULL;
	const char *p[2];
	int n = 0, i, ran = 0;

	dirty = NULL;
	buf_init(&ids, 0);
	buf_init(&afters, 0);
	for (hs = list; hs; hs = hs->dnext) {
		struct sse_sub *s;
		long long after = -1;
		hs->dirty = 0;
		for (s = hs->subs; s; s = s->s_next)
			if (wants(s, hs) && (after < 0 || s->cursor < after))
				after = s->cursor;
		if (after < 0)
			continue;
		buf_addch(&ids, n ? ',' : '{');
		buf_adds(&ids, hs->id);
		buf_addch(&afters, n ? ',' : '{');
		buf_addf(&afters, "%lld", after);
		n++;
	}
	if (!n)
		goto out;
	buf_addch(&ids, '}');
	buf_addch(&afters, '}');
	p[0] = ids.data;
	p[1] = afters.data;
	ran = 1;
	res = db_exec(&sse_db, qs, 2, p);
	if (!res) {
		/* the query connection failed: retry with everyone later */
		next_safety = sse_now() + 1.0;
		goto out;
	}
	for (i = 0; i < PQntuples(res);) {
		const char *id = PQgetvalue(res, i, 0);
		int j = i;
		while (j < PQntuples(res) && !strcmp(PQgetvalue(res, j, 0), id))
			j++;
		hs = session_get(id, 0);
		if (hs && PQgetvalue(res, i, 5)[0] != 't')
			session_gone(hs);
		else if (hs && !PQgetisnull(res, i, 1))
			deliver(hs, res, i, j);
		else if (hs)
			for (struct sse_sub *s = hs->subs; s; s = s->s_next)
				if (wants(s, hs))
					s->need = 0;
		i = j;
	}
out:
	PQclear(res);
	buf_release(&ids);
	buf_release(&afters);
	return ran;
}

/* --- deltas ----------------------------------------------------------- */

static void load_type(struct hub_session *hs, long long m)
{
	static const char qs[] =
		"SELECT type FROM events WHERE session_id = $1 AND seq = $2";
	char ms[24];
	const char *p[2] = {hs->id, ms};
	PGresult *res;
	const char *t;

	snprintf(ms, sizeof(ms), "%lld", m);
	hs->type_m = m;
	hs->dtype = "output.message.delta";
	res = db_exec(&sse_db, qs, 2, p);
	t = res ? db_val(res, 0, 0) : NULL;
	if (t && !strcmp(t, "reason.thinking.started"))
		hs->dtype = "reason.thinking.delta";
	PQclear(res);
}

/* The message's text so far from live_text (the chunk just announced
 * is already there: it was written in the notifying transaction). */
static void load_acc(struct hub_session *hs, long long m)
{
	static const char qs[] =
		"SELECT coalesce(string_agg(text, '' ORDER BY off), '') "
		"FROM live_text WHERE session_id = $1 AND m = $2";
	char ms[24];
	const char *p[2] = {hs->id, ms};
	PGresult *res;
	const char *t;

	snprintf(ms, sizeof(ms), "%lld", m);
	buf_reset(&hs->acc);
	hs->acc_m = m;
	res = db_exec(&sse_db, qs, 2, p);
	if (res && (t = db_val(res, 0, 0)))
		buf_add(&hs->acc, t, (size_t)PQgetlength(res, 0, 0));
	PQclear(res);
}

static void one_delta(struct delta *d)
{
	struct hub_session *hs = session_get(d->s, 0);
	struct sse_sub *s, *next;

	if (d->done)
		return;
	d->done = 1;
	if (!hs)
		return;
	hs->ndeltas--;
	if (!hs->subs)
		return;
	if (hs->type_m != d->m)
		load_type(hs, d->m);
	if (hs->acc_m != d->m) {
		buf_reset(&hs->acc);
		hs->acc_m = d->m;
		if (d->off > 0)
			load_acc(hs, d->m);
	}
	if (hs->acc.len == d->off)
		buf_add(&hs->acc, d->d, d->dlen);
	else if (hs->acc.len < d->off)
		load_acc(hs, d->m); /* a chunk we never heard of */
	for (s = hs->subs; s; s = next) {
		size_t from;
		next = s->s_next;
		if (s->kind != SSE_STREAM || !live(s) || s->lagging ||
		    s->cursor < d->m || !sse_type_passes(&s->q, hs->dtype))
			continue;
		from = s->dm == d->m ? s->doff : 0;
		if (from >= hs->acc.len)
			continue;
		s->dm = d->m;
		s->doff = hs->acc.len;
		sse_stream_delta(s, hs->dtype, d->m, hs->acc.data + from,
				 hs->acc.len - from, hs->acc.data, hs->acc.len);
	}
}

void hub_run(void)
{
	size_t i;
	int round;

	for (round = 0; round < HUB_ROUNDS && dirty; round++)
		if (!catch_up())
			break;
	for (i = 0; i < ndeltas; i++) {
		one_delta(&deltas[i]);
		free(deltas[i].d);
	}
	ndeltas = 0;
	while (garbage) {
		struct hub_session *hs = garbage;
		garbage = hs->gnext;
		hs->gc = 0;
		if (!hs->subs) {
			if (hs->dirty) {
				struct hub_session **pp = &dirty;
				while (*pp != hs)
					pp = &(*pp)->dnext;
				*pp = hs->dnext;
			}
			session_free(hs);
		}
	}
}

void hub_free(void)
{
	size_t i;
	for (i = 0; i < ndeltas; i++)
		free(deltas[i].d);
	free(deltas);
	deltas = NULL;
	ndeltas = deltas_cap = 0;
	for (i = 0; i < HUB_BUCKETS; i++) {
		while (sessions[i])
			session_free(sessions[i]);
		while (orgs[i]) {
			struct hub_org *o = orgs[i];
			orgs[i] = o->hnext;
			free(o);
		}
	}
	dirty = garbage = NULL;
	if (lconn)
		PQfinish(lconn);
	lconn = NULL;
	free(lconninfo);
	lconninfo = NULL;
}
