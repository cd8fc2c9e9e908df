/*
 * writer: event batches and deltas (DESIGN 4.5).
 *
 * Turns queue events here; writer_flush() writes all of them, for every
 * turn, in one transaction and one round trip (evr_write_events over
 * parallel arrays), fences checked first, one notification per session.
 * Because the loop is single-threaded, events produced while a flush runs
 * simply wait for the next one: batches form by themselves under load and
 * a lone event is written at once (no timer).
 *
 * Deltas go in their own transaction with synchronous_commit off, every
 * 50 ms tick, as live_text rows plus `evd` notifications of at most 7,000
 * bytes.
 */
#include "runner.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH 64
#define DELTA_MAX_ESCAPED 6000 /* JSON-escaped bytes per evd chunk */

struct pev {
	struct turn *t;
	char type[40];
	char *data;
	long uin, uout;
	enum ev_kind kind;
	const char *final;
};

static struct pev *q;
static size_t nq, capq;

void writer_init(void)
{
	nq = 0;
}

int writer_pending(void)
{
	return nq > 0;
}

void writer_event(struct turn *t, const char *type, char *data, long uin,
		  long uout, enum ev_kind kind, const char *final)
{
	if (t->dropped) {
		free(data);
		return;
	}
	if (nq == capq) {
		capq = capq ? capq * 2 : 64;
		q = xrealloc(q, capq * sizeof(*q));
	}
	q[nq].t = t;
	snprintf(q[nq].type, sizeof(q[nq].type), "%s", type);
	q[nq].data = data;
	q[nq].uin = uin;
	q[nq].uout = uout;
	q[nq].kind = kind;
	q[nq].final = final;
	nq++;
}

/* Append one element of a PostgreSQL array literal. */
static void arr_add(struct buf *b, const char *s)
{
	buf_addch(b, b->len ? ',' : '{');
	if (!s) {
		buf_adds(b, "NULL");
		return;
	}
	buf_addch(b, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			buf_addch(b, '\\');
		buf_addch(b, *s);
	}
	buf_addch(b, '"');
}

static void arr_close(struct buf *b)
{
	if (!b->len)
		buf_addch(b, '{');
	buf_addch(b, '}');
}

static int flush_some(struct runner *r, size_t from, size_t to)
{
	static const char sql[] =
		"SELECT idx, seq, fenced FROM evr_write_events($1::uuid[], "
		"$2::int[], $3::uuid[], $4::text[], $5::jsonb[], $6::uuid[], "
		"$7::bigint[], $8::bigint[], $9::text[], $10::text[])";
	struct buf a[10];
	const char *p[10];
	char num[32];
	size_t i;
	int k, ret = 0;
	PGresult *res;

	for (k = 0; k < 10; k++)
		buf_init(&a[k], 0);
	for (i = from; i < to; i++) {
		struct pev *e = &q[i];
		arr_add(&a[0], e->t->id);
		snprintf(num, sizeof(num), "%d", e->t->attempt);
		arr_add(&a[1], num);
		arr_add(&a[2], e->t->session);
		arr_add(&a[3], e->type);
		arr_add(&a[4], e->data);
		arr_add(&a[5], e->t->input_msg[0] ? e->t->input_msg : NULL);
		snprintf(num, sizeof(num), "%ld", e->uin);
		arr_add(&a[6], num);
		snprintf(num, sizeof(num), "%ld", e->uout);
		arr_add(&a[7], num);
		arr_add(&a[8], e->kind == EV_CANCEL ? "cancel" : NULL);
		arr_add(&a[9], e->final);
	}
	for (k = 0; k < 10; k++) {
		arr_close(&a[k]);
		p[k] = a[k].data;
	}
	res = db_exec(&r->write, sql, 10, p);
	if (!res) {
		ret = -1;
		goto out;
	}
	for (k = 0; k < PQntuples(res); k++) {
		struct pev *e = &q[from + (size_t)atoi(PQgetvalue(res, k, 0)) - 1];
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
	PQclear(res);
out:
	for (k = 0; k < 10; k++)
		buf_release(&a[k]);
	return ret;
}

int writer_flush(struct runner *r)
{
	size_t i, from = 0;
	int ret = 0;
	long long t0 = now_ms();

	while (from < nq && ret == 0) {
		size_t to = from + MAX_BATCH < nq ? from + MAX_BATCH : nq;
		ret = flush_some(r, from, to);
		from = to;
	}
	if (ret != 0) {
		/* The transaction failed as a whole (connection lost, a bug):
		 * nothing was written. Drop the affected turns; their leases
		 * expire and another attempt continues from the log. */
		for (i = 0; i < nq; i++) {
			if (!q[i].t->dropped)
				log_error("turn %s: event write failed; "
					  "leaving it to a takeover",
					  q[i].t->id);
			q[i].t->dropped = 1;
		}
	}
	log_debug("flushed %zu event(s) in %lld ms", nq, now_ms() - t0);
	for (i = 0; i < nq; i++)
		free(q[i].data);
	nq = 0;
	return ret;
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
		arr_add(&a[0], t->session);
		snprintf(num, sizeof(num), "%lld", m);
		arr_add(&a[1], num);
		snprintf(num, sizeof(num), "%zu", *sent);
		arr_add(&a[2], num);
		char *chunk = xstrndup(text->data + *sent, n);
		arr_add(&a[3], chunk);
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
		arr_close(&a[k]);
		p[k] = a[k].data;
	}
	if (db_begin(&r->write) != 0) {
		ret = -1;
		goto out;
	}
	res = db_exec(&r->write, set, 0, NULL);
	PQclear(res);
	res = res ? db_exec(&r->write, sql, 4, p) : NULL;
	if (!res) {
		db_rollback(&r->write);
		ret = -1;
		goto out;
	}
	PQclear(res);
	ret = db_commit(&r->write);
out:
	for (k = 0; k < 4; k++)
		buf_release(&a[k]);
	return ret;
}
