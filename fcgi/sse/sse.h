/*
 * sse: the everruns-sse program (ARCHITECTURE 1 and 4.5): one epoll thread that
 * serves GET /sessions/{id}/sse (streams) and GET /sessions/{id}/events
 * (pages and long-poll) over its own FastCGI record code.
 *
 * Modules: main.c (sockets, connections, the loop), dbq.c (the query
 * connections: every query runs there without blocking, answered through
 * a continuation), hub.c (the LISTEN connection, session -> subscribers),
 * catchup.c (catch-up rounds and deltas), stream.c (request checks, the
 * SSE route and its frames), poll.c (the events route).
 *
 * Ownership: main.c owns every struct sse_conn and frees it at the end of
 * a loop round. A conn owns its struct sse_open while its request is
 * being checked (which owns the sub being built), its struct sse_sub once
 * the stream or long-poll is open (the hub only links it into its session
 * lists; hub_unsubscribe unlinks it before it is freed), and the one
 * query job it waits for (c->job, whose continuation gets the conn as
 * context): freeing the conn cancels that job, so an answer that comes
 * after the client left is dropped, never handed to freed memory. The
 * hub's LISTEN connection is the hub's.
 */
#ifndef EVR_SSE_H
#define EVR_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "db.h"
#include "evq.h"
#include "fcgi_proto.h"
#include "http.h"

/* More than this unsent and a subscriber stops getting pushes. */
#define SSE_LAG_BYTES (256 * 1024)
/* The longest long-poll `wait` (seconds). */
#define POLL_MAX_WAIT 60

enum sse_kind { SSE_STREAM, SSE_POLL };

struct sse_sub;
struct hub_session;
struct dbq_job;

/* A request being checked: its queries run one after the other. */
struct sse_open {
	struct arena arena;
	struct req rq;
	enum sse_kind kind; /* SSE_STREAM: /sse, SSE_POLL: /events */
	const char *seg;    /* the {id} segment of the path */
	size_t seglen;
	long long last_seq;  /* the session's, when resolved */
	double key_exp;      /* when the key expires (sse_now()); 0: never */
	struct sse_sub *sub; /* being built; freed with the open */
};

struct sse_conn {
	int fd;
	struct fcgi_parser fp;
	struct buf out; /* FastCGI records not yet written */
	size_t out_off; /* bytes of out already written */
	int want_out;   /* EPOLLOUT registered */
	int closing;    /* END_REQUEST queued: close once written */
	int dead;       /* write failed: free at the end of this round */
	struct sse_sub *sub;
	struct sse_open *open;
	struct dbq_job *job;          /* the query it waits for */
	struct sse_conn *prev, *next; /* every connection */
};

struct sse_sub {
	struct sse_conn *conn;
	enum sse_kind kind;
	char session[33], org[33], key[33];
	struct evq q;     /* filters (and, for polls, the page) */
	long long cursor; /* every event <= cursor was seen */
	int need;         /* catch up even without a newer event */
	int lagging;      /* over SSE_LAG_BYTES: no pushes */
	int in_round;     /* the hub's: part of this catch-up round */
	long long dm;     /* the message whose deltas it follows */
	size_t doff;      /* bytes of it sent */
	double next_ping, cycle_at, deadline;
	double key_exp; /* its key's expiry (sse_now() time); 0: never */
	struct hub_session *hs;
	struct sse_sub *s_prev, *s_next; /* the session's subscribers */
};

/* main.c */
double sse_now(void);
/* Queue data as STDOUT and try to write; marks the conn dead on error. */
void sse_conn_send(struct sse_conn *c, const void *data, size_t len);
/* Queue END_REQUEST; the conn closes once everything is written. */
void sse_conn_finish(struct sse_conn *c);
size_t sse_conn_pending(const struct sse_conn *c);
/* The epoll tag under which the hub registers its socket. */
void *sse_hub_tag(void);

