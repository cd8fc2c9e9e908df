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

/* Is `type` an event type of ARCHITECTURE 4.1 (connected/disconnecting too)? */
int evq_type_known(const char *type);

void evq_init(struct evq *q);
void evq_release(struct evq *q);
/* Read the filters from the query string. `cursor_header` (SSE's
 * Last-Event-ID) wins over since_id and since_sequence when non-NULL.
 * max_wait: the largest `wait` allowed (0 = `wait` not accepted).
 * 0, or -1 with a 400 in e. */
int evq_parse(const struct req *rq, const char *cursor_header, int max_wait,
	      struct evq *q, struct apierr *e);
/* The query that checks the session is the organization's and turns
 * since_id into a sequence, with its parameters (pointing into q). The
 * caller runs it (the SSE program without blocking) and reads it with
 * evq_resolve_result: 0 (*last_seq: the session's last sequence);
 * 1 = not found (404); 2 = since_id is not an event of this session
 * (400 invalid_cursor, in e). Without since_id it does not read events. */
const char *evq_resolve_query(const struct evq *q, const char *p[3],
			      int *nparams);
int evq_resolve_result(struct evq *q, const PGresult *res,
		       long long *last_seq, struct apierr *e);
/* The page query and its 6 parameters (into q and nums); evq_page()
 * appends its answer as {"data":[...],"has_more":bool} to out and sets
 * *count to the number of events and *last to the sequence of the last
 * one. */
struct evq_nums {
	char after[24], before[24], limit[24];
};
const char *evq_fetch_query(const struct evq *q, struct evq_nums *nums,
			    const char *p[6]);
void evq_page(const struct evq *q, const PGresult *res, struct buf *out,
	      long *count, long long *last);

#endif
