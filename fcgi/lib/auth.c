#include "auth.h"
#include "crypto.h"

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

int auth_check(struct db *db, const char *header, char org[33],
	       char user[33], char keyid[33])
{
	static const char q[] =
		"SELECT replace(org_id::text,'-',''), "
		"replace(user_id::text,'-',''), replace(id::text,'-',''), "
		"last_used_at IS NULL OR last_used_at < now() - interval '60 s' "
		"FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL "
		"AND (expires_at IS NULL OR expires_at > now())";
	static const char touch[] =
		"UPDATE api_keys SET last_used_at = now() WHERE id = $1";
	const char *key = auth_key_from_header(header);
	char hash[65];
	const char *p[1] = {hash};
	PGresult *res;
	int ok;

	if (!key)
		return 0;
	crypto_sha256_hex(key, AUTH_KEY_LEN, hash);
	res = db_exec(db, q, 1, p);
	if (!res)
		return -1;
	ok = PQntuples(res) == 1;
	if (ok) {
		memcpy(org, PQgetvalue(res, 0, 0), 33);
		memcpy(user, PQgetvalue(res, 0, 1), 33);
		memcpy(keyid, PQgetvalue(res, 0, 2), 33);
		if (PQgetvalue(res, 0, 3)[0] == 't') {
			const char *k[1] = {keyid};
			PGresult *u = db_exec(db, touch, 1, k);
			PQclear(u);
		}
	}
	PQclear(res);
	return ok;
}
