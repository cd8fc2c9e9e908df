/*
 * writer: event batches and deltas (ARCHITECTURE 4.2, 4.3).
 *
 * Turns queue events here. A flush writes up to event_batch_max of them, for
 * every turn, in one transaction and one round trip (evr_write_events over
 * parallel arrays: fences first, one notification per session). Flushes
 * are asynchronous on the write connection: one starts at once when none
 * is in flight, and events that arrive meanwhile wait for the next one, so
 * batches form by themselves under load while a lone event is written at
 * once (no timer), and the loop keeps streaming while PostgreSQL commits.
 * A batch never separates a turn's terminal event from its session.idled.
 * One turn's bad row never sinks the others: a batch PostgreSQL refuses
 * for its content is written again turn by turn, and the turn whose own
 * batch is refused fails at once (event_unstorable).
 *
 * Deltas go in their own transactions, on their own connection, with
 * synchronous_commit off, every 50 ms tick, as live_text rows plus `evd`
 * notifications of at most 7,000 bytes.
 */
#include "runner.h"
#include "config.h"
#include "ids.h"
#include "log.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELTA_MAX_ESCAPED 6000 /* JSON-escaped bytes per evd chunk */

static const char write_sql[] =
	"SELECT idx, seq, fenced FROM evr_write_events($1::uuid[], "
	"$2::int[], $3::uuid[], $4::text[], $5::jsonb[], $6::uuid[], "
	"$7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::uuid[])";
#define WRITE_NPARAMS 11

struct pev {
	struct turn *t;
	char type[40];
	char *data;
	long uin, uout;
	enum ev_kind kind;
	const char *final;
	int solo; /* in a refused batch: written again in one of its turn's own
		   */
};

struct evlist {
	struct pev *v;
	size_t n, cap;
};

/* Two flushes may be in flight at once, each on its own connection, as
 * long as they touch no common session: a session's events are in at most
 * one flight, so its sequence order is the queue's order, and the two
 * transactions lock disjoint sessions and turns (no deadlock). */
#define FLIGHTS 2

struct flight {
	struct evlist evs;
	/* evr_write_events' parameters, built again for every flush in
	 * buffers kept from the last (a full batch is ~0.5 MB: allocating it
	 * anew each time cost page faults) */
	struct db_barray args[WRITE_NPARAMS];
	int busy;
	unsigned prepared_gen; /* connection generation prepared on */
	long long started;
};

static struct evlist queue;
static struct flight fl[FLIGHTS];
/* A free flight found nothing it could take: every queued event belongs
 * to a session of the busy flight. Nothing can be flushed until that
 * flight lands or a new event is queued, so the loop may sleep (without
 * this, it spun through every turn until the other flight landed). */
static int stalled;
static size_t max_batch = 64; /* event_batch_max */

static struct db *conn_of(struct runner *r, int i)
{
	return i ? &r->write2 : &r->write;
}

static void push(struct evlist *l, const struct pev *e)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = *e;
}

void writer_init(void)
{
	int i;
	queue.n = 0;
	max_batch = (size_t)config_int("event_batch_max");
	for (i = 0; i < FLIGHTS; i++) {
		fl[i].evs.n = 0;
		fl[i].busy = 0;
	}
}

int writer_pending(void)
{
	int i;
	if (!queue.n || stalled)
		return 0;
	for (i = 0; i < FLIGHTS; i++)
		if (!fl[i].busy)
			return 1;
	return 0;
}

int writer_busy_fds(struct runner *r, int fds[])
{
	int i, n = 0;
	for (i = 0; i < FLIGHTS; i++)
		if (fl[i].busy)
			fds[n++] = PQsocket(conn_of(r, i)->conn);
	return n;
}

void writer_event(struct turn *t, const char *type, char *data, long uin,
		  long uout, enum ev_kind kind, const char *final)
{
	struct pev e;
	if (t->dropped) {
		free(data);
		return;
	}
	e.t = t;
	snprintf(e.type, sizeof(e.type), "%s", type);
	e.data = data;
	e.uin = uin;
	e.uout = uout;
	e.kind = kind;
	e.final = final;
	e.solo = 0;
	push(&queue, &e);
	stalled = 0; /* a new event may be one a free flight can take */
	t->pending++;
}

/* The events of flight f are done with: release their turns. */
static void land(struct flight *f, int failed)
{
	size_t i;
	for (i = 0; i < f->evs.n; i++) {
		struct pev *e = &f->evs.v[i];
		if (failed && !e->t->dropped) {
			/* nothing of the transaction was written: leave the
			 * turn to a takeover, which continues from the log */
			log_error("turn %s: event write failed; leaving it to "
				  "a takeover",
				  e->t->id);
			e->t->dropped = 1;
		}
		e->t->pending--;
		e->t->in_flight = 0;
		free(e->data);
	}
	f->evs.n = 0;
	f->busy = 0;
	stalled = 0;
}

