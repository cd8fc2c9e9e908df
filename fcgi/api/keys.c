/*
 * keys: the caller (/auth/me) and the organization's API keys. A new key is
 * returned once, in the create response; only its SHA-256 is stored.
 * DELETE revokes (the row stays for audit, the key stops working at once).
 *
 * Roles (sql/010): an admin key sees and revokes every key of its
 * organization and creates either role; a member key sees and revokes
 * only itself and the keys it created, creates only member keys, and
 * those never outlive it (their expiry is capped at its own, and revoking
 * a member key revokes the keys it made, sql/010). Another's key is a 404
 * to a member, as a resource of another organization is.
 * Expiry: `expires_in_days` (1..3650) or `expires_at` (RFC 3339, in the
 * future, at most 10 years ahead), not both; an expired key is a 401.
 */
#include "api.h"
#include "auth.h"
#include "json.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define KEY_MAX_DAYS 3650

/* The caller's scope over keys: NULL (every key of the org) for an
 * admin, else its own key id. */
static const char *scope(const struct req *rq)
{
	return strcmp(rq->role, "admin") ? rq->key : NULL;
}

void h_me(struct req *rq)
{
	static const char q[] =
		"SELECT json_build_object('id', evr_id('usr', u.id), "
		"'email', u.email, 'name', u.name, "
		"'organization_id', evr_id('org', u.org_id), "
		"'organization_name', o.name, 'role', k.role, "
		"'roles', json_build_array(k.role), "
		"'api_key_id', evr_id('key', k.id), "
		"'api_key_expires_at', evr_ts(k.expires_at)) "
		"FROM users u JOIN organizations o ON o.id = u.org_id "
		"JOIN api_keys k ON k.id = $3 AND k.org_id = u.org_id "
		"WHERE u.id = $1 AND u.org_id = $2";
	const char *p[3] = {rq->user, rq->org, rq->key};
	api_send_json_row(rq, 200, "User not found", q, 3, p);
}

void h_keys_list(struct req *rq)
{
	static const char q[] =
		"WITH v AS (SELECT * FROM api_keys WHERE org_id = $1 "
		"AND revoked_at IS NULL AND ($4::uuid IS NULL OR id = $4 "
		"OR created_by = $4)) "
		"SELECT json_build_object('data', coalesce((SELECT json_agg("
		"api_key(k) ORDER BY k.created_at DESC, k.id DESC) FROM (SELECT * "
		"FROM v ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3) k), "
		"'[]'), 'total', (SELECT count(*) FROM v), "
		"'offset', $2::int, 'limit', $3::int)";
	struct apierr e;
	long offset, limit;
	char so[24], sl[24];
	const char *p[4] = {rq->org, so, sl, scope(rq)};

	if (req_page(rq, &offset, &limit, &e) != 0) {
		res_apierr(rq, &e);
		return;
	}
	snprintf(so, sizeof(so), "%ld", offset);
	snprintf(sl, sizeof(sl), "%ld", limit);
	api_send_json_row(rq, 200, "Not found", q, 4, p);
}

/* RFC 3339 ("2027-01-02T03:04:05Z", fraction and offset allowed) to
 * seconds since the epoch; -1 if malformed. */
static long long rfc3339(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
	long long t;
	char sign;

	if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi,
		   &sec, &n) != 6 ||
	    n != 19)
		return -1;
	s += n;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -1;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s;
		if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 ||
		    oh > 23 || om > 59)
			return -1;
		s += 1 + n;
		if (sign == '-') {
			oh = -oh;
			om = -om;
		}
	} else {
		return -1;
	}
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = (long long)timegm(&tm);
	if (tm.tm_mday != d) /* 31 February */
		return -1;
	return t - (long long)oh * 3600 - (long long)om * 60;
}

