/*
 * catchup: the hub's queries, on the query connections of dbq.c, never
 * blocking the loop (ARCHITECTURE 1, 4.5).
 *
 * A round catches every dirty session's lagging subscribers up with ONE
 * query (evr_catchup, sql/008: (session, cursor) pairs, at most HUB_PER_SESSION
 * events per session; a session that hit the bound stays dirty). At most
 * sse_db_connections - 1 rounds (at least one) are in flight, with
 * disjoint sessions:
 * wake-ups that arrive meanwhile make the next round. The subscribers a
 * round serves are fixed when it is sent (in_round): one that joins later
 * waits for the next round, so nobody is handed rows after a cursor other
 * than its own.
 *
 * Deltas: each session keeps the text of its current message (acc) so a
 * subscriber that joined late, or lagged, gets the missing text as one
 * delta; when the session's acc does not start at offset 0 it is loaded
 * from live_text, and the delta type is looked up when the hub did not
 * see the message's *.started event. A delta that needs a lookup waits
 * for it, and so does the rest of its session: a catch-up delivery that
 * meets such a delta between two rows pauses there (holding the shared
 * result) and resumes when the lookup is answered. A delta's frame
 * carries the context of its *.started event (turn, input message; read
 * with the type) and an id that is a cursor (evq.h): the subscriber's
 * durable cursor, the message and the byte its text reached.
 *
 * A message's acc holds at most what the runner lets a model send
 * (llm_max_text_kb / llm_max_thinking_kb, the larger): a delta that would
 * end past it is dropped (the runner fails such a turn with
 * output_too_large) and a loaded text is cut there.
 */
#include "hub_int.h"
#include "config.h"
#include "dbq.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rounds in flight: one less than the query connections (at least
 * one), so a round stuck behind a lock leaves a connection to the
 * requests being opened. */
#define HUB_ROUNDS_MAX 8

struct hub_res {
	PGresult *res;
	int refs;
};

struct round {
	int used;
	int n;
	struct hub_session **ss; /* busy until answered */
};

static struct round rounds[HUB_ROUNDS_MAX];

static void res_unref(struct hub_res *r)
{
	if (r && --r->refs == 0) {
		PQclear(r->res);
		free(r);
	}
}

static int wants(const struct sse_sub *s, const struct hub_session *hs)
{
	return hub_live(s) && !s->lagging && (s->need || s->cursor < hs->known);
}

static int one_delta(struct delta *d);

/* The session's pending deltas announced before event `seq`; 1 if one
 * of them waits for a lookup. */
static int deltas_before(struct hub_session *hs, long long seq)
{
	struct delta *d;
	for (d = hub_deltas; d && hs->ndeltas > 0; d = d->next)
		if (!d->done && d->bound < seq && !strcmp(d->s, hs->id) &&
		    one_delta(d))
			return 1;
	return 0;
}

/* A uuid as PostgreSQL prints it (8-4-4-4-12) as our ids' 32 hex
 * digits; "" stays "" (NULL). The query leaves this to us: replace() in
 * SQL, four times a row, and the sort on its text took about a fifth of
 * the catch-up query's time. */
static void uuid_hex(char out[33], const char *uuid)
{
	int n = 0;
	for (; *uuid && n < 32; uuid++)
		if (*uuid != '-')
			out[n++] = *uuid;
	out[n] = '\0';
}

/* The frame of catch-up row i (columns: see catchup_start). */
static void row_frame(struct buf *f, PGresult *res, int i, long long seq,
		      const char *type, const char *session)
{
	struct sse_event_row r;
	char id[33], turn[33], msg[33];
	uuid_hex(id, PQgetvalue(res, i, 3));
	uuid_hex(turn, PQgetvalue(res, i, 7));
	uuid_hex(msg, PQgetvalue(res, i, 8));
	r.seq = seq;
	r.type = type;
	r.session = session;
	r.id = id;
	r.data = PQgetvalue(res, i, 4);
	r.dlen = (size_t)PQgetlength(res, i, 4);
	r.ts_us = strtoll(PQgetvalue(res, i, 6), NULL, 10);
	r.turn = turn;
	r.msg = msg;
	buf_init(f, r.dlen + 320);
	sse_event_frame(f, &r);
}

