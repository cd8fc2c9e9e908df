/*
 * hub: the process's one LISTEN connection (channels `ev` and `evd`) and
 * the map session -> subscribers (ARCHITECTURE 1, 4.5).
 *
 * A notification is only a wake-up: `ev` raises the session's highest
 * known sequence and puts it on the dirty list; hub_run() then starts a
 * catch-up round (catchup.c: ONE query for all dirty sessions, without
 * blocking the loop). `evd` deltas are queued and handed out after their
 * session's round, so a stream always has the *.started event before the
 * first delta of its message. The text they hold is capped
 * (sse_delta_buffer_mb, for a stalled database; see deltas_shed).
 *
 * After a lost connection the hub reconnects (from hub_tick) and marks
 * every subscriber for catch-up, so a lost NOTIFY never loses an event;
 * a safety round every HUB_SAFETY_S does the same.
 *
 * Keys: the hub also listens on `keys` (a revocation, fcgi/lib/auth.h).
 * It then asks which keys of its subscribers no longer authenticate (one
 * query, auth_dead_sql) and closes their streams (`disconnecting`
 * key_revoked) and answers their long-polls with a 401, so a revoked
 * key loses its connections within a second or so. The same check runs
 * with every safety round and after a reconnect (revocations missed
 * meanwhile). A key's expiry is known when it is checked: sse_sub_tick
 * ends its connections then (key_expired).
 *
 * Limits: streams and long-polls waiting in the hub both count towards
 * sse_max_per_session and sse_max_per_org (a long-poll holds a
 * connection as long as a stream); over the session limit, a stream or
 * long-poll of a key that already holds one of the same kind there
 * replaces that key's oldest (a replaced long-poll is answered at once
 * with its page), anything else is a 429.
 */
#include "hub_int.h"
#include "auth.h"
#include "strmap.h"
#include "dbq.h"
#include "config.h"
#include "log.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define HUB_SAFETY_S 30.0
/* reads of the LISTEN socket per wake-up (see hub_event) */
#define HUB_READS_MAX 64

struct hub_org {
	char id[33];
	int n;
};

/* The LISTEN connection: connecting, LISTEN sent, listening. */
enum { L_DOWN, L_CONNECTING, L_LISTENING, L_UP };

static PGconn *lconn;
static int lstate;
static struct dbq_sock lsock = {-1, 0};
static double lsince;
static char *lconninfo;
static double next_try;
static struct strmap sessions; /* id -> struct hub_session */
static struct strmap orgs;     /* id -> struct hub_org */
static struct hub_session *garbage;
static struct delta **deltas_tail = &hub_deltas;
struct hub_session *hub_dirty;
struct delta *hub_deltas;
double hub_next_safety;
static long max_per_session, max_per_org;
/* Text of the deltas not yet handed out, and its cap (see deltas_shed). */
static size_t delta_held, delta_cap;
static long delta_dropped;
static double delta_warned;
/* the dead-key check (see the top): in flight, and wanted again */
static struct dbq_job *keys_job;
static int keys_again;

static void keys_check(void);

static struct hub_session *session_get(const char *id, int create)
{
	struct hub_session *hs = strmap_get(&sessions, id);
	if (hs || !create)
		return hs;
	hs = xcalloc(1, sizeof(*hs));
	memcpy(hs->id, id, sizeof(hs->id));
	buf_init(&hs->acc, 0);
	strmap_put(&sessions, hs->id, hs);
	return hs;
}

struct hub_session *hub_session_get(const char *id)
{
	return session_get(id, 0);
}

/* Free hs; the caller has taken it out of `sessions` (or frees them all). */
static void session_free(struct hub_session *hs)
{
	catchup_forget(hs);
	buf_release(&hs->acc);
	free(hs);
}

/* Take hs out of the hub (its deltas, the map) and free it. */
static void session_remove(struct hub_session *hs)
{
	struct delta *d;
	/* its deltas reach no one now (and must not count against a later
	 * hub_session of the same id) */
	for (d = hub_deltas; d && hs->ndeltas > 0; d = d->next)
		if (!d->done && !strcmp(d->s, hs->id))
			hub_delta_done(d, hs);
	strmap_del(&sessions, hs->id);
	session_free(hs);
}

static struct hub_org *org_get(const char *id, int create)
{
	struct hub_org *o = strmap_get(&orgs, id);
	if (o || !create)
		return o;
	o = xcalloc(1, sizeof(*o));
	memcpy(o->id, id, sizeof(o->id));
	strmap_put(&orgs, o->id, o);
	return o;
}

