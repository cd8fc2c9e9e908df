/*
 * writer: event batches and deltas (DESIGN 4.5).
 *
 * Turns queue events here. A flush writes up to MAX_BATCH of them, for
 * every turn, in one transaction and one round trip (evr_write_events over
 * parallel arrays: fences first, one notification per session). Flushes
 * are asynchronous on the write connection: one starts at once when none
 * is in flight, and events that arrive meanwhile wait for the next one, so
 * batches form by themselves under load while a lone event is written at
 * once (no timer), and the loop keeps streaming while PostgreSQL commits.
 * A batch never separates a turn's terminal event from its session.idled.
 *
 * Deltas go in their own transactions, on their own connection, with
 * synchronous_commit off, every 50 ms tick, as live_text rows plus `evd`
 * notifications of at most 7,000 bytes.
 */
#include "runner.h"
#include "log.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH 64
#define DELTA_MAX_ESCAPED 6000 /* JSON-escaped bytes per evd chunk */

static const char write_sql[] =
	"SELECT idx, seq, fenced FROM evr_write_events($1::uuid[], "
	"$2::int[], $3::uuid[], $4::text[], $5::jsonb[], $6::uuid[], "
	"$7::bigint[], $8::bigint[], $9::text[], $10::text[])";

struct pev {
	struct turn *t;
	char type[40];
	char *data;
	long uin, uout;
	enum ev_kind kind;
	const char *final;
};

struct evlist {
	struct pev *v;
	size_t n, cap;
};

static struct evlist queue, flight;
static int busy;
static unsigned prepared_gen; /* write-connection generation prepared on */
static long long flight_started;

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
	queue.n = flight.n = 0;
	busy = 0;
}

int writer_pending(void)
{
	return queue.n > 0 && !busy;
}

int writer_busy_fd(struct runner *r)
{
	return busy ? PQsocket(r->write.conn) : -1;
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
	push(&queue, &e);
	t->pending++;
}

/* The events of the flight are done with: release their turns. */
static void land(int failed)
{
	size_t i;
	for (i = 0; i < flight.n; i++) {
		struct pev *e = &flight.v[i];
		if (failed && !e->t->dropped) {
			/* nothing of the transaction was written: leave the
			 * turn to a takeover, which continues from the log */
			log_error("turn %s: event write failed; leaving it to "
				  "a takeover", e->t->id);
			e->t->dropped = 1;
		}
		e->t->pending--;
		free(e->data);
	}
	flight.n = 0;
	busy = 0;
}

static void take_results(PGresult *res)
{
	int k;
	for (k = 0; k < PQntuples(res); k++) {
		size_t i = (size_t)atoi(PQgetvalue(res, k, 0)) - 1;
		struct pev *e;
		if (i >= flight.n)
			continue;
		e = &flight.v[i];
		if (PQgetvalue(res, k, 2)[0] == 't') {
			if (!e->t->dropped)
				log_info("turn %s: fenced (lease lost or "
					 "session gone); dropping it",
					 e->t->id);
			e->t->dropped = 1;
			continue;
		}
		if (PQgetisnull(res, k, 1))
			continue;
		if (!strcmp(e->type, "output.message.started"))
			e->t->m_seq = atoll(PQgetvalue(res, k, 1));
		else if (!strcmp(e->type, "reason.thinking.started"))
			e->t->t_seq = atoll(PQgetvalue(res, k, 1));
	}
}

int writer_poll(struct runner *r)
{
	PGresult *res;
	int failed = 0;

	if (!busy)
		return 0;
	if (PQconsumeInput(r->write.conn) != 1) {
		log_error("event write: %s", PQerrorMessage(r->write.conn));
		land(1);
		return -1;
	}
	if (PQisBusy(r->write.conn))
		return 0;
	while ((res = PQgetResult(r->write.conn))) {
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			take_results(res);
		} else {
			log_error("event write: %s", PQresultErrorMessage(res));
			failed = 1;
		}
		PQclear(res);
	}
	log_debug("flushed %zu event(s) in %lld ms", flight.n,
		  now_ms() - flight_started);
	land(failed);
	return failed ? -1 : 0;
}

/* Where to end a batch that starts at 0: at most MAX_BATCH events, but a
 * turn's closing events stay together (its terminal event and
 * session.idled commit in one transaction). */
static size_t batch_end(void)
{
	size_t to = queue.n < MAX_BATCH ? queue.n : MAX_BATCH;
	while (to < queue.n && queue.v[to].t == queue.v[to - 1].t &&
	       (queue.v[to].final || queue.v[to].kind == EV_CANCEL))
		to++;
	return to;
}

