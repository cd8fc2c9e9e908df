/*
 * dbq: everruns-sse's queries without blocking (ARCHITECTURE 1). A small fixed
 * set of PostgreSQL connections (config `sse_db_connections`, default 2)
 * driven by libpq's asynchronous API from the process's one epoll loop;
 * each runs at most one query at a time and queued queries wait in one
 * FIFO. The hub's LISTEN connection is not one of them.
 *
 * A query's answer goes to its continuation, fn(ctx, res), called from
 * the loop (dbq_event or dbq_run), never from dbq_query itself. fn owns
 * res (PQclear it); res is NULL when the query failed (logged). A
 * connection that breaks is dropped and reconnected (without blocking);
 * the query it carried is sent once more, then answered with NULL.
 *
 * Lifetimes: the job handle dbq_query returns stays valid until its
 * continuation has been called or dbq_cancel() was called on it. Whoever
 * owns ctx must cancel its job before freeing ctx: a cancelled job never
 * calls back (one in flight is read to its end and its result dropped).
 */
#ifndef EVR_SSE_DBQ_H
#define EVR_SSE_DBQ_H

#include <libpq-fe.h>
#include <stdint.h>

typedef void (*dbq_fn)(void *ctx, PGresult *res);

struct dbq_job;

/* nconns query connections with database_url conninfo; they connect
 * when first needed. A query that runs longer than timeout_s (0: no
 * bound) is answered with NULL and its connection replaced. */
void dbq_init(const char *conninfo, int nconns, double timeout_s, int epfd);
/* Close everything; pending jobs are dropped without calling back. */
void dbq_free(void);
/* Queue a query with text parameters (copied; NULL is SQL NULL). fn may
 * be NULL: the result is then dropped. */
struct dbq_job *dbq_query(const char *sql, int nparams,
			  const char *const *params, dbq_fn fn, void *ctx);
void dbq_cancel(struct dbq_job *j);
/* Is p the epoll tag of one of the query connections? */
int dbq_is_tag(const void *p);
void dbq_event(void *tag, uint32_t events);
/* Send queued queries, (re)connect as needed. Once per loop round. */
void dbq_run(double now);
/* Shared with the hub's LISTEN connection: a connection started without
 * blocking (keepalives, tcp_user_timeout, application_name app; NULL
 * when it cannot even start, logged), and its socket kept in the epoll
 * set under tag for ev (connecting: re-add even if unchanged, libpq may
 * have swapped the socket). */
struct dbq_sock {
	int fd; /* registered, or -1 */
	uint32_t ev;
};
PGconn *dbq_connect_start(const char *conninfo, const char *app);
/* Seconds a connection may take to come up (db_connect_timeout_s). */
double dbq_connect_timeout(void);
void dbq_watch(PGconn *pc, struct dbq_sock *w, void *tag, uint32_t ev,
	       int connecting);
void dbq_unwatch(struct dbq_sock *w);
/* How many query connections there are. */
int dbq_connections(void);

#endif