static void take_results(struct flight *f, PGresult *res)
{
	int k;
	for (k = 0; k < PQntuples(res); k++) {
		size_t i = (size_t)atoi(PQgetvalue(res, k, 0)) - 1;
		struct pev *e;
		if (i >= f->evs.n)
			continue;
		e = &f->evs.v[i];
		if (PQgetvalue(res, k, 2)[0] == 't') {
			if (!e->t->dropped)
				log_info("turn %s: fenced (lease lost or "
					 "session gone); dropping it",
					 e->t->id);
			e->t->dropped = 1;
			continue;
		}
		if (PQgetisnull(res, k, 1)) {
			/* refused, not fenced: the turn is cancelling (a cancel
			 * landed while these were on their way, maybe its last
			 * events): it ends with the cancel pair now */
			turn_refused(e->t);
			continue;
		}
		if (!strcmp(e->type, "output.message.started"))
			e->t->m_seq = atoll(PQgetvalue(res, k, 1));
		else if (!strcmp(e->type, "reason.thinking.started"))
			e->t->t_seq = atoll(PQgetvalue(res, k, 1));
	}
}

/* Could the refusal be the content of the batch (a row PostgreSQL cannot
 * hold, a check), rather than the connection or the server's state? */
static int content_fault(PGresult *res)
{
	static const char *const not_rows[] = {"08", "40", "53",
					       "57", "58", "XX"};
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	size_t k;
	if (!st || strlen(st) < 2)
		return 0;
	for (k = 0; k < sizeof(not_rows) / sizeof(*not_rows); k++)
		if (!strncmp(st, not_rows[k], 2))
			return 0;
	return 1;
}

/* A refused batch of several turns goes back to the head of the queue,
 * each of its turns to be written on its own; a refused batch of one turn
 * fails that turn (its queued events are discarded, none of it was
 * written). */
static void refused(struct runner *r, struct flight *f, const char *why)
{
	struct turn *t = f->evs.n ? f->evs.v[0].t : NULL;
	size_t k, keep = 0;
	int several = 0;

	for (k = 0; k < f->evs.n; k++)
		if (f->evs.v[k].t != t)
			several = 1;
	if (several) {
		log_warn("event write refused (%s); writing its %zu event(s) "
			 "turn by turn",
			 why, f->evs.n);
		while (queue.cap < queue.n + f->evs.n)
			queue.cap = queue.cap ? queue.cap * 2 : 64;
		queue.v = xrealloc(queue.v, queue.cap * sizeof(*queue.v));
		memmove(queue.v + f->evs.n, queue.v,
			queue.n * sizeof(*queue.v));
		for (k = 0; k < f->evs.n; k++) {
			queue.v[k] = f->evs.v[k];
			queue.v[k].solo = 1;
			queue.v[k].t->in_flight = 0;
		}
		queue.n += f->evs.n;
		f->evs.n = 0;
		f->busy = 0;
		stalled = 0;
		return;
	}
	for (k = 0; k < f->evs.n; k++)
		if (!strcmp(f->evs.v[k].type, "turn.started"))
			t->announced = 0; /* not written: to be said again */
	for (k = 0; k < queue.n; k++) {
		if (queue.v[k].t == t) {
			free(queue.v[k].data);
			t->pending--;
		} else {
			queue.v[keep++] = queue.v[k];
		}
	}
	queue.n = keep;
	if (t->store_failed || t->dropped) {
		land(f, 1); /* even its failure could not be written */
		return;
	}
	t->store_failed = 1;
	log_error("turn %s: its events were refused (%s); failing it", t->id,
		  why);
	land(f, 0);
	turn_abort(r, t, "event_unstorable",
		   "PostgreSQL refused to store this turn's events");
}

static int poll_one(struct runner *r, int i)
{
	struct flight *f = &fl[i];
	PGconn *c = conn_of(r, i)->conn;
	PGresult *res;
	int failed = 0, fault = 0;
	char why[200] = "";

	if (!f->busy)
		return 0;
	if (PQconsumeInput(c) != 1) {
		log_error("event write: %s", PQerrorMessage(c));
		land(f, 1);
		return -1;
	}
	if (PQisBusy(c))
		return 0;
	while ((res = PQgetResult(c))) {
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			take_results(f, res);
		} else {
			log_error("event write: %s", PQresultErrorMessage(res));
			failed = 1;
			fault = content_fault(res);
			snprintf(why, sizeof(why), "%s",
				 PQresultErrorField(res, PG_DIAG_SQLSTATE)
					 ? PQresultErrorField(res,
							      PG_DIAG_SQLSTATE)
					 : "?");
		}
		PQclear(res);
	}
	log_debug("flushed %zu event(s) in %lld ms", f->evs.n,
		  now_ms() - f->started);
	if (failed && fault && PQstatus(c) == CONNECTION_OK) {
		refused(r, f, why);
		return -1;
	}
	land(f, failed);
	return failed ? -1 : 0;
}

