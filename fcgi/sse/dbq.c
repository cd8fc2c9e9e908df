/*
 * dbq: the query connections of everruns-sse (see dbq.h). Each
 * connection is DOWN, CONNECTING (PQconnectPoll driven by epoll), IDLE
 * or BUSY (one job in flight); its socket is in the epoll set under the
 * connection's own address as tag whenever it exists. No prepared
 * statements: the connections work through PgBouncer in transaction mode.
 */
#include "dbq.h"
#include "log.h"
#include "buf.h"
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define DBQ_MAX_CONNS 16

enum dq_state { DQ_DOWN, DQ_CONNECTING, DQ_IDLE, DQ_BUSY };

struct dbq_job {
	const char *sql;
	int n;
	char **params;
	dbq_fn fn;
	void *ctx;
	int cancelled;
	int tries; /* sends lost with their connection */
	struct dbq_job *next;
};

struct dq_conn {
	PGconn *pc;
	enum dq_state state;
	struct dbq_sock w;
	double since;    /* connecting since */
	double retry_at; /* after a failed connect: not before */
	int was_up;      /* log the reconnect */
	double sent_at;  /* the job in flight was sent */
	struct dbq_job *job;
	PGresult *res;
};

static struct dq_conn conns[DBQ_MAX_CONNS];
static int nconns;
static int qepfd = -1;
static double qtimeout; /* seconds a query may run; 0: no bound */
static char *qconninfo;
static struct dbq_job *head, *tail;
static double now_s; /* of the last dbq_run */

static void job_free(struct dbq_job *j)
{
	int i;
	for (i = 0; i < j->n; i++)
		free(j->params[i]);
	free(j->params);
	free(j);
}

static void finish(struct dbq_job *j, PGresult *res)
{
	if (!j->cancelled && j->fn)
		j->fn(j->ctx, res);
	else
		PQclear(res);
	job_free(j);
}

void dbq_watch(PGconn *pc, struct dbq_sock *w, void *tag, uint32_t ev,
	       int connecting)
{
	struct epoll_event e;
	int fd = pc ? PQsocket(pc) : -1;

	if (w->fd >= 0 && w->fd != fd)
		dbq_unwatch(w);
	if (fd < 0)
		return;
	memset(&e, 0, sizeof(e));
	e.events = ev;
	e.data.ptr = tag;
	if (w->fd == fd && w->ev == ev && !connecting)
		return;
	/* while connecting libpq may have closed the socket and opened
	 * another under the same number: the registration went with the
	 * close (MOD fails), so add it again */
	if (w->fd != fd || epoll_ctl(qepfd, EPOLL_CTL_MOD, fd, &e) != 0) {
		if (epoll_ctl(qepfd, EPOLL_CTL_ADD, fd, &e) != 0 &&
		    errno == EEXIST)
			epoll_ctl(qepfd, EPOLL_CTL_MOD, fd, &e);
	}
	w->fd = fd;
	w->ev = ev;
}

