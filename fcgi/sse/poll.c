/*
 * poll: GET /sessions/{id}/events (ARCHITECTURE 4.4): the event log page of
 * fcgi/lib/evq.c, as everruns-api served it, plus long-poll. With
 * `wait=S` and nothing to return yet the request becomes a subscriber of
 * the hub: the first matching event (seen by a catch-up round), the
 * session's deletion or the deadline answers it with a fresh page. Page
 * queries run on dbq.c; the conn waits for its one job (c->job).
 */
#include "sse.h"
#include "dbq.h"
#include "log.h"

#include <string.h>

static void send_page(struct sse_conn *c, const struct evq *q,
		      const PGresult *res, long *count)
{
	struct buf page = BUF_INIT, out = BUF_INIT;
	long long last;

	evq_page(q, res, &page, count, &last);
	buf_init(&out, page.len + 128);
	buf_addf(&out,
		 "Status: 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n",
		 page.len);
	buf_add(&out, page.data, page.len);
	sse_conn_send(c, out.data, out.len);
	sse_conn_finish(c);
	buf_release(&out);
	buf_release(&page);
}

static struct dbq_job *fetch(struct sse_conn *c, const struct evq *q, dbq_fn fn)
{
	struct evq_nums nums;
	const char *p[6];
	const char *sql = evq_fetch_query(q, &nums, p);
	return dbq_query(sql, 6, p, fn, c);
}

static void on_first_page(void *ctx, PGresult *res)
{
	struct sse_conn *c = ctx;
	struct sse_open *o = c->open;
	struct sse_sub *s = o->sub;
	long count = 0;

	c->job = NULL;
	if (c->dead) {
		PQclear(res);
		return;
	}
	if (!res) {
		sse_db_unavailable(&o->rq);
		sse_open_respond(c);
		return;
	}
	if (PQntuples(res) > 0 || !s->q.wait_s || s->q.before) {
		send_page(c, &s->q, res, &count);
		PQclear(res);
		sse_open_done(c);
		return;
	}
	PQclear(res);
	/* nothing yet: wait for a catch-up round to find a match after
	 * the cursor (s->cursor is the resolved one) */
	s->deadline = sse_now() + s->q.wait_s;
	/* a wake-up that came while the page was read found no subscriber:
	 * look once */
	s->need = 1;
	/* a waiting long-poll holds a connection as a stream does: it
	 * counts towards the same limits (hub.c) */
	if (sse_subscribe(c, s) != 0)
		return;
}

void sse_poll_open(struct sse_conn *c)
{
	c->job = fetch(c, &c->open->sub->q, on_first_page);
}

static void on_wake_page(void *ctx, PGresult *res)
{
	struct sse_conn *c = ctx;
	long count;

	c->job = NULL;
	if (c->dead) {
		PQclear(res);
		return;
	}
	if (!res) {
		static const char err[] =
			"Status: 503 Service Unavailable\r\n"
			"Retry-After: 1\r\n"
			"Content-Type: application/json\r\n\r\n"
			"{\"error\":\"The database is unavailable; try again "
			"shortly\",\"code\":\"database_unavailable\","
			"\"status\":503,\"title\":\"Service Unavailable\","
			"\"detail\":\"The database is unavailable; try again "
			"shortly\"}";
		sse_conn_send(c, err, sizeof(err) - 1);
		sse_conn_finish(c);
		return;
	}
	send_page(c, &c->sub->q, res, &count);
	PQclear(res);
}

void sse_poll_wake(struct sse_sub *s)
{
	struct sse_conn *c = s->conn;
	hub_unsubscribe(s);
	if (!c->job) /* answered by the page it fetches */
		c->job = fetch(c, &s->q, on_wake_page);
}