int writer_poll(struct runner *r)
{
	int i, ret = 0;
	for (i = 0; i < FLIGHTS; i++)
		if (poll_one(r, i) != 0)
			ret = -1;
	return ret;
}

/* Move up to max_batch queued events whose sessions are not in the other
 * flight into flight i, in queue order. Once an event of a session stays
 * queued, so do all later ones of that session (its order), and a turn's
 * closing events, adjacent in the queue, are never split (they may go one
 * past max_batch).
 *
 * Sessions are told apart by their turn: this runner holds at most one
 * turn of a session at a time (the next message needs the session idle,
 * which only the landing of the previous turn's last flush makes it), so
 * marks on the turn (in_flight, held_pass) keep this linear in the queue. */
static void take_batch(int i)
{
	static unsigned pass;
	struct flight *f = &fl[i];
	struct turn *solo = NULL;
	size_t k, keep = 0;

	pass++;
	f->evs.n = 0;
	for (k = 0; k < queue.n; k++) {
		struct pev *e = &queue.v[k];
		struct turn *t = e->t;
		int closing = f->evs.n && f->evs.v[f->evs.n - 1].t == t &&
			      (e->final || e->kind == EV_CANCEL);
		int held = t->held_pass == pass;
		int other = t->in_flight && t->in_flight != i + 1;
		if (t->dropped) {
			/* left to a takeover (an earlier flight failed, or it
			 * was fenced): nothing more of this attempt is written,
			 * or the log would have a gap */
			free(e->data);
			t->pending--;
			continue;
		}
		int take = !held && !other && (f->evs.n < max_batch || closing);
		if (take && (e->solo || solo)) {
			/* after a refused batch: one turn per flight */
			if (!solo && !f->evs.n)
				solo = t;
			take = solo == t;
		}
		if (take) {
			push(&f->evs, e);
			t->in_flight = i + 1;
		} else {
			t->held_pass = pass;
			queue.v[keep++] = *e;
		}
	}
	queue.n = keep;
}

/* The parameters of evr_write_events, as binary arrays (db_barray): no
 * escaping here, no text parsing of ids and numbers in PostgreSQL. */
static const unsigned write_oids[WRITE_NPARAMS] = {
	DB_OID_UUID,  DB_OID_INT4, DB_OID_UUID, DB_OID_TEXT,
	DB_OID_JSONB, DB_OID_UUID, DB_OID_INT8, DB_OID_INT8,
	DB_OID_TEXT,  DB_OID_TEXT, DB_OID_UUID};

/* The events' ids, UUIDv7 drawn for the whole batch at once (in the
 * database, a column default per row, they were 2.3 us of each event's
 * write). */
static void add_ids(struct db_barray *a, size_t n)
{
	unsigned char *u = xmalloc(n * 16);
	size_t k;

	ids_uuid7(u, n);
	for (k = 0; k < n; k++)
		db_barray_add(a, u + 16 * k, 16);
	free(u);
}

static int flush_one(struct runner *r, int i)
{
	struct flight *f = &fl[i];
	struct db *db = conn_of(r, i);
	struct db_barray *a = f->args;
	const char *p[WRITE_NPARAMS];
	int len[WRITE_NPARAMS], fmt[WRITE_NPARAMS];
	size_t k;
	int j, ret = 0;

	if (db_ensure(db) != 0)
		return -1;
	if (f->prepared_gen != db->generation) {
		PGresult *pr = PQprepare(db->conn, "write_events", write_sql,
					 WRITE_NPARAMS, NULL);
		int ok = PQresultStatus(pr) == PGRES_COMMAND_OK;
		PQclear(pr);
		if (!ok)
			return -1;
		f->prepared_gen = db->generation;
	}
	take_batch(i);
	if (!f->evs.n) {
		stalled = queue.n > 0;
		return 0;
	}
	for (j = 0; j < WRITE_NPARAMS; j++)
		db_barray_begin(&a[j], write_oids[j]);
	for (k = 0; k < f->evs.n; k++) {
		struct pev *e = &f->evs.v[k];
		/* the ids are the database's own, read back as hex */
		db_barray_uuid(&a[0], e->t->id);
		db_barray_int4(&a[1], e->t->attempt);
		db_barray_uuid(&a[2], e->t->session);
		db_barray_text(&a[3], e->type);
		db_barray_jsonb(&a[4], e->data);
		db_barray_uuid(&a[5], e->t->input_msg);
		db_barray_int8(&a[6], e->uin);
		db_barray_int8(&a[7], e->uout);
		db_barray_text(&a[8], e->kind == EV_CANCEL ? "cancel" : NULL);
		db_barray_text(&a[9], e->final);
	}
	add_ids(&a[10], f->evs.n);
	for (j = 0; j < WRITE_NPARAMS; j++) {
		db_barray_end(&a[j]);
		p[j] = a[j].b.data;
		len[j] = (int)a[j].b.len;
		fmt[j] = 1;
	}
	f->busy = 1;
	f->started = now_ms();
	if (!PQsendQueryPrepared(db->conn, "write_events", WRITE_NPARAMS, p,
				 len, fmt, 0)) {
		log_error("event write: %s", PQerrorMessage(db->conn));
		land(f, 1);
		ret = -1;
	}
	return ret;
}

