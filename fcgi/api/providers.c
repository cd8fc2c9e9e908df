/*
 * providers: GET/POST /llm-providers, GET/PATCH/DELETE /llm-providers/{id},
 * GET/POST /llm-providers/{id}/models.
 *
 * The api_key is write-only: it is sealed with the server key
 * (crypto_seal, AES-256-GCM) before it reaches SQL, and the JSON only
 * says whether one is set. DELETE removes the provider and, by the
 * foreign key's cascade, its models.
 *
 * The stored key follows its address: a PATCH that changes base_url or
 * provider_type of a provider with a key must give api_key too (a new
 * key, or null for none), else it is a 400 and nothing changes. The key
 * is sent as a header value, so control characters (C0, DEL) in it are
 * a 400.
 */
#include "api.h"
#include "crypto.h"
#include "json.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define NOT_FOUND "LLM provider not found"
#define NAME_MAX_LEN 64
#define URL_MAX_LEN 2048
#define API_KEY_MAX_LEN 4096

/* A provider body, validated. Strings borrow from the body (NULL = not
 * given); has_url / has_key with a NULL value is an explicit null
 * (clear it). key_enc holds the sealed key once seal_key() ran. */
struct provider_input {
	const char *name, *type, *base_url, *api_key, *status;
	int has_url, has_key;
	struct buf key_enc;
};

static int check_enum(const char *v, const char *field,
		      const char *const *allowed, const char *list,
		      struct apierr *e)
{
	for (; *allowed; allowed++)
		if (!strcmp(v, *allowed))
			return 0;
	return apierr_set(e, 400, "validation_error", "%s: must be one of %s",
			  field, list);
}

/* Only absolute http(s) URLs: the runner connects to this address, and
 * other schemes (file:, gopher:) have no business there. */
static int check_url(const char *u, struct apierr *e)
{
	const char *host;
	size_t i;

	if (!strncasecmp(u, "http://", 7))
		host = u + 7;
	else if (!strncasecmp(u, "https://", 8))
		host = u + 8;
	else
		return apierr_field(e, "base_url",
				    "must start with http:// or https://");
	if (!*host || *host == '/')
		return apierr_field(e, "base_url", "must name a host");
	for (i = 0; u[i]; i++)
		if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
			return apierr_field(e, "base_url",
					    "must not contain spaces or "
					    "control characters");
	return 0;
}

/* C0 controls (CR, LF, NUL ...) and DEL: never in a header value. */
static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int check_body(struct json_object *body, int create,
		      struct provider_input *in, struct apierr *e)
{
	static const char *const types[] = {"openai_completions", "anthropic",
					    "llmsim", NULL};
	static const char *const statuses[] = {"active", "disabled", NULL};

	if (jx_get_str(body, "name", NAME_MAX_LEN, &in->name, e) < 0)
		return -1;
	if (in->name && !*in->name)
		return apierr_field(e, "name", "must not be empty");
	if (!in->name && create)
		return apierr_field(e, "name", "is required");
	if (jx_get_str(body, "provider_type", 0, &in->type, e) < 0)
		return -1;
	if (!in->type && create)
		return apierr_field(e, "provider_type", "is required");
	if (in->type && check_enum(in->type, "provider_type", types,
				   "openai_completions, anthropic, llmsim", e))
		return -1;
	if (jx_get_str(body, "base_url", URL_MAX_LEN, &in->base_url, e) < 0)
		return -1;
	if (in->base_url && check_url(in->base_url, e))
		return -1;
	in->has_url = in->base_url || api_is_null(body, "base_url");
	if (jx_get_str(body, "api_key", API_KEY_MAX_LEN, &in->api_key, e) < 0)
		return -1;
	if (in->api_key && !*in->api_key)
		return apierr_field(e, "api_key",
				    "must not be empty (null removes the key)");
	if (in->api_key && has_control(in->api_key))
		return apierr_field(e, "api_key",
				    "must not contain control characters (it "
				    "is sent as an HTTP header value)");
	in->has_key = in->api_key || api_is_null(body, "api_key");
	if (create)
		return 0;
	if (jx_get_str(body, "status", 0, &in->status, e) < 0)
		return -1;
	if (in->status &&
	    check_enum(in->status, "status", statuses, "active, disabled", e))
		return -1;
	return 0;
}

/* Seal the given api_key into in->key_enc. 0, or -1 with a 500 sent. */
static int seal_key(struct req *rq, struct provider_input *in)
{
	const unsigned char *key;

	if (!in->api_key)
		return 0;
	key = api_server_key();
	if (!key ||
	    crypto_seal(key, in->api_key, strlen(in->api_key), &in->key_enc)) {
		res_internal(rq);
		return -1;
	}
	return 0;
}

/* Body parsing shared by create and update. 0, or -1 with the answer sent. */
static int parse_input(struct req *rq, struct json_object *body, int create,
		       struct provider_input *in)
{
	struct apierr e;

	if (check_body(body, create, in, &e)) {
		res_apierr(rq, &e);
		return -1;
	}
	return seal_key(rq, in);
}

void h_providers_list(struct req *rq)
{
	static const char q[] = "WITH f AS (SELECT p AS r FROM llm_providers p "
				"  WHERE p.org_id = $1), " API_PAGE_SQL(
					"api_provider", "$2", "$3");

	api_send_page(rq, q);
}

