/*
 * common: helpers the resource handlers share (body parsing, JSON rows,
 * id parsing, tag and capability validation, references to other rows).
 */
#include "api.h"
#include "catalog.h"
#include "config.h"
#include "crypto.h"
#include "ids.h"
#include "json.h"
#include "keyring.h"
#include "log.h"
#include "utf8.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct json_object *api_body(struct req *rq)
{
	return api_body_bytes(rq, NULL);
}

/* Every string of a body ends up in a text or jsonb column, which refuse
 * \u0000 and lone surrogates: such a body is a 400 naming the field. */
struct json_object *api_body_bytes(struct req *rq, const char *bytes_field)
{
	struct apierr e;
	struct json_object *o;

	if (rq->body_len == 0)
		return json_object_new_object();
	o = jx_parse(rq->body, rq->body_len, &e);
	if (!o) {
		/* too deep: say where */
		if (strstr(e.msg, "nesting deeper"))
			jx_check_text(rq->body, rq->body_len, NULL,
				      JX_MAX_DEPTH, &e);
		res_apierr(rq, &e);
		return NULL;
	}
	if (jx_check_text(rq->body, rq->body_len, bytes_field, 0, &e) != 0) {
		json_object_put(o);
		res_apierr(rq, &e);
		return NULL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		res_error(rq, 400, "invalid_json",
			  "Request body must be a JSON object");
		return NULL;
	}
	return o;
}

void api_db_error(struct req *rq)
{
	if (rq->db->sqlstate[0] == '\0' || !strncmp(rq->db->sqlstate, "08", 2))
		res_error(rq, 503, "database_unavailable",
			  "The database is unavailable; try again shortly");
	else if (!strcmp(rq->db->sqlstate, "57014")) /* statement_timeout */
		res_error(rq, 503, "statement_timeout",
			  "The request's query ran past %ld ms "
			  "(api_statement_timeout_s) and was cancelled",
			  rq->db->timeout_ms);
	else
		res_internal(rq);
}

void api_send_json_row(struct req *rq, int status, const char *what,
		       const char *sql, int n, const char *const *params)
{
	PGresult *res = db_exec(rq->db, sql, n, params);
	const char *v;
	if (!res) {
		api_db_error(rq);
		return;
	}
	v = db_val(res, 0, 0);
	if (v)
		res_json(rq, status, v, strlen(v));
	else
		res_error(rq, 404, "not_found", "%s", what);
	PQclear(res);
}

int api_page_params(struct req *rq, struct api_page *pg)
{
	struct apierr e;
	long offset, limit;

	if (req_page(rq, &offset, &limit, &e) != 0) {
		res_apierr(rq, &e);
		return -1;
	}
	snprintf(pg->offset, sizeof(pg->offset), "%ld", offset);
	snprintf(pg->limit, sizeof(pg->limit), "%ld", limit);
	return 0;
}

void api_send_page(struct req *rq, const char *sql)
{
	struct api_page pg;
	const char *p[3] = {rq->org, pg.offset, pg.limit};

	if (api_page_params(rq, &pg) == 0)
		api_send_json_row(rq, 200, "Not found", sql, 3, p);
}

int api_id(struct req *rq, const char *value, const char *prefix,
	   const char *name, char hex[33])
{
	if (value && ids_parse(value, prefix, hex))
		return 0;
	res_error(rq, 400, "invalid_id",
		  "%s: malformed id (expected %s_ followed by 32 lowercase "
		  "hex digits)",
		  name, prefix);
	return -1;
}

void api_pg_text_array(struct buf *b, struct json_object *arr)
{
	size_t i, n = json_object_array_length(arr);
	for (i = 0; i < n; i++)
		db_array_add(b, json_object_get_string(
					json_object_array_get_idx(arr, i)));
	db_array_end(b);
}

int api_check_tags(struct json_object *tags, struct apierr *e)
{
	size_t i, n;
	char name[32];
	if (!json_object_is_type(tags, json_type_array))
		return apierr_field(e, "tags", "must be an array of strings");
	n = json_object_array_length(tags);
	if (n > 32)
		return apierr_field(e, "tags", "at most 32 tags");
	for (i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(tags, i);
		snprintf(name, sizeof(name), "tags[%zu]", i);
		if (jx_check_str(t, name, 64, e))
			return -1;
		if (json_object_get_string_len(t) == 0)
			return apierr_field(e, name, "must not be empty");
	}
	return 0;
}

