/*
 * hub_int: what hub.c (the LISTEN connection, session -> subscribers,
 * limits) and catchup.c (catch-up rounds and deltas, on the query
 * connections of dbq.c) share. Not for other modules.
 *
 * A session is `busy` while a query about it is in flight (its part of a
 * catch-up round, or a live_text / delta type lookup); no second round
 * includes it and its deltas wait meanwhile, so its subscribers see
 * events and deltas in the order the old one-thread code gave them. A
 * busy session is never freed (the continuation holds its address).
 */
#ifndef EVR_SSE_HUB_INT_H
#define EVR_SSE_HUB_INT_H

#include "sse.h"

#define HUB_PER_SESSION 200

struct hub_res; /* a catch-up result shared by the sessions in it */

struct hub_session {
	char id[33];
	struct sse_sub *subs, *tail;
	int nstreams;
	long long known; /* highest sequence announced */
	int dirty, gc;
	struct hub_session *dnext, *gnext;
	long long acc_m; /* message whose text acc holds (0: none) */
	struct buf acc;
	long long type_m; /* message whose delta type is dtype */
	const char *dtype;
	char dturn[33], dmsg[33]; /* its context (hex; "" if unknown) */
	int ndeltas;              /* of the pending deltas, this session's */
	int busy;                 /* a query about it is in flight */
	struct delta *ld;         /* the delta waiting for a lookup */
	/* a catch-up delivery paused by a lookup: rows [at, end) remain */
	struct hub_res *pr;
	int at, end, full;
};

/* A delta announced on `evd`, waiting to be handed out (FIFO). */
struct delta {
	char s[33];
	long long m, bound;
	size_t off;
	char *d;
	size_t dlen;
	int done;
	int loaded; /* live_text was read for it */
	char *x; /* a tool.output.delta: its own fields (JSON object), or NULL
		  */
	struct delta *next;
};

/* hub.c */
extern struct hub_session *hub_dirty;
extern struct delta *hub_deltas;
extern double hub_next_safety;
struct hub_session *hub_session_get(const char *id);
void hub_mark_dirty(struct hub_session *hs);
/* The delta was handed out or dropped (hs: its session, if any). */
void hub_delta_done(struct delta *d, struct hub_session *hs);
int hub_live(const struct sse_sub *s);
/* The session was deleted: close its streams, answer its polls. */
void hub_session_gone(struct hub_session *hs);

/* catchup.c */
/* Send a round for the dirty sessions that are not busy, if a round
 * may start (see catchup.c for how many at once). */
void catchup_start(void);
/* Hand out the deltas whose session is neither busy nor dirty. */
void deltas_run(void);
/* A dropped catch-up result the session still held (shutdown). */
void catchup_forget(struct hub_session *hs);
void catchup_free(void);

#endif
