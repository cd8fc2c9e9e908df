/*
 * idempotency: the Idempotency-Key protocol of ARCHITECTURE 2.2 for POST routes
 * with an effect (session create, message send).
 *
 * Inside the effect's transaction, before the effect, idem_begin() inserts
 * the key row (org, key, method+path, body hash). A concurrent request
 * with the same key blocks on that insert (unique index) until the first
 * commits or rolls back; it then either replays the stored response or, if
 * the first rolled back, proceeds itself. Only 2xx responses are stored
 * (a failed effect rolls back the key row with everything else). Rows older
 * than 24 h are treated as absent (housekeeping purges them).
 */
#include "api.h"
#include "crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int key_ok(const char *k)
{
	size_t n = strlen(k);
	if (n < 1 || n > 255)
		return 0;
	for (; *k; k++)
		if ((unsigned char)*k < 0x20 || (unsigned char)*k > 0x7e)
			return 0;
	return 1;
}

int idem_check_header(struct req *rq)
{
	if (rq->idempotency_key && !key_ok(rq->idempotency_key)) {
		res_error(
			rq, 400, "validation_error",
			"Idempotency-Key: 1 to 255 printable ASCII characters");
		return -1;
	}
	return 0;
}

int idem_begin(struct req *rq)
{
	static const char purge[] =
		"DELETE FROM idempotency_keys WHERE org_id = $1 AND key = $2 "
		"AND created_at < now() - interval '24 hours'";
	static const char ins[] =
		"INSERT INTO idempotency_keys (org_id, key, request, body_hash, "
		"status, response) VALUES ($1, $2, $3, $4, 0, '') "
		"ON CONFLICT (org_id, key) DO NOTHING";
	static const char get[] =
		"SELECT request = $3 AND body_hash = $4, status, response "
		"FROM idempotency_keys WHERE org_id = $1 AND key = $2";
	const char *reqline;
	char hash[65];
	const char *p[4];
	PGresult *res;
	int ret = -1;

	if (!rq->idempotency_key)
		return 0;
	crypto_sha256_hex(rq->body, rq->body_len, hash);
	reqline = arena_printf(rq->arena, "%s %s", rq->method, rq->path);
	p[0] = rq->org;
	p[1] = rq->idempotency_key;
	p[2] = reqline;
	p[3] = hash;
	res = db_exec(rq->db, purge, 2, p);
	if (!res)
		goto dberr;
	PQclear(res);
	res = db_exec(rq->db, ins, 4, p);
	if (!res)
		goto dberr;
	if (!strcmp(PQcmdTuples(res), "1")) {
		PQclear(res);
		return 0; /* ours: go on with the effect */
	}
	PQclear(res);
	res = db_exec(rq->db, get, 4, p);
	if (!res)
		goto dberr;
	if (PQntuples(res) != 1) {
		/* deleted between our insert and select: a purge raced us */
		res_error(rq, 409, "conflict",
			  "Concurrent use of this Idempotency-Key; retry");
	} else if (PQgetvalue(res, 0, 0)[0] != 't') {
		res_error(rq, 422, "idempotency_key_reused",
			  "This Idempotency-Key was used with another request");
	} else {
		const char *body = PQgetvalue(res, 0, 2);
		res_json(rq, atoi(PQgetvalue(res, 0, 1)), body, strlen(body));
		res_header(rq, "Idempotent-Replayed", "true");
	}
	PQclear(res);
	return 1;
dberr:
	api_db_error(rq);
	return ret;
}

int idem_finish(struct req *rq)
{
	static const char upd[] =
		"UPDATE idempotency_keys SET status = $3, response = $4 "
		"WHERE org_id = $1 AND key = $2";
	char st[8];
	const char *p[4] = {rq->org, rq->idempotency_key, st, NULL};
	PGresult *res;

	if (!rq->idempotency_key)
		return 0;
	snprintf(st, sizeof(st), "%d", rq->status);
	p[3] = rq->res_body.data;
	res = db_exec(rq->db, upd, 4, p);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}
