/*
 * db: one PostgreSQL connection (libpq) per thread, with statements
 * prepared on first use.
 *
 * Statements are identified by the address of their SQL text, which must
 * be a string literal (static storage): the first db_exec() of a given
 * literal on a connection PQprepare()s it under a generated name, later
 * calls only PQexecPrepared(). With `db_pool = transaction` (PgBouncer in
 * transaction mode) nothing is prepared and every call is PQexecParams.
 *
 * db_exec() returns a PGresult the caller must PQclear(), or NULL on
 * failure; then db->sqlstate holds the SQLSTATE ("" for a lost
 * connection) and the error is logged (without parameters, which may
 * carry user data). A lost connection is reset once and the statement
 * retried when no transaction is open.
 */
#ifndef EVR_DB_H
#define EVR_DB_H

#include <libpq-fe.h>

#include "buf.h"

#define DB_STMT_SLOTS 512

struct db {
	PGconn *conn;
	char *conninfo;
	int prepared_mode;
	int in_tx;
	unsigned generation; /* bumped by every (re)connect: session state is
				gone */
	long timeout_ms;     /* statement_timeout; 0 = the server's */
	char sqlstate[6];
	const char *stmt_sql[DB_STMT_SLOTS];
	unsigned nstmts;
};

/* application_name of the connections opened from now on (NULL or "":
 * the connection string's). */
void db_application_name(const char *name);

/* Connect (connect_timeout db_connect_timeout_s, TCP keepalives after
 * db_keepalive_idle_s); returns 0, or -1 (logged). db->conn stays set either
 * way so a later call can retry. */
int db_connect(struct db *db, const char *conninfo, int prepared_mode);
void db_close(struct db *db);
/* Make sure the connection is usable (reset it if not). 0 or -1. */
int db_ensure(struct db *db);

PGresult *db_exec(struct db *db, const char *sql, int nparams,
		  const char *const *params);
/* Same, but with explicit lengths for binary-safe text (e.g. bytea as
 * text format needs none; use this for file content with format 1). */
PGresult *db_exec_bin(struct db *db, const char *sql, int nparams,
		      const char *const *params, const int *lengths,
		      const int *formats);
/* The same with every result column in result_format (1 = binary: a
 * bytea column arrives as its raw bytes, text as its UTF-8 bytes). */
PGresult *db_exec_res(struct db *db, const char *sql, int nparams,
		      const char *const *params, const int *lengths,
		      const int *formats, int result_format);

int db_begin(struct db *db);
/* Bound every statement of this connection to ms milliseconds (0 = the
 * server's setting): with prepared_mode (a session of our own) a SET on
 * the session, made again after every reconnect; without (PgBouncer in
 * transaction mode: no session state) a SET LOCAL in each db_begin()
 * transaction only, so single statements outside one rely on the pooler's
 * query_timeout. A statement cancelled by it fails with SQLSTATE 57014. */
void db_set_statement_timeout(struct db *db, long ms);
int db_commit(struct db *db);
void db_rollback(struct db *db);
/* One statement in its own transaction with synchronous_commit off (what
 * is written may be lost in a crash: deltas, never the event log): 0, or
 * -1 after a rollback. */
int db_exec_nosync(struct db *db, const char *sql, int nparams,
		   const char *const *params);

/* PostgreSQL array literals for array parameters ($1::text[]): add each
 * element (NULL for SQL NULL; quoted and escaped), then end it; an empty
 * buffer ends as "{}". */
void db_array_add(struct buf *b, const char *s);
void db_array_end(struct buf *b);

/* Binary one-dimensional arrays, for array parameters sent in format 1:
 * no escaping on our side, and PostgreSQL reads the elements without
 * parsing text (a uuid is its 16 bytes, an integer its big-endian bytes;
 * text and jsonb are still their UTF-8 text, which PostgreSQL checks).
 * db_barray_begin() starts one of element type `oid` (the parameter's
 * declared element type: PostgreSQL refuses any other) in a zeroed
 * struct, or one used before (its allocation is kept, so a caller that
 * builds arrays again and again can keep them), db_barray_end() writes
 * the element count; the parameter is a->b.data, length a->b.len. */
struct db_barray {
	struct buf b;
	unsigned n;
};
#define DB_OID_INT4 23u
#define DB_OID_INT8 20u
#define DB_OID_TEXT 25u
#define DB_OID_UUID 2950u
#define DB_OID_JSONB 3802u
void db_barray_begin(struct db_barray *a, unsigned oid);
/* An element's binary form, or SQL NULL when data is NULL. */
void db_barray_add(struct db_barray *a, const void *data, size_t len);
void db_barray_int4(struct db_barray *a, long v);
void db_barray_int8(struct db_barray *a, long long v);
/* A C string (NULL: SQL NULL), as text or, for jsonb, its JSON text. */
void db_barray_text(struct db_barray *a, const char *s);
void db_barray_jsonb(struct db_barray *a, const char *json);
/* A uuid from its 32 hex digits; NULL or "" is SQL NULL.
 * -1 if it is not a uuid (then SQL NULL is added, so the arrays keep
 * their alignment). */
int db_barray_uuid(struct db_barray *a, const char *hex);
void db_barray_end(struct db_barray *a);
void db_barray_release(struct db_barray *a);

/* True if db->sqlstate equals the given SQLSTATE. */
int db_is(const struct db *db, const char *sqlstate);
#define DB_UNIQUE_VIOLATION "23505"
#define DB_FK_VIOLATION "23503"
#define DB_CHECK_VIOLATION "23514"

/* The first column of row 0 as a string, or NULL if there is no row or
 * the value is SQL NULL. Borrowed from res. */
const char *db_val(const PGresult *res, int row, int col);

#endif
