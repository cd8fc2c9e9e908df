#define _GNU_SOURCE /* POLLRDHUP */
#include "db.h"
#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "log.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NOTICEs ("relation already exists, skipping") are not errors. */
static void on_notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("sql notice: %s", msg);
}

static char app_name[64];

void db_application_name(const char *name)
{
	snprintf(app_name, sizeof(app_name), "%s", name ? name : "");
}

/* Open a connection with bounded waits: connect_timeout for the whole
 * connection set-up, TCP keepalives and tcp_user_timeout so a half-open
 * connection (a host or network gone) fails in about a minute instead of
 * freezing the caller until the kernel gives up. libpq ignores the TCP
 * settings on a unix socket; later keywords override what the connection
 * string says, PQreset reuses them. */
static PGconn *open_conn(const char *conninfo)
{
	static const char *const kw[] = {
		"dbname",           "connect_timeout",     "keepalives",
		"keepalives_idle",  "keepalives_interval", "keepalives_count",
		"tcp_user_timeout", "application_name",    NULL};
	char ct[16], idle[16], utm[24];
	long c = config_int("db_connect_timeout_s");
	long k = config_int("db_keepalive_idle_s");
	const char *val[9];

	snprintf(ct, sizeof(ct), "%ld", c);
	snprintf(idle, sizeof(idle), "%ld", k);
	/* unacknowledged data: the same bound as an idle connection's */
	snprintf(utm, sizeof(utm), "%ld", (k + 30) * 1000);
	val[0] = conninfo;
	val[1] = ct;
	val[2] = "1";
	val[3] = idle;
	val[4] = "10";
	val[5] = "3";
	val[6] = utm;
	val[7] = app_name; /* "": ignored, the connection string's stays */
	val[8] = NULL;
	return PQconnectdbParams(kw, val, 1);
}

int db_connect(struct db *db, const char *conninfo, int prepared_mode)
{
	memset(db, 0, sizeof(*db));
	db->conninfo = xstrdup(conninfo);
	db->prepared_mode = prepared_mode;
	db->conn = open_conn(conninfo);
	db->generation = 1;
	PQsetNoticeProcessor(db->conn, on_notice, NULL);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		log_error("database connection failed: %s",
			  PQerrorMessage(db->conn));
		return -1;
	}
	return 0;
}

void db_close(struct db *db)
{
	if (db->conn)
		PQfinish(db->conn);
	free(db->conninfo);
	memset(db, 0, sizeof(*db));
}

static void forget_statements(struct db *db)
{
	memset(db->stmt_sql, 0, sizeof(db->stmt_sql));
	db->nstmts = 0;
}

/* Has the server closed this idle connection (a restart, an idle
 * timeout)? Its socket then reads as ready: hung up, or an error message
 * followed by the end of the stream. Finding out now resets the
 * connection before a statement is sent on it, rather than failing that
 * statement. On an idle connection nothing else can be waiting but
 * notifications, which stay queued for PQnotifies. */