int writer_flush(struct runner *r)
{
	struct buf a[10];
	const char *p[10];
	char num[32];
	size_t i, to;
	int k, ret = 0;

	if (busy || !queue.n)
		return 0;
	if (db_ensure(&r->write) != 0)
		goto fail_all;
	if (prepared_gen != r->write.generation) {
		PGresult *pr = PQprepare(r->write.conn, "write_events", write_sql,
					 10, NULL);
		int ok = PQresultStatus(pr) == PGRES_COMMAND_OK;
		PQclear(pr);
		if (!ok)
			goto fail_all;
		prepared_gen = r->write.generation;
	}
	to = batch_end();
	flight.n = 0;
	for (i = 0; i < to; i++)
		push(&flight, &queue.v[i]);
	memmove(queue.v, queue.v + to, (queue.n - to) * sizeof(*queue.v));
	queue.n -= to;

	for (k = 0; k < 10; k++)
		buf_init(&a[k], 0);
	for (i = 0; i < flight.n; i++) {
		struct pev *e = &flight.v[i];
		db_array_add(&a[0], e->t->id);
		snprintf(num, sizeof(num), "%d", e->t->attempt);
		db_array_add(&a[1], num);
		db_array_add(&a[2], e->t->session);
		db_array_add(&a[3], e->type);
		db_array_add(&a[4], e->data);
		db_array_add(&a[5], e->t->input_msg[0] ? e->t->input_msg : NULL);
		snprintf(num, sizeof(num), "%ld", e->uin);
		db_array_add(&a[6], num);
		snprintf(num, sizeof(num), "%ld", e->uout);
		db_array_add(&a[7], num);
		db_array_add(&a[8], e->kind == EV_CANCEL ? "cancel" : NULL);
		db_array_add(&a[9], e->final);
	}
	for (k = 0; k < 10; k++) {
		db_array_end(&a[k]);
		p[k] = a[k].data;
	}
	busy = 1;
	flight_started = now_ms();
	if (!PQsendQueryPrepared(r->write.conn, "write_events", 10, p, NULL,
				 NULL, 0)) {
		log_error("event write: %s", PQerrorMessage(r->write.conn));
		land(1);
		ret = -1;
	}
	for (k = 0; k < 10; k++)
		buf_release(&a[k]);
	return ret;
fail_all:
	/* no connection: every queued turn is left to a takeover */
	flight.n = 0;
	for (i = 0; i < queue.n; i++)
		push(&flight, &queue.v[i]);
	queue.n = 0;
	land(1);
	return -1;
}

void writer_wait(struct runner *r)
{
	while (busy || queue.n) {
		if (!busy && writer_flush(r) != 0)
			continue;
		if (busy) {
			struct pollfd pfd = {PQsocket(r->write.conn), POLLIN, 0};
			poll(&pfd, 1, 1000);
			writer_poll(r);
		}
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
			    c == '\t') ? 2 : c < 0x20 ? 6 : 1;
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
	static const char set[] = "SET LOCAL synchronous_commit = off";
	static const char sql[] = "SELECT evr_write_deltas($1::uuid[], "
				  "$2::bigint[], $3::int[], $4::text[])";
	struct buf a[4];
	const char *p[4];
	struct turn *t;
	int k, ret = 0;
	PGresult *res;

	for (k = 0; k < 4; k++)
		buf_init(&a[k], 0);
	for (t = only ? only : r->turns; t; t = only ? NULL : t->next) {
		if (t->dropped)
			continue;
		if (t->t_seq > 0 && !t->think_done)
			add_chunks(t, t->t_seq, &t->thinking, &t->think_sent, a);
		if (t->m_seq > 0)
			add_chunks(t, t->m_seq, &t->text, &t->text_sent, a);
	}
	if (!a[0].len)
		goto out;
	for (k = 0; k < 4; k++) {
		db_array_end(&a[k]);
		p[k] = a[k].data;
	}
	if (db_begin(&r->deltas) != 0) {
		ret = -1;
		goto out;
	}
	res = db_exec(&r->deltas, set, 0, NULL);
	PQclear(res);
	res = res ? db_exec(&r->deltas, sql, 4, p) : NULL;
	if (!res) {
		db_rollback(&r->deltas);
		ret = -1;
		goto out;
	}
	PQclear(res);
	ret = db_commit(&r->deltas);
out:
	for (k = 0; k < 4; k++)
		buf_release(&a[k]);
	return ret;
}