int api_tag_filter(struct req *rq, struct buf *lit)
{
	const char *vals[REQ_MAX_QP];
	struct json_object *arr = json_object_new_array();
	struct apierr e;
	size_t i, n = req_query_all(rq, "tags", vals, REQ_MAX_QP);
	int ret = 0;

	for (i = 0; i < n; i++) {
		const char *s = vals[i];
		while (*s) {
			size_t len = strcspn(s, ",");
			if (len)
				json_object_array_add(
					arr, json_object_new_string_len(
						     s, (int)len));
			s += len;
			if (*s == ',')
				s++;
		}
	}
	if (api_check_tags(arr, &e)) {
		res_apierr(rq, &e);
		ret = -1;
	} else if (json_object_array_length(arr)) {
		api_pg_text_array(lit, arr);
		ret = 1;
	}
	json_object_put(arr);
	return ret;
}

/* caps[i] is the ref `mcp:<mcp_id>` of a registered MCP server (whether
 * it is one of the organization is api_mcp_check_refs's question): it
 * must be well formed and not repeat an earlier one; it takes no config.
 * Appends {"ref":"mcp:mcp_<hex>","config":{}} to out. */
static int mcp_ref(struct json_object *caps, size_t i, const char *ref,
		   const char *name, struct buf *out, struct apierr *e)
{
	char hex[33], id[48];
	size_t j;

	if (!ids_parse(ref + 4, "mcp", hex))
		return apierr_set(e, 400, "validation_error",
				  "%s.ref: mcp: must be followed by an MCP "
				  "server id (mcp_...)",
				  name);
	snprintf(id, sizeof(id), "mcp:mcp_%s", hex);
	for (j = 0; j < i; j++) {
		struct json_object *p = json_object_array_get_idx(caps, j);
		struct json_object *pr = p;
		if (json_object_is_type(p, json_type_object))
			json_object_object_get_ex(p, "ref", &pr);
		if (pr && json_object_is_type(pr, json_type_string) &&
		    !strcmp(json_object_get_string(pr), id))
			return apierr_set(e, 400, "validation_error",
					  "%s.ref: duplicate capability '%s'",
					  name, id);
	}
	if (i)
		buf_addch(out, ',');
	buf_adds(out, "{\"ref\":");
	buf_add_json_str(out, id, strlen(id));
	buf_adds(out, ",\"config\":{}}");
	return 0;
}

int api_check_capabilities(struct json_object *caps, const char *field,
			   struct buf *out, struct apierr *e)
{
	size_t i, j, n;
	char name[64];

	if (!json_object_is_type(caps, json_type_array))
		return apierr_field(e, field,
				    "must be an array of {ref, config}");
	n = json_object_array_length(caps);
	if (n > 64)
		return apierr_field(e, field, "at most 64 capabilities");
	buf_addch(out, '[');
	for (i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(caps, i);
		struct json_object *ref = NULL, *cfg = NULL;
		const struct catalog_cap *cap;

		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		/* the older form: a plain string ref */
		if (json_object_is_type(c, json_type_string)) {
			ref = c;
		} else if (json_object_is_type(c, json_type_object)) {
			json_object_object_get_ex(c, "ref", &ref);
			json_object_object_get_ex(c, "config", &cfg);
		} else {
			return apierr_field(e, name,
					    "must be an object {ref, config}");
		}
		if (!ref || !json_object_is_type(ref, json_type_string))
			return apierr_set(e, 400, "validation_error",
					  "%s.ref: must be a string", name);
		cap = catalog_find(json_object_get_string(ref));
		if (!cap && !strncmp(json_object_get_string(ref), "mcp:", 4)) {
			if (mcp_ref(caps, i, json_object_get_string(ref), name,
				    out, e))
				return -1;
			continue;
		}
		if (!cap)
			return apierr_set(
				e, 400, "validation_error",
				"%s.ref: unknown capability '%.*s'", name,
				(int)utf8_cut(
					json_object_get_string(ref),
					strlen(json_object_get_string(ref)),
					64),
				json_object_get_string(ref));
		for (j = 0; j < i; j++) {
			struct json_object *p =
				json_object_array_get_idx(caps, j);
			struct json_object *pr = p;
			if (json_object_is_type(p, json_type_object))
				json_object_object_get_ex(p, "ref", &pr);
			if (pr && json_object_is_type(pr, json_type_string) &&
			    !strcmp(json_object_get_string(pr), cap->id))
				return apierr_set(
					e, 400, "validation_error",
					"%s.ref: duplicate capability '%s'",
					name, cap->id);
		}
		if (cfg && !json_object_is_type(cfg, json_type_object))
			return apierr_set(e, 400, "validation_error",
					  "%s.config: must be an object", name);
		if (cfg && catalog_check_config(cap, cfg, name, e) != 0)
			return -1;
		if (i)
			buf_addch(out, ',');
		buf_adds(out, "{\"ref\":");
		buf_add_json_str(out, cap->id, strlen(cap->id));
		buf_adds(out, ",\"config\":");
		if (cfg)
			jx_append(out, cfg);
		else
			buf_adds(out, "{}");
		buf_addch(out, '}');
	}
	buf_addch(out, ']');
	return 0;
}