void h_keys_create(struct req *rq)
{
	/* $6 = the expiry as epoch seconds; $8 = the creating key, whose own
	 * expiry caps a member's keys ($9 true) */
	static const char q[] =
		"INSERT INTO api_keys (org_id, user_id, name, key_prefix, "
		"key_hash, expires_at, role, created_by) "
		"SELECT $1, $2, $3, $4, $5, CASE WHEN $9::bool AND c.expires_at "
		"IS NOT NULL THEN least(c.expires_at, coalesce(to_timestamp("
		"$6::float8), c.expires_at)) ELSE to_timestamp($6::float8) END, "
		"$10, $8 FROM api_keys c WHERE c.id = $8 "
		"RETURNING json_build_object('id', evr_id('key', id), "
		"'name', name, 'key', $7::text, 'key_prefix', key_prefix, "
		"'role', role, 'expires_at', evr_ts(expires_at), "
		"'created_at', evr_ts(created_at))";
	struct json_object *body = api_body(rq);
	struct apierr e;
	const char *name = "API key", *role = "member", *at = NULL;
	int64_t days = 0;
	int has_days, is_member = strcmp(rq->role, "admin") != 0;
	long long now = (long long)time(NULL), exp = 0;
	char key[AUTH_KEY_LEN + 1], hash[65], prefix[16], sexp[32];
	const char *p[10];

	if (!body)
		return;
	if (jx_get_str(body, "name", 64, &name, &e) < 0 ||
	    jx_get_str(body, "role", 16, &role, &e) < 0 ||
	    jx_get_str(body, "expires_at", 64, &at, &e) < 0 ||
	    (has_days = jx_get_int(body, "expires_in_days", 1, KEY_MAX_DAYS,
				   &days, &e)) < 0) {
		res_apierr(rq, &e);
		goto out;
	}
	if (!*name) {
		res_error(rq, 400, "validation_error",
			  "name: must not be empty");
		goto out;
	}
	if (strcmp(role, "admin") && strcmp(role, "member")) {
		res_error(rq, 400, "validation_error",
			  "role: must be \"admin\" or \"member\"");
		goto out;
	}
	if (at && has_days) {
		res_error(rq, 400, "validation_error",
			  "expires_at: give expires_at or expires_in_days, "
			  "not both");
		goto out;
	}
	if (at) {
		exp = rfc3339(at);
		if (exp < 0) {
			res_error(rq, 400, "validation_error",
				  "expires_at: not an RFC 3339 date-time "
				  "(2027-01-31T12:00:00Z)");
			goto out;
		}
		if (exp <= now || exp > now + KEY_MAX_DAYS * 86400LL) {
			res_error(rq, 400, "validation_error",
				  "expires_at: must be in the future and at "
				  "most %d days ahead",
				  KEY_MAX_DAYS);
			goto out;
		}
	} else if (has_days) {
		exp = now + days * 86400;
	}
	if (is_member && !strcmp(role, "admin")) {
		res_error(rq, 403, "forbidden",
			  "role: only a key with the role 'admin' can create "
			  "admin keys; this key's role is 'member'");
		goto out;
	}
	auth_new_key(key, hash);
	snprintf(prefix, sizeof(prefix), "%.12s...", key);
	snprintf(sexp, sizeof(sexp), "%lld", exp);
	p[0] = rq->org;
	p[1] = rq->user;
	p[2] = name;
	p[3] = prefix;
	p[4] = hash;
	p[5] = exp ? sexp : NULL;
	p[6] = key;
	p[7] = rq->key;
	p[8] = is_member ? "true" : "false";
	p[9] = role;
	api_send_json_row(rq, 201, "API key not found", q, 10, p);
out:
	json_object_put(body);
}

void h_keys_delete(struct req *rq)
{
	/* the notification makes every api thread drop its key cache and
	 * everruns-sse close the key's streams */
	static const char q[] =
		"WITH r AS (UPDATE api_keys SET revoked_at = now() WHERE id IN "
		"(SELECT evr_key_revocation($1, $2, $3::uuid)) RETURNING id) "
		"SELECT pg_notify('" AUTH_REVOKE_CHANNEL "', "
		"replace(id::text, '-', '')) FROM r";
	char id[33];
	const char *p[3] = {id, rq->org, scope(rq)};
	PGresult *res;

	if (api_id(rq, rq->cap[0], "key", "key_id", id) != 0)
		return;
	res = db_exec(rq->db, q, 3, p);
	if (!res) {
		api_db_error(rq);
		return;
	}
	if (PQntuples(res) >= 1)
		res_empty(rq, 204);
	else
		res_error(rq, 404, "not_found", "API key not found");
	PQclear(res);
}