/* Hand the rows [at, end) of the paused result to the session's round,
 * with the session's deltas in their place among them; stop if a delta
 * waits for a lookup (resumed from its answer). */
static void deliver(struct hub_session *hs)
{
	PGresult *res = hs->pr->res;
	struct sse_sub *s, *next;

	for (; hs->at < hs->end; hs->at++) {
		int i = hs->at;
		long long seq = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		const char *type = PQgetvalue(res, i, 2);
		struct buf frame = BUF_INIT; /* rendered on first use */
		if (deltas_before(hs, seq))
			return;
		if (seq > hs->known)
			hs->known = seq;
		if (!strcmp(type, "output.message.started") ||
		    !strcmp(type, "reason.thinking.started")) {
			hs->type_m = seq;
			hs->dtype = type[0] == 'o' ? "output.message.delta"
						   : "reason.thinking.delta";
			uuid_hex(hs->dturn, PQgetvalue(res, i, 7));
			uuid_hex(hs->dmsg, PQgetvalue(res, i, 8));
		}
		for (s = hs->subs; s; s = next) {
			next = s->s_next; /* a woken poll leaves the list */
			if (!s->in_round || !hub_live(s) || s->lagging ||
			    seq <= s->cursor)
				continue;
			s->cursor = seq;
			if (!sse_type_passes(&s->q, type))
				continue;
			if (s->kind == SSE_POLL) {
				sse_poll_wake(s);
			} else {
				if (!frame.len)
					row_frame(&frame, res, i, seq, type,
						  hs->id);
				sse_stream_event(s, frame.data, frame.len);
			}
		}
		buf_release(&frame);
	}
	for (s = hs->subs; s; s = s->s_next)
		if (s->in_round && !hs->full && hub_live(s) && !s->lagging)
			s->need = 0;
	if (hs->full)
		hub_mark_dirty(hs);
	res_unref(hs->pr);
	hs->pr = NULL;
	hs->busy = 0;
}

static void round_free(struct round *r)
{
	free(r->ss);
	memset(r, 0, sizeof(*r));
}

static void on_round(void *ctx, PGresult *res)
{
	struct round *r = ctx;
	struct hub_res *hr;
	int i, k;

	if (!res) {
		/* the query failed: everyone again in a second */
		hub_next_safety = sse_now() + 1.0;
		for (k = 0; k < r->n; k++)
			r->ss[k]->busy = 0;
		round_free(r);
		return;
	}
	hr = xcalloc(1, sizeof(*hr));
	hr->res = res;
	hr->refs = 1;
	for (i = 0; i < PQntuples(res);) {
		const char *uuid = PQgetvalue(res, i, 0);
		char id[33];
		struct hub_session *hs;
		int j = i;
		while (j < PQntuples(res) &&
		       !strcmp(PQgetvalue(res, j, 0), uuid))
			j++;
		uuid_hex(id, uuid);
		hs = hub_session_get(id);
		if (!hs || !hs->busy || hs->pr) {
			/* not one of ours (cannot happen: busy ones stay) */
		} else if (PQgetvalue(res, i, 5)[0] != 't') {
			hub_session_gone(hs);
		} else if (!PQgetisnull(res, i, 1)) {
			hs->pr = hr;
			hr->refs++;
			hs->at = i;
			hs->end = j;
			hs->full = j - i >= HUB_PER_SESSION;
			deliver(hs);
		} else {
			for (struct sse_sub *s = hs->subs; s; s = s->s_next)
				if (s->in_round && hub_live(s) && !s->lagging)
					s->need = 0;
		}
		i = j;
	}
	/* the sessions not paused by a lookup are done */
	for (k = 0; k < r->n; k++)
		if (!r->ss[k]->pr && !r->ss[k]->ld)
			r->ss[k]->busy = 0;
	res_unref(hr);
	round_free(r);
}