static int server_closed(struct db *db)
{
	struct pollfd p;
	int i;
	if (PQstatus(db->conn) != CONNECTION_OK)
		return 1;
	if (PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		return 0;
	p.fd = PQsocket(db->conn);
	p.events = POLLIN | POLLRDHUP;
	p.revents = 0;
	if (p.fd < 0 || poll(&p, 1, 0) != 1)
		return 0;
	if (p.revents & (POLLHUP | POLLRDHUP | POLLERR))
		return 1;
	/* the message first, then (if the server has gone) the end */
	for (i = 0; i < 2; i++)
		if (PQconsumeInput(db->conn) != 1)
			return 1;
	return PQstatus(db->conn) != CONNECTION_OK;
}

/* Session settings of a new connection (prepared_mode only). */
static void session_setup(struct db *db)
{
	char q[64];
	PGresult *r;
	if (!db->prepared_mode || db->timeout_ms <= 0 ||
	    PQstatus(db->conn) != CONNECTION_OK)
		return;
	snprintf(q, sizeof(q), "SET statement_timeout = %ld", db->timeout_ms);
	r = PQexec(db->conn, q);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		log_error("%s: %s", q, PQerrorMessage(db->conn));
	PQclear(r);
}

void db_set_statement_timeout(struct db *db, long ms)
{
	db->timeout_ms = ms > 0 ? ms : 0;
	if (db->conn)
		session_setup(db);
}

int db_ensure(struct db *db)
{
	if (!db->conn) {
		db->conn = open_conn(db->conninfo);
		PQsetNoticeProcessor(db->conn, on_notice, NULL);
		if (PQstatus(db->conn) == CONNECTION_OK) {
			session_setup(db);
			return 0;
		}
	} else if (!server_closed(db)) {
		return 0;
	}
	PQreset(db->conn);
	forget_statements(db);
	db->in_tx = 0;
	db->generation++;
	if (PQstatus(db->conn) != CONNECTION_OK) {
		log_error("database reconnect failed: %s",
			  PQerrorMessage(db->conn));
		return -1;
	}
	log_info("database connection re-established");
	session_setup(db);
	return 0;
}

static void note_error(struct db *db, const PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", st ? st : "");
	/* constraint violations are expected outcomes the caller maps to
	 * 404/409; log them at debug level only */
	if (st &&
	    (!strcmp(st, DB_UNIQUE_VIOLATION) || !strcmp(st, DB_FK_VIOLATION) ||
	     !strcmp(st, DB_CHECK_VIOLATION)))
		log_debug("sql: %s", PQresultErrorMessage(res));
	else
		log_error("sql error %s: %s", db->sqlstate,
			  res ? PQresultErrorMessage(res)
			      : PQerrorMessage(db->conn));
}

/* Slot of sql in the statement table (open addressing on the pointer). */
static unsigned stmt_slot(struct db *db, const char *sql, int *found)
{
	uintptr_t h = (uintptr_t)sql;
	unsigned i;
	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15ull;
	i = (unsigned)(h >> 7) % DB_STMT_SLOTS;
	while (db->stmt_sql[i] && db->stmt_sql[i] != sql)
		i = (i + 1) % DB_STMT_SLOTS;
	*found = db->stmt_sql[i] == sql;
	return i;
}

static PGresult *exec_once(struct db *db, const char *sql, int n,
			   const char *const *params, const int *lengths,
			   const int *formats, int result_format)
{
	char name[16];
	int found;
	unsigned slot;

	if (!db->prepared_mode || db->nstmts >= DB_STMT_SLOTS / 2)
		return PQexecParams(db->conn, sql, n, NULL, params, lengths,
				    formats, result_format);
	slot = stmt_slot(db, sql, &found);
	snprintf(name, sizeof(name), "s%u", slot);
	if (!found) {
		PGresult *p = PQprepare(db->conn, name, sql, n, NULL);
		if (PQresultStatus(p) != PGRES_COMMAND_OK)
			return p;
		PQclear(p);
		db->stmt_sql[slot] = sql;
		db->nstmts++;
	}
	return PQexecPrepared(db->conn, name, n, params, lengths, formats,
			      result_format);
}

PGresult *db_exec_res(struct db *db, const char *sql, int nparams,
		      const char *const *params, const int *lengths,
		      const int *formats, int result_format)
{
	PGresult *res;
	ExecStatusType st;
	int attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		if (!db->in_tx && db_ensure(db) != 0) {
			db->sqlstate[0] = '\0';
			return NULL;
		}
		res = exec_once(db, sql, nparams, params, lengths, formats,
				result_format);
		st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
			return res;
		if (PQstatus(db->conn) != CONNECTION_OK && !db->in_tx &&
		    attempt == 0) {
			PQclear(res);
			continue; /* reset and retry once */
		}
		note_error(db, res);
		PQclear(res);
		return NULL;
	}
	return NULL;
}

PGresult *db_exec_bin(struct db *db, const char *sql, int nparams,
		      const char *const *params, const int *lengths,
		      const int *formats)
{
	return db_exec_res(db, sql, nparams, params, lengths, formats, 0);
}

PGresult *db_exec(struct db *db, const char *sql, int nparams,
		  const char *const *params)
{
	return db_exec_bin(db, sql, nparams, params, NULL, NULL);
}

static int simple(struct db *db, const char *sql)
{
	PGresult *res = PQexec(db->conn, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		note_error(db, res);
	PQclear(res);
	return ok ? 0 : -1;
}

int db_begin(struct db *db)
{
	int attempt;
	/* nothing has run in the transaction yet: a connection found dead
	 * (say, PostgreSQL restarted since its last use) is reset and BEGIN
	 * tried once more, as db_exec does */
	for (attempt = 0; attempt < 2; attempt++) {
		PGresult *res;
		if (db_ensure(db) != 0)
			return -1;
		char q[80] = "BEGIN";
		if (!db->prepared_mode && db->timeout_ms > 0)
			snprintf(q, sizeof(q),
				 "BEGIN; SET LOCAL "
				 "statement_timeout = %ld",
				 db->timeout_ms);
		res = PQexec(db->conn, q);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			PQclear(res);
			db->in_tx = 1;
			return 0;
		}
		if (attempt == 0 && PQstatus(db->conn) != CONNECTION_OK) {
			PQclear(res);
			continue;
		}
		note_error(db, res);
		PQclear(res);
		return -1;
	}
	return -1;
}

