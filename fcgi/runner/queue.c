/*
 * queue: how turns reach this runner. LISTEN `turns` (a message was sent)
 * and `cancels` (a running turn is to be cancelled) on the listen
 * connection, whose socket is one of curl_multi_poll()'s extra fds, so a
 * turn posted to an idle runner starts within milliseconds; a slow poll
 * (poll_s) is only the safety net for lost wake-ups and expired leases.
 * Claims use FOR UPDATE SKIP LOCKED (evr_claim), leases are renewed every
 * renew_s, and the runner's heartbeat row is what /health counts.
 */
#include "runner.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int queue_listen(struct runner *r)
{
	static const char sql[] = "LISTEN turns; LISTEN cancels";
	PGresult *res;
	if (db_ensure(&r->listen) != 0)
		return -1;
	res = PQexec(r->listen.conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_error("LISTEN failed: %s", PQerrorMessage(r->listen.conn));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

void queue_drain_notifies(struct runner *r, int *want_claim)
{
	PGnotify *n;
	if (PQconsumeInput(r->listen.conn) != 1) {
		log_warn("listen connection lost; reconnecting");
		if (queue_listen(r) == 0)
			*want_claim = 1; /* catch up on what we missed */
		return;
	}
	while ((n = PQnotifies(r->listen.conn))) {
		if (!strcmp(n->relname, "turns")) {
			*want_claim = 1;
		} else if (!strcmp(n->relname, "cancels")) {
			struct turn *t = turn_find(r, n->extra);
			if (t)
				turn_cancel(r, t);
		}
		PQfreemem(n);
	}
}

int queue_claim(struct runner *r)
{
	static const char sql[] =
		"SELECT replace(id::text, '-', ''), replace(session_id::text, '-', ''), "
		"replace(org_id::text, '-', ''), state, attempt "
		"FROM evr_claim($1, $2, $3)";
	char max[16], lease[32];
	const char *p[3] = {r->id, max, lease};
	PGresult *res;
	int i, n;

	if (r->draining || r->inflight >= r->max_inflight)
		return 0;
	snprintf(max, sizeof(max), "%d", r->max_inflight - r->inflight);
	snprintf(lease, sizeof(lease), "%g", r->lease_s);
	res = db_exec(&r->listen, sql, 3, p);
	if (!res)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		turn_start(r, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			   PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
			   atoi(PQgetvalue(res, i, 4)));
	PQclear(res);
	return n;
}

/* uuid[] literal of the turns we hold */
static void held(struct runner *r, struct buf *b)
{
	struct turn *t;
	buf_addch(b, '{');
	for (t = r->turns; t; t = t->next) {
		if (t->dropped || t->phase == PH_DONE)
			continue;
		if (b->len > 1)
			buf_addch(b, ',');
		buf_adds(b, t->id);
	}
	buf_addch(b, '}');
}

void queue_renew(struct runner *r)
{
	static const char sql[] =
		"SELECT replace(u::text, '-', '') FROM evr_renew($1, $2, $3) u";
	struct buf ids = BUF_INIT;
	char lease[32];
	const char *p[3] = {r->id, NULL, lease};
	PGresult *res;
	int i;

	buf_init(&ids, 0);
	held(r, &ids);
	if (ids.len > 2) {
		snprintf(lease, sizeof(lease), "%g", r->lease_s);
		p[1] = ids.data;
		res = db_exec(&r->listen, sql, 3, p);
		for (i = 0; res && i < PQntuples(res); i++) {
			struct turn *t = turn_find(r, PQgetvalue(res, i, 0));
			if (t && !t->dropped) {
				log_info("turn %s: lease lost; dropping it",
					 t->id);
				t->dropped = 1;
			}
		}
		PQclear(res);
	}
	buf_release(&ids);
}

void queue_release_all(struct runner *r)
{
	static const char sql[] = "SELECT evr_release($1, $2)";
	struct buf ids = BUF_INIT;
	const char *p[2] = {r->id, NULL};
	PGresult *res;

	buf_init(&ids, 0);
	held(r, &ids);
	if (ids.len > 2) {
		p[1] = ids.data;
		res = db_exec(&r->listen, sql, 2, p);
		PQclear(res);
		log_info("released %d turn(s) to other runners", r->inflight);
	}
	buf_release(&ids);
}

void queue_heartbeat(struct runner *r)
{
	static const char sql[] =
		"INSERT INTO runners (id, host, pid, seen_at) VALUES ($1, $2, $3, now()) "
		"ON CONFLICT (id) DO UPDATE SET seen_at = now()";
	char host[256], pid[16];
	const char *p[3] = {r->id, host, pid};
	PGresult *res;

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	res = db_exec(&r->listen, sql, 3, p);
	PQclear(res);
}