/* stream.c */
/* Serve a connection whose parameters are complete. */
void sse_serve(struct sse_conn *c);
/* Answer rq (an error or a page) and finish the connection. */
void sse_respond(struct sse_conn *c, struct req *rq);
/* Answer with the open request's rq and free the open. */
void sse_open_respond(struct sse_conn *c);
/* Free c->open (with the sub it still owns). */
void sse_open_done(struct sse_conn *c);
/* Hand s (the open request's sub) to the hub and to c, freeing the open:
 * 0; or, past the stream limits (streams and waiting long-polls count
 * alike), answer 429 too_many_streams and return -1. */
int sse_subscribe(struct sse_conn *c, struct sse_sub *s);
/* One durable event as the catch-up query returns it (hex ids without
 * prefix; turn and msg may be ""). */
struct sse_event_row {
	long long seq, ts_us;
	const char *type, *id, *session, *turn, *msg, *data;
	size_t dlen;
};
/* The event's SSE frame (event, id, data: the envelope of ARCHITECTURE 4.1, as
 * api_event() renders it) appended to f. Built once per event, here and
 * not in PostgreSQL: rendering JSON there was most of a catch-up's cost. */
void sse_event_frame(struct buf *f, const struct sse_event_row *r);
/* A durable event's frame for the subscriber (newer than its cursor). */
void sse_stream_event(struct sse_sub *s, const char *frame, size_t len);
/* A delta of message m (turn, msg: its context, hex or ""), ending at
 * byte alen; its id is the cursor of evq.h. */
void sse_stream_delta(struct sse_sub *s, const char *type, long long m,
		      const char *turn, const char *msg, const char *delta,
		      size_t dlen, const char *acc, size_t alen);
/* A tool.output.delta: x is the delta's own fields ({tool_call_id,
 * tool_name, stream}, a JSON object) to which delta and
 * message_sequence (the tool.started event's) are added; in the same
 * envelope, context and cursor id (output ending at byte alen) as
 * sse_stream_delta's. */
void sse_stream_tool_delta(struct sse_sub *s, const char *x, long long m,
			   const char *turn, const char *msg, const char *delta,
			   size_t dlen, size_t alen);
/* Send `disconnecting {reason}` and finish. */
void sse_stream_close(struct sse_sub *s, const char *reason);
/* Its key stopped working (reason "key_revoked", "key_expired"): a
 * stream is closed with that reason, a waiting long-poll answered 401. */
void sse_sub_key_gone(struct sse_sub *s, const char *reason);
/* A query failed (the database is away, or restarting): 503 with
 * Retry-After, as the api answers then. */
void sse_db_unavailable(struct req *rq);
/* Does the type pass the subscriber's types/exclude filters? */
int sse_type_passes(const struct evq *q, const char *type);
/* Heartbeats, cycling and long-poll deadlines. */
void sse_sub_tick(struct sse_sub *s, double now);
void sse_sub_free(struct sse_sub *s);

/* poll.c */
/* The request in c->open is checked and its sub resolved: answer it
 * with a page or wait. */
void sse_poll_open(struct sse_conn *c);
/* A matching event exists (or the session is gone): answer now. */
void sse_poll_wake(struct sse_sub *s);

/* hub.c */
/* Start the LISTEN connection (without blocking; hub_tick retries). */
int hub_init(const char *conninfo);
void hub_free(void);
/* An event on the LISTEN connection's socket (sse_hub_tag). */
void hub_event(uint32_t events);
/* Run pending work: catch-up and deltas. Call once per loop round. */
void hub_run(void);
/* Reconnect when down. */
void hub_tick(double now);

/* report.c: open streams and connections for the operator's metrics,
 * written to the run directory's sse.status every few seconds. */
void sse_report(double now, long streams, long conns);
/* Add s to its session. 0; -1 = over a limit (429); a stream that
 * pushes out the same key's oldest does so here. */
int hub_subscribe(struct sse_sub *s);
void hub_unsubscribe(struct sse_sub *s);
/* s wants a catch-up round (writable again after lagging). */
void hub_kick(struct sse_sub *s);

#endif