void dbq_unwatch(struct dbq_sock *w)
{
	if (w->fd >= 0)
		epoll_ctl(qepfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->fd = -1;
	w->ev = 0;
}

static void watch(struct dq_conn *k, uint32_t ev)
{
	dbq_watch(k->pc, &k->w, k, ev, k->state == DQ_CONNECTING);
}

double dbq_connect_timeout(void)
{
	return (double)config_int("db_connect_timeout_s");
}

PGconn *dbq_connect_start(const char *conninfo, const char *app)
{
	/* libpq ignores the TCP settings on a unix socket; later keywords
	 * override what the dbname connection string says. The keepalives
	 * are lib/db.c's (db_keepalive_idle_s); libpq does not time a
	 * connection started without blocking: dbq_connect_timeout() is
	 * enforced by the callers' ticks. */
	static const char *const kw[] = {
		"dbname",           "keepalives",
		"keepalives_idle",  "keepalives_interval",
		"keepalives_count", "tcp_user_timeout",
		"application_name", NULL};
	long k = config_int("db_keepalive_idle_s");
	char idle[16], utm[24];
	const char *val[] = {conninfo, "1", idle, "10", "3", utm, app, NULL};
	PGconn *pc;

	snprintf(idle, sizeof(idle), "%ld", k);
	snprintf(utm, sizeof(utm), "%ld", (k + 30) * 1000);
	pc = PQconnectStartParams(kw, val, 1);

	if (!pc || PQstatus(pc) == CONNECTION_BAD) {
		log_error("%s connection: %s", app,
			  pc ? PQerrorMessage(pc) : "out of memory");
		PQfinish(pc);
		return NULL;
	}
	return pc;
}

static void push_front(struct dbq_job *j)
{
	j->next = head;
	head = j;
	if (!tail)
		tail = j;
}

static struct dbq_job *pop(void)
{
	struct dbq_job *j = head;
	if (j && !(head = j->next))
		tail = NULL;
	return j;
}

static void drop(struct dq_conn *k)
{
	dbq_unwatch(&k->w);
	PQfinish(k->pc);
	k->pc = NULL;
	PQclear(k->res);
	k->res = NULL;
	k->job = NULL;
	if (k->state == DQ_CONNECTING)
		k->retry_at = now_s + 1.0;
	k->state = DQ_DOWN;
}

/* The connection is lost: drop it; its job is sent once more. The idle
 * ones are dropped too: what took one (a restart, a terminate) most
 * likely took them, and the job must not be sent again on a dead one. */
static void conn_down(struct dq_conn *k, const char *why)
{
	struct dbq_job *j = k->job;
	int i, was_up = k->state == DQ_IDLE || k->state == DQ_BUSY;

	if (k->pc)
		log_warn("query connection %d lost: %s", (int)(k - conns),
			 why ? why : PQerrorMessage(k->pc));
	drop(k);
	for (i = 0; was_up && i < nconns; i++)
		if (conns[i].state == DQ_IDLE)
			drop(&conns[i]);
	if (!j)
		return;
	if (!j->cancelled && j->tries++ == 0) {
		push_front(j);
		return;
	}
	finish(j, NULL);
}

static void start_connect(struct dq_conn *k, double now)
{
	k->w.fd = -1;
	k->since = now;
	if (!(k->pc = dbq_connect_start(qconninfo, "everruns-sse-query"))) {
		k->retry_at = now + 1.0;
		return;
	}
	k->state = DQ_CONNECTING;
	/* as if PQconnectPoll had said "writing" */
	watch(k, EPOLLOUT);
}

static void connect_step(struct dq_conn *k)
{
	switch (PQconnectPoll(k->pc)) {
	case PGRES_POLLING_READING:
		watch(k, EPOLLIN);
		return;
	case PGRES_POLLING_WRITING:
		watch(k, EPOLLOUT);
		return;
	case PGRES_POLLING_OK:
		PQsetnonblocking(k->pc, 1);
		k->state = DQ_IDLE;
		watch(k, EPOLLIN); /* a closed idle connection reads EOF */
		if (k->was_up)
			log_info("query connection %d re-established",
				 (int)(k - conns));
		k->was_up = 1;
		return;
	default:
		conn_down(k, NULL);
		return;
	}
}

static void flush_out(struct dq_conn *k)
{
	int r = PQflush(k->pc);
	if (r < 0)
		conn_down(k, NULL);
	else
		watch(k, EPOLLIN | (r ? EPOLLOUT : 0));
}

static void send_job(struct dq_conn *k, struct dbq_job *j)
{
	k->job = j;
	k->state = DQ_BUSY;
	k->sent_at = now_s;
	if (!PQsendQueryParams(k->pc, j->sql, j->n, NULL,
			       (const char *const *)j->params, NULL, NULL, 0)) {
		conn_down(k, NULL);
		return;
	}
	flush_out(k);
}

/* The result is complete. */
static void job_done(struct dq_conn *k)
{
	struct dbq_job *j = k->job;
	PGresult *res = k->res;
	ExecStatusType st = PQresultStatus(res);

	if (PQstatus(k->pc) == CONNECTION_BAD) {
		conn_down(k, NULL);
		return;
	}
	k->job = NULL;
	k->res = NULL;
	k->state = DQ_IDLE;
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		const char *code =
			res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		log_error("sql error %s: %s", code ? code : "",
			  res ? PQresultErrorMessage(res)
			      : PQerrorMessage(k->pc));
		PQclear(res);
		res = NULL;
	}
	finish(j, res);
}

static void readable(struct dq_conn *k)
{
	if (!PQconsumeInput(k->pc)) {
		conn_down(k, NULL);
		return;
	}
	if (k->state != DQ_BUSY) {
		/* nothing asked: notices, or the server going away */
		PGresult *r;
		while (!PQisBusy(k->pc) && (r = PQgetResult(k->pc)))
			PQclear(r);
		if (PQstatus(k->pc) == CONNECTION_BAD)
			conn_down(k, NULL);
		return;
	}
	while (!PQisBusy(k->pc)) {
		PGresult *r = PQgetResult(k->pc);
		if (!r) {
			job_done(k);
			return;
		}
		if (k->res)
			PQclear(r); /* one statement: keep the first */
		else
			k->res = r;
	}
	if (PQstatus(k->pc) == CONNECTION_BAD)
		conn_down(k, NULL);
}

