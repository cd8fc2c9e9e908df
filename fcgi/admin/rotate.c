/*
 * rotate-server-key: replace the server key that seals LLM provider API
 * keys and MCP servers' keys and headers (AES-256-GCM, lib/crypto.h),
 * re-encrypting every one of them with the new one in one transaction.
 *
 * Steps, each undone if a later one fails:
 *   1. read the current key (server_key_file) and create a new one in
 *      <file>.new (mode 0600, refused if it exists: a rotation that died);
 *   2. BEGIN; lock llm_providers and mcp_servers against writers
 *      (EXCLUSIVE: readers go on with the old ciphertexts, which the
 *      programs' key rings still open); open every sealed value with the
 *      current key (any that does not open aborts everything, naming its
 *      row) and seal it with the new one;
 *   3. keep the current key as <file>.<UTC timestamp>.old (backups of
 *      the database made before now need it), rename <file>.new over
 *      <file>;
 *   4. COMMIT (on failure the old file is put back).
 * The running programs notice the new file at their next use of the key
 * (lib/keyring.h) and keep the previous key as a fallback, so nothing
 * needs a restart. Deliberately across all organizations: an operator's
 * job, like migrate.
 */
#include "admin.h"
#include "buf.h"
#include "crypto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what, const char *detail)
{
	fprintf(stderr, "everruns-admin: rotate-server-key: %s%s%s\n", what,
		detail ? ": " : "", detail ? detail : "");
	return 1;
}

/* The sealed columns: the query of (id, public id, sealed value) of the
 * rows that have one, the update of one, and what it is. */
static const struct sealed_col {
	const char *all, *upd, *what;
} sealed_cols[] = {
	{"SELECT id::text, evr_id('prv', id), api_key_enc "
	 "FROM llm_providers WHERE api_key_enc IS NOT NULL ORDER BY id",
	 "UPDATE llm_providers SET api_key_enc = $2 WHERE id = $1::uuid",
	 "this provider's key"},
	{"SELECT id::text, evr_id('mcp', id), api_key_enc "
	 "FROM mcp_servers WHERE api_key_enc IS NOT NULL ORDER BY id",
	 "UPDATE mcp_servers SET api_key_enc = $2 WHERE id = $1::uuid",
	 "this MCP server's key"},
	{"SELECT id::text, evr_id('mcp', id), headers_enc "
	 "FROM mcp_servers WHERE headers_enc IS NOT NULL ORDER BY id",
	 "UPDATE mcp_servers SET headers_enc = $2 WHERE id = $1::uuid",
	 "this MCP server's headers"},
};

/* Re-encrypt every value of one sealed column, in the open transaction.
 * How many, or -1 (reported). */
static long reseal_col(struct db *db, const struct sealed_col *c,
		       const unsigned char *oldk, const unsigned char *newk)
{
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	PGresult *res, *r2;
	long i, n = -1;

	if (!(res = db_exec(db, c->all, 0, NULL)))
		return -1;
	buf_init(&plain, 256);
	buf_init(&sealed, 256);
	for (i = 0; i < PQntuples(res); i++) {
		const char *p[2];

		buf_reset(&plain);
		buf_reset(&sealed);
		if (crypto_open(oldk, PQgetvalue(res, i, 2), &plain) != 0) {
			fprintf(stderr,
				"everruns-admin: rotate-server-key: %s does "
				"not open with the current server key (nothing "
				"was changed): %s\n",
				c->what, PQgetvalue(res, i, 1));
			goto out;
		}
		if (crypto_seal(newk, plain.data, plain.len, &sealed) != 0) {
			fail("sealing failed", NULL);
			goto out;
		}
		p[0] = PQgetvalue(res, i, 0);
		p[1] = sealed.data;
		if (!(r2 = db_exec(db, c->upd, 2, p)))
			goto out;
		PQclear(r2);
	}
	n = PQntuples(res);
out:
	/* the plaintext keys do not linger in freed memory */
	memset(plain.data, 0, plain.len);
	buf_release(&plain);
	buf_release(&sealed);
	PQclear(res);
	return n;
}

/* Re-encrypt every sealed value; *providers: how many provider keys,
 * *mcp: how many MCP server keys and header sets. 0, or -1 (reported). */
static int reseal_all(struct db *db, const unsigned char *oldk,
		      const unsigned char *newk, long *providers, long *mcp)
{
	static const char lock[] = "LOCK TABLE llm_providers, mcp_servers "
				   "IN EXCLUSIVE MODE";
	PGresult *res;
	size_t k;
	long n;

	if (!(res = db_exec(db, lock, 0, NULL)))
		return -1;
	PQclear(res);
	*providers = *mcp = 0;
	for (k = 0; k < sizeof(sealed_cols) / sizeof(sealed_cols[0]); k++) {
		if ((n = reseal_col(db, &sealed_cols[k], oldk, newk)) < 0)
			return -1;
		*(k ? mcp : providers) += n;
	}
	return 0;
}

int admin_rotate_server_key(struct db *db, const char *path)
{
	unsigned char oldk[CRYPTO_KEY_LEN], newk[CRYPTO_KEY_LEN];
	char newp[4096], oldp[4200], stamp[32];
	time_t now = time(NULL);
	long n, n_mcp;

	if (crypto_load_key(path, oldk) != 0)
		return fail("cannot read the current server key", path);
	snprintf(newp, sizeof(newp), "%s.new", path);
	if (crypto_create_key_file(newp) != 0)
		return fail("cannot create the new key (remove a stale one "
			    "left by an interrupted rotation)",
			    newp);
	if (crypto_load_key(newp, newk) != 0) {
		unlink(newp);
		return fail("cannot read the new key back", newp);
	}
	if (db_begin(db) != 0) {
		unlink(newp);
		return fail("database error", db->sqlstate);
	}
	if (reseal_all(db, oldk, newk, &n, &n_mcp) < 0) {
		db_rollback(db);
		unlink(newp);
		return 1;
	}
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime(&now));
	snprintf(oldp, sizeof(oldp), "%s.%s.old", path, stamp);
	if (link(path, oldp) != 0) {
		db_rollback(db);
		unlink(newp);
		return fail("cannot keep the current key", strerror(errno));
	}
	if (rename(newp, path) != 0) {
		db_rollback(db);
		unlink(newp);
		unlink(oldp);
		return fail("cannot install the new key", strerror(errno));
	}
	if (db_commit(db) != 0) {
		/* the database still has the old ciphertexts: old key back */
		if (rename(oldp, path) != 0)
			fprintf(stderr,
				"everruns-admin: rotate-server-key: "
				"COMMIT failed and the old key could "
				"not be put back: it is in %s\n",
				oldp);
		return fail("COMMIT failed; nothing was changed", db->sqlstate);
	}
	memset(oldk, 0, sizeof(oldk));
	memset(newk, 0, sizeof(newk));
	printf("rotated the server key in %s: %ld provider key(s) "
	       "re-encrypted, %ld MCP server secret(s)\n"
	       "the previous key is kept in %s: database backups made before "
	       "now need it; delete it when they are gone\n",
	       path, n, n_mcp, oldp);
	return 0;
}