int db_commit(struct db *db)
{
	int r = simple(db, "COMMIT");
	db->in_tx = 0;
	return r;
}

int db_exec_nosync(struct db *db, const char *sql, int nparams,
		   const char *const *params)
{
	static const char set[] = "SET LOCAL synchronous_commit = off";
	PGresult *res;

	if (db_begin(db) != 0)
		return -1;
	res = db_exec(db, set, 0, NULL);
	PQclear(res);
	res = res ? db_exec(db, sql, nparams, params) : NULL;
	if (!res) {
		db_rollback(db);
		return -1;
	}
	PQclear(res);
	return db_commit(db);
}

void db_rollback(struct db *db)
{
	if (db->in_tx && PQstatus(db->conn) == CONNECTION_OK)
		simple(db, "ROLLBACK");
	db->in_tx = 0;
}

/* array_recv's header: dimensions, has-null flag (recomputed by the
 * server), element type, then each dimension's length and lower bound;
 * the length is patched in by db_barray_end. */
void db_barray_begin(struct db_barray *a, unsigned oid)
{
	buf_reset(&a->b);
	a->n = 0;
	buf_add_be32(&a->b, 1);
	buf_add_be32(&a->b, 0);
	buf_add_be32(&a->b, oid);
	buf_add_be32(&a->b, 0);
	buf_add_be32(&a->b, 1);
}

void db_barray_add(struct db_barray *a, const void *data, size_t len)
{
	a->n++;
	if (!data) {
		buf_add_be32(&a->b, 0xFFFFFFFFu); /* -1: NULL */
		return;
	}
	buf_add_be32(&a->b, (uint32_t)len);
	buf_add(&a->b, data, len);
}

void db_barray_int4(struct db_barray *a, long v)
{
	buf_add_be32(&a->b, 4);
	buf_add_be32(&a->b, (uint32_t)v);
	a->n++;
}

void db_barray_int8(struct db_barray *a, long long v)
{
	buf_add_be32(&a->b, 8);
	buf_add_be32(&a->b, (uint32_t)((unsigned long long)v >> 32));
	buf_add_be32(&a->b, (uint32_t)v);
	a->n++;
}

void db_barray_text(struct db_barray *a, const char *s)
{
	db_barray_add(a, s, s ? strlen(s) : 0);
}

void db_barray_jsonb(struct db_barray *a, const char *json)
{
	size_t n;
	if (!json) {
		db_barray_add(a, NULL, 0);
		return;
	}
	n = strlen(json);
	a->n++;
	buf_add_be32(&a->b, (uint32_t)(n + 1));
	buf_addch(&a->b, 1); /* jsonb's binary format: version 1, then text */
	buf_add(&a->b, json, n);
}

int db_barray_uuid(struct db_barray *a, const char *hex)
{
	unsigned char u[16];
	if (!hex || !*hex) {
		db_barray_add(a, NULL, 0);
		return 0;
	}
	if (strlen(hex) != 32 || crypto_unhex(hex, u, 16) != 0) {
		db_barray_add(a, NULL, 0);
		return -1;
	}
	db_barray_add(a, u, 16);
	return 0;
}

void db_barray_end(struct db_barray *a)
{
	unsigned char *p = (unsigned char *)a->b.data + 12;
	p[0] = (unsigned char)(a->n >> 24);
	p[1] = (unsigned char)(a->n >> 16);
	p[2] = (unsigned char)(a->n >> 8);
	p[3] = (unsigned char)a->n;
}

void db_barray_release(struct db_barray *a)
{
	buf_release(&a->b);
}

int db_is(const struct db *db, const char *sqlstate)
{
	return strcmp(db->sqlstate, sqlstate) == 0;
}

const char *db_val(const PGresult *res, int row, int col)
{
	if (!res || row >= PQntuples(res) || col >= PQnfields(res) ||
	    PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

void db_array_add(struct buf *b, const char *s)
{
	buf_addch(b, b->len ? ',' : '{');
	if (!s) {
		buf_adds(b, "NULL");
		return;
	}
	buf_addch(b, '"');
	for (;;) { /* runs without a quote or backslash, copied whole */
		size_t n = strcspn(s, "\"\\");
		buf_add(b, s, n);
		s += n;
		if (!*s)
			break;
		buf_addch(b, '\\');
		buf_addch(b, *s++);
	}
	buf_addch(b, '"');
}

void db_array_end(struct buf *b)
{
	if (!b->len)
		buf_addch(b, '{');
	buf_addch(b, '}');
}
