/*
 * poll: GET /sessions/{id}/events (DESIGN 4.5): the event log page of
 * fcgi/lib/evq.c, as everruns-api served it, plus long-poll. With
 * `wait=S` and nothing to return yet the request becomes a subscriber of
 * the hub: the first matching event (seen by a catch-up round), the
 * session's deletion or the deadline answers it with a fresh page.
 */
#include "sse.h"
#include "log.h"

#include <string.h>

#define POLL_MAX_WAIT 60

static void send_page(struct sse_conn *c, const struct buf *page)
{
	struct buf out = BUF_INIT;
	buf_init(&out, page->len + 128);
	buf_addf(&out, "Status: 200 OK\r\nContent-Type: application/json\r\n"
		       "Content-Length: %zu\r\n\r\n", page->len);
	buf_add(&out, page->data, page->len);
	sse_conn_send(c, out.data, out.len);
	sse_conn_finish(c);
	buf_release(&out);
}

void sse_poll_open(struct sse_conn *c, struct req *rq)
{
	struct sse_sub *s = sse_sub_new(c, rq, SSE_POLL, NULL, POLL_MAX_WAIT);
	struct buf page = BUF_INIT;
	long count;
	long long last;

	buf_init(&page, 0);
	if (!s) {
		sse_respond(c, rq);
		goto out;
	}
	if (evq_fetch(&sse_db, &s->q, &page, &count, &last) != 0) {
		res_internal(rq);
		sse_respond(c, rq);
		sse_sub_free(s);
		goto out;
	}
	if (count > 0 || !s->q.wait_s || s->q.before) {
		send_page(c, &page);
		sse_sub_free(s);
		goto out;
	}
	/* nothing yet: wait for a catch-up round to find a match after
	 * the cursor (s->cursor is the resolved one) */
	s->deadline = sse_now() + s->q.wait_s;
	hub_subscribe(s); /* polls are not counted against stream limits */
	c->sub = s;
out:
	buf_release(&page);
}

void sse_poll_wake(struct sse_sub *s)
{
	struct buf page = BUF_INIT;
	long count;
	long long last;

	hub_unsubscribe(s);
	buf_init(&page, 0);
	if (evq_fetch(&sse_db, &s->q, &page, &count, &last) != 0) {
		static const char err[] =
			"Status: 500 Internal Server Error\r\n"
			"Content-Type: application/json\r\n\r\n"
			"{\"error\":\"Internal server error\",\"code\":\"internal_error\"}";
		sse_conn_send(s->conn, err, sizeof(err) - 1);
		sse_conn_finish(s->conn);
	} else {
		send_page(s->conn, &page);
	}
	buf_release(&page);
}