int writer_flush(struct runner *r)
{
	int i, ret = 0;
	for (i = 0; i < FLIGHTS && queue.n; i++) {
		if (fl[i].busy)
			continue;
		if (flush_one(r, i) != 0) {
			ret = -1;
			if (!fl[i].busy &&
			    PQstatus(conn_of(r, i)->conn) != CONNECTION_OK) {
				/* no connection: what is queued is left to a
				 * takeover */
				struct flight *f = &fl[i];
				size_t k;
				for (k = 0; k < queue.n; k++)
					push(&f->evs, &queue.v[k]);
				queue.n = 0;
				land(f, 1);
			}
		}
	}
	return ret;
}

void writer_wait(struct runner *r)
{
	int i, n, fds[FLIGHTS];
	for (;;) {
		writer_flush(r);
		n = writer_busy_fds(r, fds);
		if (!n && !queue.n)
			return;
		for (i = 0; i < n; i++) {
			struct pollfd pfd = {fds[i], POLLIN, 0};
			poll(&pfd, 1, 100);
		}
		writer_poll(r);
	}
}

/* Length of the longest prefix of s[0..n) whose JSON escaping fits in
 * max bytes, ending on a UTF-8 boundary. */
static size_t chunk_len(const char *s, size_t n, size_t max)
{
	size_t i = 0, esc = 0, last_ok = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t w = (c == '"' || c == '\\' || c == '\n' || c == '\r' ||
			    c == '\t')
				   ? 2
			   : c < 0x20 ? 6
				      : 1;
		if (esc + w > max)
			break;
		esc += w;
		i++;
		if (i == n || ((unsigned char)s[i] & 0xC0) != 0x80)
			last_ok = i;
	}
	return last_ok ? last_ok : (i ? i : 1);
}

static void add_chunks(struct turn *t, long long m, const struct buf *text,
		       size_t *sent, struct buf *a)
{
	char num[32];
	while (*sent < text->len) {
		size_t n = chunk_len(text->data + *sent, text->len - *sent,
				     DELTA_MAX_ESCAPED);
		/* the turn's fence: only its attempt's chunks are written */
		db_array_add(&a[4], t->id);
		snprintf(num, sizeof(num), "%d", t->attempt);
		db_array_add(&a[5], num);
		db_array_add(&a[0], t->session);
		snprintf(num, sizeof(num), "%lld", m);
		db_array_add(&a[1], num);
		snprintf(num, sizeof(num), "%zu", *sent);
		db_array_add(&a[2], num);
		char *chunk = xstrndup(text->data + *sent, n);
		db_array_add(&a[3], chunk);
		free(chunk);
		*sent += n;
	}
}

int writer_deltas(struct runner *r, struct turn *only)
{
	static const char sql[] = "SELECT evr_write_deltas($5::uuid[], "
				  "$6::int[], $1::uuid[], $2::bigint[], "
				  "$3::int[], $4::text[])";
	struct buf a[6];
	const char *p[6];
	struct turn *t;
	int k, ret = 0;

	for (k = 0; k < 6; k++)
		buf_init(&a[k], 0);
	for (t = only ? only : r->turns; t; t = only ? NULL : t->next) {
		if (t->dropped)
			continue;
		if (t->t_seq > 0 && !t->think_done)
			add_chunks(t, t->t_seq, &t->thinking, &t->think_sent,
				   a);
		if (t->m_seq > 0)
			add_chunks(t, t->m_seq, &t->text, &t->text_sent, a);
	}
	if (!a[0].len)
		goto out;
	for (k = 0; k < 6; k++) {
		db_array_end(&a[k]);
		p[k] = a[k].data;
	}
	ret = db_exec_nosync(&r->deltas, sql, 6, p);
out:
	for (k = 0; k < 6; k++)
		buf_release(&a[k]);
	return ret;
}