static void org_drop(const char *id)
{
	struct hub_org *o = strmap_get(&orgs, id);
	if (o && --o->n <= 0)
		free(strmap_del(&orgs, id));
}

void hub_delta_done(struct delta *d, struct hub_session *hs)
{
	if (d->done)
		return;
	d->done = 1;
	delta_held -= d->dlen;
	if (hs)
		hs->ndeltas--;
}

/* The deltas held passed the cap: the database is stalled and their
 * sessions wait for queries. Drop the oldest until under it. Nothing is
 * lost for good: the next delta of such a message finds the session's
 * text short and reads it whole from live_text (one delta with all the
 * missing text, as after a reconnect), and *.completed carries it all. */
static void deltas_shed(void)
{
	struct delta *d;
	long n = 0;
	for (d = hub_deltas; d && delta_held > delta_cap; d = d->next) {
		struct hub_session *hs;
		if (d->done)
			continue;
		hs = session_get(d->s, 0);
		if (hs && hs->ld == d)
			continue; /* its lookup is in flight */
		hub_delta_done(d, hs);
		n++;
	}
	delta_dropped += n;
	if (n && sse_now() - delta_warned > 10) {
		delta_warned = sse_now();
		log_warn("deltas held for stalled sessions passed %zu MB: %ld "
			 "dropped so far (their streams get the text from "
			 "live_text)",
			 delta_cap >> 20, delta_dropped);
	}
}

void hub_mark_dirty(struct hub_session *hs)
{
	if (hs->dirty)
		return;
	hs->dirty = 1;
	hs->dnext = hub_dirty;
	hub_dirty = hs;
}

int hub_live(const struct sse_sub *s)
{
	return !s->conn->dead && !s->conn->closing;
}

/* --- the LISTEN connection ------------------------------------------ */

static void need_one(const char *id, void *val, void *ctx)
{
	struct hub_session *hs = val;
	struct sse_sub *s;
	(void)id;
	(void)ctx;
	for (s = hs->subs; s; s = s->s_next)
		s->need = 1;
	hub_mark_dirty(hs);
}

static void all_need(void)
{
	strmap_each(&sessions, need_one, NULL);
}

/* Drop the connection; hub_tick reconnects (at once after a loss, a
 * second after a failed attempt). */
static void hub_down(const char *what)
{
	if (!lconn)
		return;
	if (lstate == L_UP) {
		log_warn("LISTEN connection lost; reconnecting");
		next_try = 0;
	} else {
		log_error("LISTEN connection: %s",
			  what ? what : PQerrorMessage(lconn));
	}
	dbq_unwatch(&lsock);
	PQfinish(lconn);
	lconn = NULL;
	lstate = L_DOWN;
}

/* Start connecting; hub_event carries on (nothing here blocks). */
static void hub_connect(double now)
{
	if (!(lconn = dbq_connect_start(lconninfo, "everruns-sse")))
		return;
	lstate = L_CONNECTING;
	lsince = now;
	lsock.fd = -1;
	dbq_watch(lconn, &lsock, sse_hub_tag(), EPOLLOUT, 1);
}

static void connect_step(void)
{
	switch (PQconnectPoll(lconn)) {
	case PGRES_POLLING_READING:
		dbq_watch(lconn, &lsock, sse_hub_tag(), EPOLLIN, 1);
		return;
	case PGRES_POLLING_WRITING:
		dbq_watch(lconn, &lsock, sse_hub_tag(), EPOLLOUT, 1);
		return;
	case PGRES_POLLING_OK:
		PQsetnonblocking(lconn, 1);
		if (!PQsendQuery(
			    lconn,
			    "LISTEN ev; LISTEN evd; LISTEN " AUTH_REVOKE_CHANNEL) ||
		    PQflush(lconn) != 0) { /* a few bytes: all sent */
			hub_down(NULL);
			return;
		}
		lstate = L_LISTENING;
		dbq_watch(lconn, &lsock, sse_hub_tag(), EPOLLIN, 0);
		return;
	default:
		hub_down(NULL);
		return;
	}
}

/* The answers to LISTEN: 1 when all are in and fine. */
static int listen_answered(void)
{
	PGresult *r;
	while (!PQisBusy(lconn)) {
		if (!(r = PQgetResult(lconn)))
			return 1;
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			hub_down(PQresultErrorMessage(r));
			PQclear(r);
			return 0;
		}
		PQclear(r);
	}
	return 0;
}

int hub_init(const char *conninfo)
{
	lconninfo = xstrdup(conninfo);
	max_per_session = config_int("sse_max_per_session");
	max_per_org = config_int("sse_max_per_org");
	delta_cap = (size_t)config_int("sse_delta_buffer_mb");
	if (delta_cap < 1)
		delta_cap = 1;
	delta_cap <<= 20;
	hub_next_safety = sse_now() + HUB_SAFETY_S;
	hub_connect(sse_now());
	return 0;
}

