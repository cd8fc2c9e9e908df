/*
 * fs_stream: fs_write_stream(), a file written as its bytes arrive.
 *
 * fs_write() sends the content as one binary query parameter: libpq
 * builds the whole Bind message in its output buffer, so the process
 * holds the file twice (the request body and that message) and the
 * database starts reading only after the body has been read whole. Here
 * the file travels as the one row of `COPY evr_fs_upload FROM STDIN
 * (FORMAT binary)` (sql/018): the fields before the content, then the
 * content in pieces as read() hands them over, then the rest. The view's
 * trigger calls evr_fs_write with the same arguments fs_write() gives it
 * and leaves its (status, info, event) in transaction-local settings,
 * read back in the same transaction; the outcome is then that of
 * fs_write() (fs_change_done).
 *
 * Owns: the COPY binary encoding of that row (PostgreSQL's "binary copy
 * format": signature, flags, header extension, then per tuple a 16-bit
 * field count and per field a 32-bit length and the bytes; text fields
 * are their UTF-8 bytes).
 */
#include "fs.h"
#include "db.h"
#include "log.h"

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define FS_STREAM_PIECE 65536
#define FS_STREAM_SNDBUF (4 << 20)

static void put_text(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	buf_add_be32(b, (uint32_t)n);
	buf_add(b, s, n);
}

static int send_buf(PGconn *conn, struct buf *b)
{
	int ok = PQputCopyData(conn, b->data, (int)b->len) == 1;
	buf_reset(b);
	return ok;
}

enum fs_status fs_write_stream(const struct fs_ctx *c, const char *path,
			       size_t len, fs_reader read, void *arg,
			       enum fs_write_mode mode, struct buf *info,
			       long long *limit)
{
	static const char copy[] =
		"COPY evr_fs_upload FROM STDIN (FORMAT binary)";
	static const char outcome[] =
		"SELECT nullif(current_setting('evr.fs_status', true), ''), "
		"nullif(current_setting('evr.fs_info', true), ''), "
		"nullif(current_setting('evr.fs_event', true), '')";
	static const char *const modes[] = {"create", "replace", "mkdir"};
	char capf[24], capt[24], quota[256], piece[FS_STREAM_PIECE];
	struct buf b = BUF_INIT;
	PGconn *conn;
	PGresult *res;
	size_t got = 0;
	int own_tx = !c->db->in_tx, ok, sndbuf = FS_STREAM_SNDBUF;

	if (len > INT32_MAX)
		return FS_TOO_LARGE_FILE;
	if (own_tx && db_begin(c->db) != 0)
		return FS_DB_ERROR;
	conn = c->db->conn;
	/* room for the file in the socket: with the default (about 200
	 * KiB) every piece waited for the backend to take the previous one,
	 * a wake-up of both per 8 KiB (10 MB: ~300 -> ~140 ms); the kernel
	 * caps it at net.core.wmem_max */
	setsockopt(PQsocket(conn), SOL_SOCKET, SO_SNDBUF, &sndbuf,
		   sizeof(sndbuf));
	res = PQexec(conn, copy);
	ok = PQresultStatus(res) == PGRES_COPY_IN;
	if (!ok)
		log_error("%s: %s", copy, PQerrorMessage(conn));
	PQclear(res);
	if (!ok)
		goto fail;

	fs_quota_json(quota, sizeof(quota));
	snprintf(capf, sizeof(capf), "%lld", fs_cap_file());
	snprintf(capt, sizeof(capt), "%lld", fs_cap_total());
	buf_add(&b, "PGCOPY\n\377\r\n\0", 11);
	buf_add_be32(&b, 0); /* flags */
	buf_add_be32(&b, 0); /* header extension */
	buf_add_be16(&b, 10);
	put_text(&b, c->session);
	put_text(&b, c->org);
	put_text(&b, path);
	buf_add_be32(&b, (uint32_t)len);
	ok = send_buf(conn, &b);
	while (ok && got < len) {
		size_t want =
			len - got < sizeof(piece) ? len - got : sizeof(piece);
		int n = read(arg, piece, (int)want);
		if (n <= 0)
			break;
		ok = PQputCopyData(conn, piece, n) == 1;
		got += (size_t)n;
	}
	if (ok && got == len) {
		put_text(&b, modes[mode]);
		put_text(&b, capf);
		put_text(&b, capt);
		put_text(&b, c->emit ? "false" : "true");
		put_text(&b, c->source);
		put_text(&b, quota);
		buf_add_be16(&b, 0xFFFFu); /* trailer: -1 */
		ok = send_buf(conn, &b);
	}
	buf_release(&b);
	/* a body cut short writes nothing: the COPY fails, the transaction
	 * goes */
	if (PQputCopyEnd(conn, ok && got == len
				       ? NULL
				       : "the request body ended early") != 1)
		ok = 0;
	while ((res = PQgetResult(conn))) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			if (ok && got == len) {
				const char *st = PQresultErrorField(
					res, PG_DIAG_SQLSTATE);
				snprintf(c->db->sqlstate,
					 sizeof(c->db->sqlstate), "%s",
					 st ? st : "");
				log_error("%s: %s", copy,
					  PQresultErrorMessage(res));
			}
			ok = 0;
		}
		PQclear(res);
	}
	if (!ok || got != len)
		goto fail;
	if (!(res = db_exec(c->db, outcome, 0, NULL)))
		goto fail;
	if (own_tx && db_commit(c->db) != 0) {
		PQclear(res);
		return FS_DB_ERROR;
	}
	return fs_change_done(c, res, info, limit);
fail:
	if (own_tx)
		db_rollback(c->db);
	return FS_DB_ERROR;
}