void catchup_start(void)
{
	/* sql/008_sse_catchup.sql; its LIMIT is HUB_PER_SESSION */
	static const char qs[] = "SELECT * FROM evr_catchup($1, $2)";
	struct buf ids = BUF_INIT, afters = BUF_INIT;
	struct hub_session *hs, *list = hub_dirty, *stay = NULL;
	struct round *r = NULL;
	const char *p[2];
	size_t cap = 0;
	int k;

	if (!list)
		return;
	int max = dbq_connections() - 1;

	if (max < 1)
		max = 1;
	if (max > HUB_ROUNDS_MAX)
		max = HUB_ROUNDS_MAX;
	for (k = 0; k < max && !r; k++)
		if (!rounds[k].used)
			r = &rounds[k];
	if (!r)
		return; /* the next round waits for one of these */
	hub_dirty = NULL;
	while (list) {
		struct sse_sub *s;
		long long after = -1;
		hs = list;
		list = hs->dnext;
		if (hs->busy) { /* in a round already: the next one */
			hs->dnext = stay;
			stay = hs;
			continue;
		}
		hs->dirty = 0;
		for (s = hs->subs; s; s = s->s_next) {
			s->in_round = wants(s, hs);
			if (s->in_round && (after < 0 || s->cursor < after))
				after = s->cursor;
		}
		if (after < 0)
			continue;
		if ((size_t)r->n == cap) {
			cap = cap ? cap * 2 : 16;
			r->ss = xrealloc(r->ss, cap * sizeof(*r->ss));
		}
		r->ss[r->n++] = hs;
		hs->busy = 1;
		buf_addch(&ids, r->n > 1 ? ',' : '{');
		buf_adds(&ids, hs->id);
		buf_addch(&afters, r->n > 1 ? ',' : '{');
		buf_addf(&afters, "%lld", after);
	}
	hub_dirty = stay;
	if (r->n) {
		buf_addch(&ids, '}');
		buf_addch(&afters, '}');
		p[0] = ids.data;
		p[1] = afters.data;
		r->used = 1;
		dbq_query(qs, 2, p, on_round, r);
	} else {
		round_free(r);
	}
	buf_release(&ids);
	buf_release(&afters);
}

/* --- deltas ----------------------------------------------------------- */

/* A lookup for the session's delta hs->ld was answered. */
static void lookup_done(struct hub_session *hs)
{
	struct delta *d = hs->ld;
	hs->ld = NULL;
	if (one_delta(d))
		return; /* the next lookup */
	if (hs->pr)
		deliver(hs);
	else
		hs->busy = 0;
}

static void on_type(void *ctx, PGresult *res)
{
	struct hub_session *hs = ctx;
	const char *t = res ? db_val(res, 0, 0) : NULL;
	if (t && !strcmp(t, "reason.thinking.started"))
		hs->dtype = "reason.thinking.delta";
	if (t) {
		uuid_hex(hs->dturn, PQgetvalue(res, 0, 1));
		uuid_hex(hs->dmsg, PQgetvalue(res, 0, 2));
	}
	PQclear(res);
	lookup_done(hs);
}

/* The most bytes of one message's acc (see the top). */
static size_t acc_max(void)
{
	static size_t max;
	if (!max) {
		long t = config_int("llm_max_text_kb");
		long k = config_int("llm_max_thinking_kb");
		max = (size_t)(t > k ? t : k) * 1024;
	}
	return max;
}

static void on_acc(void *ctx, PGresult *res)
{
	struct hub_session *hs = ctx;
	const char *t = res ? db_val(res, 0, 0) : NULL;
	size_t n = t ? (size_t)PQgetlength(res, 0, 0) : 0;
	buf_reset(&hs->acc);
	if (n > acc_max()) {
		n = acc_max();
		while (n && ((unsigned char)t[n] & 0xC0) == 0x80)
			n--;
	}
	if (t)
		buf_add(&hs->acc, t, n);
	PQclear(res);
	lookup_done(hs);
}