void dbq_event(void *tag, uint32_t events)
{
	struct dq_conn *k = tag;

	if (!k->pc)
		return;
	if (k->state == DQ_CONNECTING) {
		connect_step(k);
		return;
	}
	if (k->state == DQ_BUSY && (events & EPOLLOUT)) {
		flush_out(k);
		if (!k->pc)
			return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		readable(k);
}

int dbq_is_tag(const void *p)
{
	const char *c = p, *lo = (const char *)conns;
	return c >= lo && c < (const char *)(conns + DBQ_MAX_CONNS);
}

void dbq_init(const char *conninfo, int n, double timeout_s, int epfd)
{
	int i;
	if (n < 1 || n > DBQ_MAX_CONNS) {
		log_warn("sse_db_connections = %d: out of 1..%d", n,
			 DBQ_MAX_CONNS);
		n = n < 1 ? 1 : DBQ_MAX_CONNS;
	}
	nconns = n;
	qtimeout = timeout_s > 0 ? timeout_s : 0;
	qepfd = epfd;
	qconninfo = xstrdup(conninfo);
	for (i = 0; i < DBQ_MAX_CONNS; i++) {
		memset(&conns[i], 0, sizeof(conns[i]));
		conns[i].w.fd = -1;
	}
	log_info("%d query connection%s", n, n == 1 ? "" : "s");
}

struct dbq_job *dbq_query(const char *sql, int nparams,
			  const char *const *params, dbq_fn fn, void *ctx)
{
	struct dbq_job *j = xcalloc(1, sizeof(*j));
	int i;

	j->sql = sql;
	j->n = nparams;
	j->params = xcalloc((size_t)(nparams ? nparams : 1), sizeof(char *));
	for (i = 0; i < nparams; i++)
		j->params[i] = params[i] ? xstrdup(params[i]) : NULL;
	j->fn = fn;
	j->ctx = ctx;
	if (tail)
		tail->next = j;
	else
		head = j;
	tail = j;
	return j;
}

void dbq_cancel(struct dbq_job *j)
{
	struct dbq_job **pp;
	if (!j)
		return;
	for (pp = &head; *pp; pp = &(*pp)->next) {
		if (*pp != j)
			continue;
		*pp = j->next;
		if (tail == j) {
			tail = head;
			while (tail && tail->next)
				tail = tail->next;
		}
		job_free(j);
		return;
	}
	j->cancelled = 1; /* in flight: freed when its result is read */
}

/* The job in flight ran over the timeout (waiting for a lock, most
 * likely): answer it as failed and drop its connection, so the loop's
 * queries do not wait behind it. It is not sent again. The server ends
 * the abandoned query when it next writes to the connection. */
static void timed_out(struct dq_conn *k)
{
	struct dbq_job *j = k->job;
	log_warn("query connection %d: a query ran over %.0f s, given up "
		 "(%.48s)",
		 (int)(k - conns), qtimeout, j->sql);
	k->job = NULL;
	drop(k);
	finish(j, NULL);
}

void dbq_run(double now)
{
	int i, pass, alive;

	now_s = now;
	for (pass = 0; pass < 4 && head; pass++) {
		int queued = 0, starting = 0;
		struct dbq_job *j;

		for (i = 0; i < nconns && head; i++)
			if (conns[i].state == DQ_IDLE)
				send_job(&conns[i], pop());
		for (j = head; j; j = j->next)
			queued++;
		for (i = 0; i < nconns; i++)
			if (conns[i].state == DQ_CONNECTING)
				starting++;
		for (i = 0; i < nconns && starting < queued; i++)
			if (conns[i].state == DQ_DOWN &&
			    now >= conns[i].retry_at) {
				start_connect(&conns[i], now);
				if (conns[i].state == DQ_CONNECTING)
					starting++;
			}
		for (i = alive = 0; i < nconns; i++)
			alive += conns[i].state != DQ_DOWN;
		if (alive || !head)
			break;
		/* PostgreSQL is unreachable: answer what waits (the
		 * continuations may queue more: another pass) */
		{
			struct dbq_job *list = head;
			head = tail = NULL;
			while (list) {
				j = list;
				list = j->next;
				finish(j, NULL);
			}
		}
	}
	for (i = 0; i < nconns; i++) {
		struct dq_conn *k = &conns[i];
		if (k->state == DQ_CONNECTING &&
		    now - k->since > dbq_connect_timeout())
			conn_down(k, "connect timed out");
		else if (k->state == DQ_BUSY && qtimeout > 0 &&
			 now - k->sent_at > qtimeout)
			timed_out(k);
	}
}

int dbq_connections(void)
{
	return nconns;
}

void dbq_free(void)
{
	int i;
	for (i = 0; i < DBQ_MAX_CONNS; i++) {
		struct dq_conn *k = &conns[i];
		if (k->job)
			job_free(k->job);
		PQclear(k->res);
		dbq_unwatch(&k->w);
		PQfinish(k->pc);
		memset(k, 0, sizeof(*k));
		k->w.fd = -1;
	}
	while (head)
		job_free(pop());
	free(qconninfo);
	qconninfo = NULL;
}
