/*
 * evq: event-log queries, shared by the api program (GET .../events) and
 * the SSE program (streams, long-poll, catch-up). One definition of the
 * filters (since_id / since_sequence / types / exclude / limit /
 * before_sequence) and of the error each bad value gets.
 */
#ifndef EVR_EVQ_H
#define EVR_EVQ_H

#include "apierr.h"
#include "buf.h"
#include "db.h"
#include "http.h"

#define EVQ_MAX_LIMIT 1000

struct evq {
	char session[33];      /* 32-hex uuid */
	char org[33];
	char since_id[33];     /* evt hex; "" if none */
	long long after;       /* seq > after (0 = from the start) */
	long long before;      /* seq < before, newest first; 0 = none */
	long limit;
	struct buf types;      /* PostgreSQL text[] literal or empty */
	struct buf exclude;
	int wait_s;            /* long-poll seconds; 0 = none */
	int has_cursor;        /* since_id or since_sequence given */
};

/* Is `type` an event type of DESIGN 4.5 (connected/disconnecting too)? */
int evq_type_known(const char *type);

void evq_init(struct evq *q);
void evq_release(struct evq *q);
/* Read the filters from the query string. `cursor_header` (SSE's
 * Last-Event-ID) wins over since_id and since_sequence when non-NULL.
 * max_wait: the largest `wait` allowed (0 = `wait` not accepted).
 * 0, or -1 with a 400 in e. */
int evq_parse(const struct req *rq, const char *cursor_header, int max_wait,
	      struct evq *q, struct apierr *e);
/* Check the session is the organization's and turn since_id into a
 * sequence. 0; 1 = not found (404); -1 = database error; 2 = since_id is
 * not an event of this session (400 invalid_cursor, in e). */
int evq_resolve(struct db *db, struct evq *q, struct apierr *e);
/* Append the page as {"data":[...],"has_more":bool} to out and set
 * *count to the number of events and *last to the sequence of the last
 * one. 0 or -1 (database error). */
int evq_fetch(struct db *db, const struct evq *q, struct buf *out,
	      long *count, long long *last);

#endif
