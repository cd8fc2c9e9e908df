/*
 * auth: API keys. A key is "evr_" + 64 lowercase hex (32 random bytes);
 * only its SHA-256 is stored. Accepted header forms: "Bearer evr_...",
 * "ApiKey evr_...", and a bare "evr_..." (what the upstream SDKs send).
 */
#ifndef EVR_AUTH_H
#define EVR_AUTH_H

#include "db.h"

#define AUTH_KEY_LEN 68 /* "evr_" + 64 hex */

/* Extract the key from an Authorization header value; NULL if the form
 * is not one we accept. Returns a pointer into header. */
const char *auth_key_from_header(const char *header);
/* Generate a new key (NUL-terminated, AUTH_KEY_LEN chars) and its hash. */
void auth_new_key(char key[AUTH_KEY_LEN + 1], char hash[65]);
/* Look the key up. 1 = valid (org, user, key ids filled as 32 hex, role
 * "admin" or "member"), 0 = missing/unknown/revoked/expired, -1 =
 * database error.
 *
 * With auth_cache_init(ttl_s > 0), valid keys are remembered per thread
 * for up to ttl_s seconds (never past the key's expiry), which saves a
 * round trip per request. Every revocation NOTIFYs channel `keys` in its
 * transaction; each cached thread's connection LISTENs on it and drops
 * its whole cache when a notification arrives, which it checks before
 * every lookup. With PgBouncer in transaction mode (no LISTEN) the cache
 * must stay off. */
void auth_cache_init(double ttl_s);
#define AUTH_ROLE_LEN 8 /* "member" and its NUL fit */
int auth_check(struct db *db, const char *header, char org[33], char user[33],
	       char keyid[33], char role[AUTH_ROLE_LEN]);
/* The lookup auth_check runs, for callers that run it themselves (the
 * SSE program, without blocking): auth_hash() gives its one parameter
 * (0 if the header holds no key of an accepted form), and
 * auth_lookup_result() reads the answer like auth_check (1 or 0), with
 * *touch set when auth_touch_sql ($1 = keyid) should be run as well. */
extern const char auth_lookup_sql[];
extern const char auth_touch_sql[];
int auth_hash(const char *header, char hash[65]);
int auth_lookup_result(const PGresult *res, char org[33], char user[33],
		       char keyid[33], char role[AUTH_ROLE_LEN], int *touch);
/* Of the key ids (32 hex) given as a PostgreSQL array literal ($1), the
 * ones that no longer authenticate (revoked, expired or deleted): what a
 * program holding connections open for keys runs when `keys` notifies. */
extern const char auth_dead_sql[];
/* SQL that revokes keys must notify, e.g. pg_notify('keys', ''); the
 * payload may name the key (32 hex), listeners must not rely on it. */
#define AUTH_REVOKE_CHANNEL "keys"

#endif