void h_providers_create(struct req *rq)
{
	static const char q[] =
		"INSERT INTO llm_providers AS p (org_id, name, provider_type, "
		"  base_url, api_key_enc) VALUES ($1, $2, $3, $4, $5) "
		"RETURNING api_provider(p)";
	struct json_object *body = api_body(rq);
	struct provider_input in;
	const char *p[5];

	memset(&in, 0, sizeof(in));
	buf_init(&in.key_enc, 0);
	if (!body || parse_input(rq, body, 1, &in))
		goto out;
	p[0] = rq->org;
	p[1] = in.name;
	p[2] = in.type;
	p[3] = in.base_url;
	p[4] = in.api_key ? in.key_enc.data : NULL;
	api_send_json_row(rq, 201, NOT_FOUND, q, 5, p);
out:
	buf_release(&in.key_enc);
	json_object_put(body);
}

void h_providers_get(struct req *rq)
{
	static const char q[] = "SELECT api_provider(p) FROM llm_providers p "
				"WHERE p.id = $1 AND p.org_id = $2";
	char hex[33];
	const char *p[2];

	if (api_id(rq, rq->cap[0], "prv", "id", hex))
		return;
	p[0] = hex;
	p[1] = rq->org;
	api_send_json_row(rq, 200, NOT_FOUND, q, 2, p);
}

void h_providers_update(struct req *rq)
{
	/* one statement under the row's lock: (the provider's JSON or NULL,
	 * whether the change needs the key); no row: not found */
	static const char q[] =
		"WITH cur AS (SELECT p.id, p.api_key_enc IS NOT NULL "
		"  AND NOT $7::bool AND (($5::bool AND p.base_url IS DISTINCT "
		"  FROM $6::text) OR p.provider_type <> coalesce($4::text, "
		"  p.provider_type)) AS needs_key FROM llm_providers p "
		"  WHERE p.id = $1 AND p.org_id = $2 FOR UPDATE), "
		"upd AS (UPDATE llm_providers p SET "
		"  name = coalesce($3::text, p.name), "
		"  provider_type = coalesce($4::text, p.provider_type), "
		"  base_url = CASE WHEN $5::bool THEN $6::text "
		"    ELSE p.base_url END, "
		"  api_key_enc = CASE WHEN $7::bool THEN $8::text "
		"    ELSE p.api_key_enc END, "
		"  status = coalesce($9::text, p.status), updated_at = now() "
		"  FROM cur WHERE p.id = cur.id AND NOT cur.needs_key "
		"  RETURNING api_provider(p) AS j) "
		"SELECT (SELECT j FROM upd), needs_key FROM cur";
	struct json_object *body = NULL;
	struct provider_input in;
	char hex[33];
	const char *p[9], *v;
	PGresult *res;

	memset(&in, 0, sizeof(in));
	buf_init(&in.key_enc, 0);
	if (api_id(rq, rq->cap[0], "prv", "id", hex))
		goto out;
	body = api_body(rq);
	if (!body || parse_input(rq, body, 0, &in))
		goto out;
	p[0] = hex;
	p[1] = rq->org;
	p[2] = in.name;
	p[3] = in.type;
	p[4] = in.has_url ? "true" : "false";
	p[5] = in.base_url;
	p[6] = in.has_key ? "true" : "false";
	p[7] = in.api_key ? in.key_enc.data : NULL;
	p[8] = in.status;
	if (!(res = db_exec(rq->db, q, 9, p))) {
		api_db_error(rq);
		goto out;
	}
	if (PQntuples(res) != 1)
		res_error(rq, 404, "not_found", NOT_FOUND);
	else if ((v = db_val(res, 0, 0)) != NULL)
		res_json(rq, 200, v, strlen(v));
	else
		res_error(rq, 400, "validation_error",
			  "api_key: is required when base_url or "
			  "provider_type changes (the stored key is never "
			  "sent to another address): give the key again, or "
			  "null for none");
	PQclear(res);
out:
	buf_release(&in.key_enc);
	json_object_put(body);
}

void h_providers_delete(struct req *rq)
{
	static const char q[] =
		"DELETE FROM llm_providers WHERE id = $1 AND org_id = $2";
	api_delete(rq, q, "prv", "provider_id",
		   "A model of this provider is still in use", NOT_FOUND);
}

void h_provider_models_list(struct req *rq)
{
	char hex[33];

	if (api_id(rq, rq->cap[0], "prv", "id", hex))
		return;
	api_models_page(rq, hex, 1);
}

void h_provider_models_create(struct req *rq)
{
	/* the defaults repeat the column defaults: a NULL parameter would
	 * not fall back to them */
	static const char q[] =
		"INSERT INTO llm_models AS m (org_id, provider_id, model_id, "
		"  display_name, capabilities, context_tokens, enabled) "
		"SELECT p.org_id, p.id, $3::text, coalesce($4::text, $3::text), "
		"  coalesce($5::text[], '{chat,tools}'), "
		"  coalesce($6::int, 128000), coalesce($7::bool, true) "
		"FROM llm_providers p WHERE p.id = $1 AND p.org_id = $2 "
		"RETURNING api_model(m)";
	api_model_write(rq, q, "prv", 1, 201);
}
