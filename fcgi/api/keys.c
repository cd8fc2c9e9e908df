/*
 * keys: the caller (/auth/me) and the organization's API keys. A new key is
 * returned once, in the create response; only its SHA-256 is stored.
 * DELETE revokes (the row stays for audit, the key stops working at once).
 */
#include "api.h"
#include "auth.h"
#include "json.h"

#include <stdio.h>
#include <string.h>

void h_me(struct req *rq)
{
	static const char q[] =
		"SELECT json_build_object('id', evr_id('usr', u.id), "
		"'email', u.email, 'name', u.name, "
		"'organization_id', evr_id('org', u.org_id), "
		"'organization_name', o.name, 'roles', json_build_array('admin'), "
		"'api_key_id', evr_id('key', $3::uuid)) "
		"FROM users u JOIN organizations o ON o.id = u.org_id "
		"WHERE u.id = $1 AND u.org_id = $2";
	const char *p[3] = {rq->user, rq->org, rq->key};
	api_send_json_row(rq, 200, "User not found", q, 3, p);
}

void h_keys_list(struct req *rq)
{
	static const char q[] =
		"SELECT json_build_object('data', coalesce((SELECT json_agg("
		"api_key(k) ORDER BY k.created_at DESC, k.id DESC) FROM (SELECT * "
		"FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL "
		"ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3) k), '[]'), "
		"'total', (SELECT count(*) FROM api_keys WHERE org_id = $1 "
		"AND revoked_at IS NULL), 'offset', $2::int, 'limit', $3::int)";

	api_send_page(rq, q);
}

void h_keys_create(struct req *rq)
{
	static const char q[] =
		"INSERT INTO api_keys (org_id, user_id, name, key_prefix, "
		"key_hash, expires_at) VALUES ($1, $2, $3, $4, $5, "
		"CASE WHEN $6::int IS NULL THEN NULL "
		"ELSE now() + make_interval(days => $6::int) END) "
		"RETURNING json_build_object('id', evr_id('key', id), "
		"'name', name, 'key', $7::text, 'key_prefix', key_prefix, "
		"'expires_at', evr_ts(expires_at), "
		"'created_at', evr_ts(created_at))";
	struct json_object *body = api_body(rq);
	struct apierr e;
	const char *name = "API key";
	int64_t days = 0;
	int has_days;
	char key[AUTH_KEY_LEN + 1], hash[65], prefix[16], sdays[24];
	const char *p[7];

	if (!body)
		return;
	if (jx_get_str(body, "name", 64, &name, &e) < 0 ||
	    (has_days = jx_get_int(body, "expires_in_days", 1, 3650, &days,
				   &e)) < 0) {
		res_apierr(rq, &e);
		goto out;
	}
	if (!*name) {
		res_error(rq, 400, "validation_error", "name: must not be empty");
		goto out;
	}
	auth_new_key(key, hash);
	snprintf(prefix, sizeof(prefix), "%.12s...", key);
	snprintf(sdays, sizeof(sdays), "%lld", (long long)days);
	p[0] = rq->org;
	p[1] = rq->user;
	p[2] = name;
	p[3] = prefix;
	p[4] = hash;
	p[5] = has_days ? sdays : NULL;
	p[6] = key;
	api_send_json_row(rq, 201, "Not found", q, 7, p);
out:
	json_object_put(body);
}

void h_keys_delete(struct req *rq)
{
	/* the notification makes every api thread drop its key cache */
	static const char q[] =
		"WITH r AS (UPDATE api_keys SET revoked_at = now() WHERE id = $1 "
		"AND org_id = $2 AND revoked_at IS NULL RETURNING id) "
		"SELECT pg_notify('" AUTH_REVOKE_CHANNEL "', '') FROM r";
	char id[33];
	const char *p[2] = {id, rq->org};
	PGresult *res;

	if (api_id(rq, rq->cap[0], "key", "key_id", id) != 0)
		return;
	res = db_exec(rq->db, q, 2, p);
	if (!res) {
		api_db_error(rq);
		return;
	}
	if (PQntuples(res) == 1)
		res_empty(rq, 204);
	else
		res_error(rq, 404, "not_found", "API key not found");
	PQclear(res);
}