static void lookup(struct hub_session *hs, struct delta *d, const char *sql,
		   dbq_fn fn)
{
	char ms[24];
	const char *p[2] = {hs->id, ms};
	snprintf(ms, sizeof(ms), "%lld", d->m);
	hs->busy = 1;
	hs->ld = d;
	dbq_query(sql, 2, p, fn, hs);
}

/* Hand out one delta: 0 when done, 1 when it waits for a lookup (the
 * session is then busy, and one_delta runs again with the answer). */
static int one_delta(struct delta *d)
{
	static const char type_sql[] =
		"SELECT type, turn_id, input_message_id FROM events "
		"WHERE session_id = $1 AND seq = $2";
	/* the chunk just announced is already there: it was written in
	 * the notifying transaction */
	static const char acc_sql[] =
		"SELECT coalesce(string_agg(text, '' ORDER BY off), '') "
		"FROM live_text WHERE session_id = $1 AND m = $2";
	struct hub_session *hs = hub_session_get(d->s);
	struct sse_sub *s, *next;

	if (d->done)
		return 0;
	if (!hs || !hs->subs || d->off > acc_max() ||
	    d->dlen > acc_max() - d->off)
		goto done;
	if (hs->type_m != d->m) {
		hs->type_m = d->m;
		hs->dtype = "output.message.delta"; /* if the lookup fails */
		hs->dturn[0] = hs->dmsg[0] = '\0';
		lookup(hs, d, type_sql, on_type); /* (and the context) */
		return 1;
	}
	if (d->x) /* a command's output (m is its tool.started) */
		hs->dtype = "tool.output.delta";
	if (hs->acc_m != d->m) {
		buf_reset(&hs->acc);
		hs->acc_m = d->m;
		if (d->off > 0) {
			d->loaded = 1;
			lookup(hs, d, acc_sql, on_acc);
			return 1;
		}
	}
	if (hs->acc.len == d->off) {
		buf_add(&hs->acc, d->d, d->dlen);
	} else if (hs->acc.len < d->off && !d->loaded) {
		d->loaded = 1; /* a chunk we never heard of */
		lookup(hs, d, acc_sql, on_acc);
		return 1;
	}
	for (s = hs->subs; s; s = next) {
		size_t from;
		next = s->s_next;
		if (s->kind != SSE_STREAM || !hub_live(s) || s->lagging ||
		    s->cursor < d->m || !sse_type_passes(&s->q, hs->dtype))
			continue;
		from = s->dm == d->m ? s->doff : 0;
		if (from >= hs->acc.len)
			continue;
		s->dm = d->m;
		s->doff = hs->acc.len;
		if (d->x)
			sse_stream_tool_delta(s, d->x, d->m, hs->dturn,
					      hs->dmsg, hs->acc.data + from,
					      hs->acc.len - from, hs->acc.len);
		else
			sse_stream_delta(s, hs->dtype, d->m, hs->dturn,
					 hs->dmsg, hs->acc.data + from,
					 hs->acc.len - from, hs->acc.data,
					 hs->acc.len);
	}
done:
	hub_delta_done(d, hs);
	return 0;
}

void deltas_run(void)
{
	struct delta *d;
	for (d = hub_deltas; d; d = d->next) {
		struct hub_session *hs;
		if (d->done)
			continue;
		hs = hub_session_get(d->s);
		/* after the session's round; the rest of a busy session's
		 * deltas wait behind the one it looks up */
		if (hs && (hs->busy || hs->dirty))
			continue;
		one_delta(d);
	}
}

void catchup_forget(struct hub_session *hs)
{
	res_unref(hs->pr);
	hs->pr = NULL;
}

void catchup_free(void)
{
	int k;
	for (k = 0; k < HUB_ROUNDS_MAX; k++)
		round_free(&rounds[k]);
}
