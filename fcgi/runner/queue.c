/*
 * queue: how turns reach this runner. LISTEN `turns` (a message was sent)
 * and `cancels` (a running turn is to be cancelled) on the listen
 * connection, whose socket is one of curl_multi_poll()'s extra fds, so a
 * turn posted to an idle runner starts within milliseconds; a slow poll
 * (poll_s) is only the safety net for lost wake-ups and expired leases.
 * Claims use FOR UPDATE SKIP LOCKED (evr_claim) and bring each turn's
 * configuration in the same round trip; leases are renewed every
 * renew_s, and the runner's heartbeat row is what /health counts.
 */
#include "runner.h"
#include "log.h"
#include "sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The cancels of this runner's turns that a lost connection may have
 * swallowed: after every (re)LISTEN, the turns it holds that are
 * cancelling are cancelled here (turn_cancel ignores those it knows). */
static void recheck_cancels(struct runner *r)
{
	static const char sql[] =
		"SELECT replace(id::text, '-', '') FROM turns "
		"WHERE lease_owner = $1 AND state = 'cancelling'";
	const char *p[1] = {r->id};
	PGresult *res;
	int i;

	if (!r->turns)
		return;
	res = db_exec(&r->listen, sql, 1, p);
	for (i = 0; res && i < PQntuples(res); i++) {
		struct turn *t = turn_find(r, PQgetvalue(res, i, 0));
		if (t)
			turn_cancel(r, t);
	}
	PQclear(res);
}

int queue_listen(struct runner *r)
{
	static const char sql[] = "LISTEN turns; LISTEN cancels";
	PGresult *res;
	r->listen_retry_ms = now_ms() + 250;
	if (db_ensure(&r->listen) != 0)
		return -1;
	res = PQexec(r->listen.conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_error("LISTEN failed: %s", PQerrorMessage(r->listen.conn));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	r->listen_gen = r->listen.generation;
	recheck_cancels(r);
	return 0;
}

void queue_drain_notifies(struct runner *r, int *want_claim)
{
	PGnotify *n;
	/* lost, or replaced by a reconnect during a claim: LISTEN again
	 * (at most every 250 ms) and claim what was missed meanwhile */
	if (!r->listen.conn || r->listen.generation != r->listen_gen ||
	    PQconsumeInput(r->listen.conn) != 1) {
		if (now_ms() < r->listen_retry_ms)
			return;
		log_warn("listen connection lost; reconnecting");
		if (queue_listen(r) == 0)
			*want_claim = 1;
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
	static const char claim[] =
		"SELECT replace(c.id::text, '-', ''), "
		"replace(c.session_id::text, '-', ''), "
		"replace(c.org_id::text, '-', ''), c.state, c.attempt, c.age_ms "
		"FROM evr_claim($1, $2, $3) c";
	/* one round trip for the configurations of all claimed turns, each
	 * with only the events this runner has not cached yet, and its MCP
	 * servers as the member "mcp" when it has any (evr_turn_mcp) */
	static const char config[] =
		"SELECT coalesce(left(c::text, -1) || ',\"mcp\":' || "
		"  evr_turn_mcp(u.t)::text || '}', c::text) "
		"FROM unnest($1::uuid[], $2::bigint[]) WITH ORDINALITY "
		"u(t, a, i), LATERAL evr_turn_config(u.t, u.a) c ORDER BY u.i";
	char max[16], lease[32], num[24];
	const char *p[3] = {r->id, max, lease};
	struct buf ids = BUF_INIT, after = BUF_INIT;
	PGresult *res, *cfg = NULL;
	long long t0 = now_ms();
	int i, n;

	if (r->draining || r->inflight >= r->max_inflight)
		return 0;
	snprintf(max, sizeof(max), "%d", r->max_inflight - r->inflight);
	snprintf(lease, sizeof(lease), "%g", r->lease_s);
	res = db_exec(&r->listen, claim, 3, p);
	if (!res)
		return -1;
	n = PQntuples(res);
	if (n) {
		for (i = 0; i < n; i++) {
			db_array_add(&ids, PQgetvalue(res, i, 0));
			snprintf(num, sizeof(num), "%lld",
				 history_cache_after(PQgetvalue(res, i, 1)));
			db_array_add(&after, num);
		}
		db_array_end(&ids);
		db_array_end(&after);
		p[0] = ids.data;
		p[1] = after.data;
		cfg = db_exec(&r->listen, config, 2, p);
		/* without its configuration a claimed turn is dropped: its
		 * lease runs out and a retry picks it up */
		for (i = 0; i < n; i++)
			turn_start(r, PQgetvalue(res, i, 0),
				   PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
				   PQgetvalue(res, i, 3),
				   atoi(PQgetvalue(res, i, 4)),
				   atoll(PQgetvalue(res, i, 5)),
				   cfg ? db_val(cfg, i, 0) : NULL);
		log_debug("claimed %d turn(s) in %lld ms", n, now_ms() - t0);
		PQclear(cfg);
		buf_release(&ids);
		buf_release(&after);
	}
	PQclear(res);
	return n;
}

/* uuid[] literal of the turns we hold */
static int held(struct runner *r, struct buf *b)
{
	struct turn *t;
	int n = 0;
	for (t = r->turns; t; t = t->next) {
		if (t->dropped || t->phase == PH_DONE)
			continue;
		db_array_add(b, t->id);
		n++;
	}
	db_array_end(b);
	return n;
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

	if (held(r, &ids)) {
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

	if (held(r, &ids)) {
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
		"INSERT INTO runners (id, host, pid, seen_at, sandbox_error) "
		"VALUES ($1, $2, $3, now(), $4) "
		"ON CONFLICT (id) DO UPDATE SET seen_at = now(), "
		"sandbox_error = EXCLUDED.sandbox_error";
	char host[256], pid[16];
	const char *p[4] = {r->id, host, pid, sandbox_unavailable()};
	PGresult *res;

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	res = db_exec(&r->listen, sql, 4, p);
	PQclear(res);
}

void queue_goodbye(struct runner *r)
{
	static const char sql[] = "DELETE FROM runners WHERE id = $1";
	const char *p[1] = {r->id};
	PQclear(db_exec(&r->listen, sql, 1, p));
}