int api_ref(struct req *rq, const char *value, const char *prefix,
	    const char *field, const char *table, char hex[33])
{
	/* table names come from handlers (literals), never from input */
	static const char q_models[] =
		"SELECT 1 FROM llm_models WHERE id = $1 AND org_id = $2";
	static const char q_agents[] =
		"SELECT 1 FROM agents WHERE id = $1 AND org_id = $2 "
		"AND status = 'active'";
	static const char q_harnesses[] =
		"SELECT 1 FROM harnesses WHERE id = $1 AND org_id = $2 "
		"AND status = 'active'";
	static const char q_providers[] =
		"SELECT 1 FROM llm_providers WHERE id = $1 AND org_id = $2";
	const char *sql = !strcmp(table, "llm_models")      ? q_models
			  : !strcmp(table, "agents")        ? q_agents
			  : !strcmp(table, "harnesses")     ? q_harnesses
			  : !strcmp(table, "llm_providers") ? q_providers
							    : NULL;
	const char *p[2];
	PGresult *res;
	int found;

	if (!sql)
		abort();
	if (!value || !ids_parse(value, prefix, hex)) {
		res_error(rq, 404, "not_found", "%s: not found", field);
		return -1;
	}
	p[0] = hex;
	p[1] = rq->org;
	res = db_exec(rq->db, sql, 2, p);
	if (!res) {
		api_db_error(rq);
		return -1;
	}
	found = PQntuples(res) > 0;
	PQclear(res);
	if (!found) {
		res_error(rq, 404, "not_found", "%s: not found", field);
		return -1;
	}
	return 0;
}

/* One ring for the process (re-read when rotate-server-key replaces
 * the file), each thread gets a copy of the current key. */
static struct keyring server_keys;
static pthread_mutex_t server_keys_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread unsigned char server_key[CRYPTO_KEY_LEN];

const unsigned char *api_server_key(void)
{
	int ok;

	pthread_mutex_lock(&server_keys_lock);
	if (!server_keys.path) {
		ok = keyring_init(&server_keys, config_server_key_file()) == 0;
	} else {
		ok = keyring_refresh(&server_keys) == 0;
	}
	if (ok)
		memcpy(server_key, server_keys.cur, CRYPTO_KEY_LEN);
	pthread_mutex_unlock(&server_keys_lock);
	return ok ? server_key : NULL;
}

void api_delete(struct req *rq, const char *sql, const char *prefix,
		const char *name, const char *in_use, const char *not_found)
{
	char hex[33];
	const char *p[2] = {hex, rq->org};
	PGresult *res;

	if (api_id(rq, rq->cap[0], prefix, name, hex))
		return;
	res = db_exec(rq->db, sql, 2, p);
	if (!res) {
		/* still referenced by a row without ON DELETE */
		if (db_is(rq->db, DB_FK_VIOLATION))
			res_error(rq, 409, "conflict", "%s", in_use);
		else
			api_db_error(rq);
		return;
	}
	if (strcmp(PQcmdTuples(res), "0"))
		res_empty(rq, 204);
	else
		res_error(rq, 404, "not_found", "%s", not_found);
	PQclear(res);
}

int api_body_read(void *arg, char *p, int n)
{
	struct req *rq = arg;
	size_t left = rq->body_len - rq->body_got;
	int got;
	if (!rq->body_in || !left)
		return 0;
	if ((size_t)n > left)
		n = (int)left;
	got = rq->body_read(rq->body_in, p, n);
	if (got <= 0)
		return got < 0 ? -1 : 0;
	rq->body_got += (size_t)got;
	return got;
}
