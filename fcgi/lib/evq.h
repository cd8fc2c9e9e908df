/*
 * evq: event-log queries of the SSE program (streams, long-poll and
 * catch-up; GET .../events is served there too). One definition of the
 * filters (since_id / since_sequence / after_sequence / types / exclude /
 * limit / before_sequence) and of the error each bad value gets.
 *
 * Cursors: since_id (or SSE's Last-Event-ID) is a durable event's id,
 * evt_<32 hex>, or a stream cursor, dlt_<c>_<m>_<o> (decimal), the id
 * of a delta and of a stream's connected and disconnecting frames: the
 * stream had delivered every durable event up to sequence c, and the
 * text of the message whose *.started event is sequence m up to byte o
 * (c >= m; m = 0 and o = 0: no message). Resuming from it is resuming
 * after sequence c; a stream then continues message m's text from byte
 * o (evq.dm, evq.doff).
 */
#ifndef EVR_EVQ_H
#define EVR_EVQ_H

#include "apierr.h"
#include "buf.h"
#include "db.h"
#include "http.h"

#define EVQ_MAX_LIMIT 1000

struct evq {
	char session[33]; /* 32-hex uuid */
	char org[33];
	char since_id[33]; /* evt hex; "" if none */
	long long after;   /* seq > after (0 = from the start) */
	long long before;  /* seq < before, newest first; 0 = none */
	long limit;
	struct buf types; /* PostgreSQL text[] literal or empty */
	struct buf exclude;
	int wait_s;       /* long-poll seconds; 0 = none */
	int has_cursor;   /* since_id or since_sequence given */
	int newest;       /* limit without a cursor: the newest */
	int delta_cursor; /* since_id was a delta id */
	long long dm;     /* its message (0: none) ... */
	size_t doff;      /* ... and the byte its text had reached */
};

#define EVQ_DELTA_ID_MAX 72
/* A stream cursor (see above) into out[EVQ_DELTA_ID_MAX]. */
void evq_delta_id(char *out, long long c, long long m, size_t off);
/* Parse a stream cursor; 1 if it is one. */
int evq_delta_id_parse(const char *s, long long *c, long long *m, size_t *off);

/* Is `type` an event type of ARCHITECTURE 4.1 (connected/disconnecting too)
 * or one the upstream API document defines (accepted in filters, never
 * emitted here)? */
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
int evq_resolve_result(struct evq *q, const PGresult *res, long long *last_seq,
		       struct apierr *e);
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
