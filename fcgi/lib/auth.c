#include "auth.h"
#include "crypto.h"
#include "log.h"

#include <time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_key(const char *s)
{
	size_t i;
	if (strncmp(s, "evr_", 4) != 0)
		return 0;
	for (i = 4; i < AUTH_KEY_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[AUTH_KEY_LEN] == '\0';
}

const char *auth_key_from_header(const char *h)
{
	if (!h)
		return NULL;
	while (*h == ' ')
		h++;
	if (!strncasecmp(h, "Bearer ", 7))
		h += 7;
	else if (!strncasecmp(h, "ApiKey ", 7))
		h += 7;
	while (*h == ' ')
		h++;
	return is_key(h) ? h : NULL;
}

void auth_new_key(char key[AUTH_KEY_LEN + 1], char hash[65])
{
	unsigned char raw[32];
	crypto_random(raw, sizeof(raw));
	memcpy(key, "evr_", 4);
	crypto_hex(raw, sizeof(raw), key + 4);
	crypto_sha256_hex(key, AUTH_KEY_LEN, hash);
}

#define CACHE_SLOTS 64

struct cached_key {
	char hash[65];
	char org[33], user[33], key[33], role[AUTH_ROLE_LEN];
	long long until_ms;
};

static const char hexdigits[] = "0123456789abcdef";
static double cache_ttl_s;
static __thread struct cached_key cache[CACHE_SLOTS];
static __thread unsigned cache_gen; /* db generation we LISTEN on */

void auth_cache_init(double ttl_s)
{
	cache_ttl_s = ttl_s;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Make sure this connection listens for revocations and drop the cache
 * if any arrived (or the connection is new). 0 = the cache may be used. */
static int cache_sync(struct db *db)
{
	PGnotify *n;
	int dirty = 0;

	if (cache_ttl_s <= 0 || db_ensure(db) != 0)
		return -1;
	if (cache_gen != db->generation) {
		PGresult *r = PQexec(db->conn, "LISTEN " AUTH_REVOKE_CHANNEL);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (!ok)
			return -1;
		cache_gen = db->generation;
		dirty = 1;
	}
	/* db_ensure() has read whatever the socket held (server_closed()),
	 * so a revocation is in libpq's queue without another recv() here */
	while ((n = PQnotifies(db->conn))) {
		dirty = 1;
		PQfreemem(n);
	}
	if (dirty)
		memset(cache, 0, sizeof(cache));
	return 0;
}

const char auth_lookup_sql[] =
	"SELECT replace(org_id::text,'-',''), "
	"replace(user_id::text,'-',''), replace(id::text,'-',''), "
	"last_used_at IS NULL OR last_used_at < now() - interval '60 s', "
	"extract(epoch FROM expires_at - now()), role "
	"FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL "
	"AND (expires_at IS NULL OR expires_at > now())";
const char auth_dead_sql[] =
	"SELECT replace(k::text,'-','') FROM unnest($1::uuid[]) k "
	"WHERE NOT EXISTS (SELECT 1 FROM api_keys a WHERE a.id = k "
	"AND a.revoked_at IS NULL "
	"AND (a.expires_at IS NULL OR a.expires_at > now()))";
const char auth_touch_sql[] =
	"UPDATE api_keys SET last_used_at = now() WHERE id = $1";

int auth_hash(const char *header, char hash[65])
{
	const char *key = auth_key_from_header(header);
	if (!key)
		return 0;
	crypto_sha256_hex(key, AUTH_KEY_LEN, hash);
	return 1;
}

int auth_lookup_result(const PGresult *res, char org[33], char user[33],
		       char keyid[33], char role[AUTH_ROLE_LEN], int *touch)
{
	*touch = 0;
	if (PQntuples(res) != 1 || PQnfields(res) < 6)
		return 0;
	snprintf(role, AUTH_ROLE_LEN, "%s", PQgetvalue(res, 0, 5));
	memcpy(org, PQgetvalue(res, 0, 0), 33);
	memcpy(user, PQgetvalue(res, 0, 1), 33);
	memcpy(keyid, PQgetvalue(res, 0, 2), 33);
	*touch = PQgetvalue(res, 0, 3)[0] == 't';
	return 1;
}

int auth_check(struct db *db, const char *header, char org[33], char user[33],
	       char keyid[33], char role[AUTH_ROLE_LEN])
{
	char hash[65];
	const char *p[1] = {hash};
	struct cached_key *c;
	PGresult *res;
	int ok, use_cache, touch;

	if (!auth_hash(header, hash))
		return 0;
	use_cache = cache_sync(db) == 0;
	/* the digest is uniform: two hex digits pick the slot */
	c = &cache[((unsigned)(strchr(hexdigits, hash[0]) - hexdigits) * 16 +
		    (unsigned)(strchr(hexdigits, hash[1]) - hexdigits)) %
		   CACHE_SLOTS];
	if (use_cache && !strcmp(c->hash, hash) && mono_ms() < c->until_ms) {
		memcpy(org, c->org, 33);
		memcpy(user, c->user, 33);
		memcpy(keyid, c->key, 33);
		memcpy(role, c->role, AUTH_ROLE_LEN);
		return 1;
	}
	res = db_exec(db, auth_lookup_sql, 1, p);
	if (!res)
		return -1;
	ok = auth_lookup_result(res, org, user, keyid, role, &touch);
	if (ok) {
		if (touch) {
			const char *k[1] = {keyid};
			PGresult *u = db_exec(db, auth_touch_sql, 1, k);
			PQclear(u);
		}
		if (use_cache) {
			double ttl = cache_ttl_s;
			if (!PQgetisnull(res, 0, 4) &&
			    atof(PQgetvalue(res, 0, 4)) < ttl)
				ttl = atof(PQgetvalue(res, 0, 4));
			memcpy(c->hash, hash, 65);
			memcpy(c->org, org, 33);
			memcpy(c->user, user, 33);
			memcpy(c->key, keyid, 33);
			memcpy(c->role, role, AUTH_ROLE_LEN);
			c->until_ms = mono_ms() + (long long)(ttl * 1000);
		}
	}
	PQclear(res);
	return ok;
}