void hub_tick(double now)
{
	if (!lconn && now >= next_try) {
		next_try = now + 1.0;
		hub_connect(now);
	}
	if (lconn && lstate != L_UP && now - lsince > dbq_connect_timeout())
		hub_down("timed out");
	if (now >= hub_next_safety) {
		hub_next_safety = now + HUB_SAFETY_S;
		all_need();
		keys_check();
	}
}

void hub_session_gone(struct hub_session *hs)
{
	struct sse_sub *s, *next;
	for (s = hs->subs; s; s = next) {
		next = s->s_next;
		if (!hub_live(s))
			continue;
		if (s->kind == SSE_STREAM)
			sse_stream_close(s, "session_deleted");
		else
			sse_poll_wake(s);
	}
}

static void on_ev(const char *payload)
{
	char id[33];
	const char *colon = strchr(payload, ':');
	struct hub_session *hs;
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
		hub_mark_dirty(hs);
		return;
	}
	hub_session_gone(hs);
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
	d = xcalloc(1, sizeof(*d));
	memcpy(d->s, s, 33);
	d->m = json_object_object_get_ex(o, "m", &v) ? json_object_get_int64(v)
						     : 0;
	d->off = json_object_object_get_ex(o, "off", &v)
			 ? (size_t)json_object_get_int64(v)
			 : 0;
	if (!json_object_object_get_ex(o, "d", &v) || d->m <= 0) {
		free(d);
		goto out;
	}
	d->dlen = (size_t)json_object_get_string_len(v);
	d->d = xstrndup(json_object_get_string(v), d->dlen);
	if (json_object_object_get_ex(o, "x", &v) &&
	    json_object_is_type(v, json_type_object))
		d->x = xstrdup(json_object_to_json_string_ext(
			v, JSON_C_TO_STRING_PLAIN));
	d->bound = hs->known;
	hs->ndeltas++;
	*deltas_tail = d;
	deltas_tail = &d->next;
	delta_held += d->dlen;
	if (delta_held > delta_cap)
		deltas_shed();
out:
	json_object_put(o);
}

void hub_event(uint32_t events)
{
	PGnotify *n;

	if (!lconn)
		return;
	if (lstate == L_CONNECTING) {
		connect_step();
		return;
	}
	(void)events;
	if (!PQconsumeInput(lconn)) {
		hub_down(NULL);
		return;
	}
	if (lstate == L_LISTENING) {
		if (!listen_answered())
			return;
		lstate = L_UP;
		/* notifications sent while we were away are gone: read the
		 * table */
		all_need();
		keys_check();
		log_info("listening on channels ev, evd, " AUTH_REVOKE_CHANNEL);
	}
	/* One commit's notifications come in a burst of many reads (libpq
	 * takes one recv per PQconsumeInput): read on while they come, so
	 * that one catch-up round serves the whole burst. */
	for (int reads = 0; reads < HUB_READS_MAX; reads++) {
		int got = 0;
		while ((n = PQnotifies(lconn))) {
			if (!strcmp(n->relname, "ev"))
				on_ev(n->extra);
			else if (!strcmp(n->relname, "evd"))
				on_evd(n->extra);
			else if (!strcmp(n->relname, AUTH_REVOKE_CHANNEL))
				keys_check();
			PQfreemem(n);
			got++;
		}
		if (!got)
			break;
		if (!PQconsumeInput(lconn)) {
			hub_down(NULL);
			return;
		}
	}
	if (PQstatus(lconn) == CONNECTION_BAD)
		hub_down(NULL);
}

/* --- subscribers ------------------------------------------------------ */

int hub_subscribe(struct sse_sub *s)
{
	struct hub_session *hs = session_get(s->session, 1);
	struct hub_org *o;

	if (hs->nstreams >= max_per_session) {
		struct sse_sub *old;
		for (old = hs->subs; old; old = old->s_next)
			if (old->kind == s->kind && hub_live(old) &&
			    !strcmp(old->key, s->key))
				break;
		if (!old)
			goto full;
		if (old->kind == SSE_STREAM)
			sse_stream_close(old, "replaced");
		else
			sse_poll_wake(old);
	}
	o = org_get(s->org, 0);
	if (o && o->n >= max_per_org)
		goto full;
	org_get(s->org, 1)->n++;
	hs->nstreams++;
	s->hs = hs;
	s->s_prev = hs->tail;
	s->s_next = NULL;
	if (hs->tail)
		hs->tail->s_next = s;
	else
		hs->subs = s;
	hs->tail = s;
	if (s->need)
		hub_mark_dirty(hs);
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
	hs->nstreams--;
	org_drop(s->org);
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
		hub_mark_dirty(s->hs);
}

/* --- keys that stopped working --------------------------------------- */

static void key_add(const char *id, void *val, void *ctx)
{
	struct hub_session *hs = val;
	struct strmap *keys = ctx;
	struct sse_sub *s;
	(void)id;
	for (s = hs->subs; s; s = s->s_next)
		if (hub_live(s) && s->key[0])
			strmap_put(keys, s->key, s);
}

static void key_lit(const char *key, void *val, void *ctx)
{
	(void)val;
	db_array_add(ctx, key);
}

static void close_dead(const char *id, void *val, void *ctx)
{
	struct hub_session *hs = val;
	struct sse_sub *s, *next;
	(void)id;
	for (s = hs->subs; s; s = next) {
		next = s->s_next;
		if (!hub_live(s) || !strmap_get(ctx, s->key))
			continue;
		sse_sub_key_gone(s, "key_revoked");
	}
}

static void on_dead_keys(void *ctx, PGresult *res)
{
	struct strmap dead = STRMAP_INIT;
	int i, n;
	(void)ctx;
	keys_job = NULL;
	n = res ? PQntuples(res) : 0;
	for (i = 0; i < n; i++)
		strmap_put(&dead, PQgetvalue(res, i, 0), &dead);
	PQclear(res);
	if (n) {
		log_info("closing the connections of %d revoked or expired "
			 "key(s)",
			 n);
		strmap_each(&sessions, close_dead, &dead);
	}
	strmap_release(&dead);
	if (keys_again) {
		keys_again = 0;
		keys_check();
	}
}

/* Ask which of the subscribers' keys no longer authenticate. */
static void keys_check(void)
{
	struct strmap keys = STRMAP_INIT;
	struct buf lit = BUF_INIT;
	const char *p[1];

	if (keys_job) { /* one at a time; the next sees this one's keys */
		keys_again = 1;
		return;
	}
	strmap_each(&sessions, key_add, &keys);
	if (keys.n) {
		buf_init(&lit, 40 * keys.n + 2);
		strmap_each(&keys, key_lit, &lit);
		db_array_end(&lit);
		p[0] = lit.data;
		keys_job = dbq_query(auth_dead_sql, 1, p, on_dead_keys, NULL);
	}
	buf_release(&lit);
	strmap_release(&keys);
}

/* --- the loop's round ------------------------------------------------ */

void hub_run(void)
{
	struct hub_session *keep = NULL;
	struct delta **pp;

	catchup_start();
	deltas_run();
	/* deltas handed out are dropped; the tail is found again */
	for (pp = &hub_deltas; *pp;) {
		struct delta *d = *pp;
		if (d->done) {
			*pp = d->next;
			free(d->d);
			free(d->x);
			free(d);
		} else {
			pp = &d->next;
		}
	}
	deltas_tail = pp;
	while (garbage) {
		struct hub_session *hs = garbage;
		garbage = hs->gnext;
		hs->gc = 0;
		if (hs->subs)
			continue;
		if (hs->busy) { /* a query holds it: later */
			hs->gc = 1;
			hs->gnext = keep;
			keep = hs;
			continue;
		}
		if (hs->dirty) {
			struct hub_session **dp = &hub_dirty;
			while (*dp != hs)
				dp = &(*dp)->dnext;
			*dp = hs->dnext;
		}
		session_remove(hs);
	}
	garbage = keep;
}

static void session_free_one(const char *id, void *val, void *ctx)
{
	(void)id;
	(void)ctx;
	session_free(val);
}

static void free_one(const char *id, void *val, void *ctx)
{
	(void)id;
	(void)ctx;
	free(val);
}

void hub_free(void)
{
	while (hub_deltas) {
		struct delta *d = hub_deltas;
		hub_deltas = d->next;
		free(d->d);
		free(d->x);
		free(d);
	}
	deltas_tail = &hub_deltas;
	delta_held = 0;
	keys_job = NULL; /* dbq_free drops it */
	keys_again = 0;
	delta_dropped = 0;
	catchup_free();
	strmap_each(&sessions, session_free_one, NULL);
	strmap_release(&sessions);
	strmap_each(&orgs, free_one, NULL);
	strmap_release(&orgs);
	hub_dirty = garbage = NULL;
	dbq_unwatch(&lsock);
	PQfinish(lconn);
	lconn = NULL;
	lstate = L_DOWN;
	free(lconninfo);
	lconninfo = NULL;
}
