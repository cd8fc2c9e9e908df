/*
 * mcp_servers: GET/POST /mcp-servers, GET/PATCH/DELETE /mcp-servers/{id}
 * (the upstream McpServer resource), and the checks of the two ways an
 * agent, harness or session names MCP servers: the capability ref
 * `mcp:<mcp_id>` (api_mcp_check_refs) and the inline `mcpServers` map
 * (api_mcp_check_inline).
 *
 * As for LLM providers (providers.c), the api_key is write-only and
 * sealed with the server key before it reaches SQL; the headers are
 * sealed too (one sealed JSON object) and shown as "********". Both are
 * sent as HTTP header values by the runner, so a control character in a
 * header name or value, or in the key, is a 400, and so is a header the
 * transport sets itself. A url whose host is a numeric address the
 * address guard refuses (and guard_allow_mcp does not allow) is a 400 at
 * once; host names are judged by the runner on every connection. The
 * stored secrets follow their address: a PATCH that changes the url of a server
 * with a key or headers must give them again (or null). DELETE archives
 * (upstream's lifecycle): the row stays, the name is free again. At most
 * org_max_mcp_servers servers that are not archived per organization.
 */
#include "api.h"
#include "config.h"
#include "crypto.h"
#include "guard.h"
#include "ids.h"
#include "json.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NOT_FOUND "MCP server not found"
#define NAME_MAX_LEN 64
#define DESC_MAX_LEN 512
#define URL_MAX_LEN 2048
#define SECRET_MAX_LEN 4096
#define HEADER_NAME_MAX 128
#define HEADERS_MAX 32
#define INLINE_MAX 16

/* A body, validated. Strings borrow from the body (NULL = not given);
 * has_* with a NULL value is an explicit null. */
struct mcp_input {
	const char *name, *description, *url, *api_key, *status;
	struct json_object *headers;
	int has_desc, has_key, has_headers;
	struct buf key_enc, headers_enc, header_names;
};

static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* The guard's judgement at create, on what can be judged without a
 * lookup: a host that is a numeric address (127.0.0.1, [::1]) refused by
 * the address guard and not allowed by guard_allow_mcp is a 400. A host
 * name is judged by the runner on each connection (it may resolve
 * anywhere, and differently later). host: after the scheme. */
static int check_guard(const char *host, const char *field, struct apierr *e)
{
	char h[256];
	const char *end = host + strcspn(host, "/?#"), *at, *p;
	const char *why;
	size_t n;
	int port = 0;

	/* userinfo@ */
	for (at = NULL, p = host; p < end; p++)
		if (*p == '@')
			at = p;
	if (at)
		host = at + 1;
	if (*host == '[') {
		p = memchr(host, ']', (size_t)(end - host));
		if (!p)
			return 0; /* curl refuses it; the runner says so */
		n = (size_t)(p - host - 1);
		host++;
		p++;
	} else {
		p = memchr(host, ':', (size_t)(end - host));
		if (!p)
			p = end;
		n = (size_t)(p - host);
	}
	if (*p == ':')
		port = atoi(p + 1);
	if (n == 0 || n >= sizeof(h))
		return 0;
	memcpy(h, host, n);
	h[n] = '\0';
	why = guard_classify(h);
	if (!why || !strcmp(why, "not a numeric address") ||
	    guard_allowed_at(config_str("guard_allow_mcp"), h, h, port))
		return 0;
	return apierr_set(e, 400, "validation_error",
			  "%s: %s is %s: the address guard refuses it (an "
			  "operator can allow it with guard_allow_mcp)",
			  field, h, why);
}

int api_mcp_check_url(const char *u, const char *field, struct apierr *e)
{
	const char *host;

	if (strlen(u) > URL_MAX_LEN)
		return apierr_set(e, 400, "validation_error",
				  "%s: longer than %d bytes", field,
				  URL_MAX_LEN);
	if (!strncasecmp(u, "http://", 7))
		host = u + 7;
	else if (!strncasecmp(u, "https://", 8))
		host = u + 8;
	else
		return apierr_set(e, 400, "validation_error",
				  "%s: must start with http:// or https://",
				  field);
	if (!*host || *host == '/' || *host == '?' || *host == '#')
		return apierr_set(e, 400, "validation_error",
				  "%s: must name a host", field);
	for (; *u; u++)
		if ((unsigned char)*u <= ' ' || *u == 0x7f)
			return apierr_set(e, 400, "validation_error",
					  "%s: must not contain spaces or "
					  "control characters",
					  field);
	return check_guard(host, field, e);
}

/* RFC 9110 token characters. */
static int is_token(const char *s, size_t n)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	size_t i;

	if (!n)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || (c && strchr(extra, c))))
			return 0;
	}
	return 1;
}

int api_mcp_check_headers(struct json_object *h, const char *field,
			  struct apierr *e)
{
	/* set by the transport (or by curl) for every request */
	static const char *const reserved[] = {"host",
					       "content-length",
					       "content-type",
					       "accept",
					       "transfer-encoding",
					       "connection",
					       "mcp-session-id",
					       "mcp-protocol-version",
					       "expect",
					       "te",
					       "upgrade",
					       NULL};
	struct json_object_iterator it, end;
	int n = 0;

	if (!json_object_is_type(h, json_type_object))
		return apierr_set(e, 400, "validation_error",
				  "%s: must be an object of strings", field);
	it = json_object_iter_begin(h);
	end = json_object_iter_end(h);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *k = json_object_iter_peek_name(&it);
		struct json_object *v = json_object_iter_peek_value(&it);
		const char *const *r;
		size_t kl = strlen(k);

		if (++n > HEADERS_MAX)
			return apierr_set(e, 400, "validation_error",
					  "%s: at most %d headers", field,
					  HEADERS_MAX);
		/* strlen stops at an embedded NUL: the key is not a token */
		if (kl > HEADER_NAME_MAX || !is_token(k, kl) || has_control(k))
			return apierr_set(
				e, 400, "validation_error",
				"%s: '%.*s' is not a header name "
				"(letters, digits and !#$%%&'*+-.^_`|~, "
				"at most %d bytes)",
				field, (int)utf8_cut(k, kl, 64), k,
				HEADER_NAME_MAX);
		for (r = reserved; *r; r++)
			if (!strcasecmp(k, *r))
				return apierr_set(e, 400, "validation_error",
						  "%s: %s is set by the MCP "
						  "transport itself",
						  field, k);
		if (!json_object_is_type(v, json_type_string))
			return apierr_set(e, 400, "validation_error",
					  "%s.%s: must be a string", field, k);
		if ((size_t)json_object_get_string_len(v) > SECRET_MAX_LEN)
			return apierr_set(e, 400, "validation_error",
					  "%s.%s: longer than %d bytes", field,
					  k, SECRET_MAX_LEN);
		if ((size_t)json_object_get_string_len(v) !=
			    strlen(json_object_get_string(v)) ||
		    has_control(json_object_get_string(v)))
			return apierr_set(e, 400, "validation_error",
					  "%s.%s: must not contain control "
					  "characters (CR, LF, NUL ...): it is "
					  "sent as an HTTP header value",
					  field, k);
	}
	return 0;
}

/* A server name (registered or inline): 1..64 bytes, no control
 * characters; the model sees it, made a tool-name prefix. */
static int check_name(const char *s, const char *field, struct apierr *e)
{
	if (!*s || strlen(s) > NAME_MAX_LEN)
		return apierr_set(e, 400, "validation_error",
				  "%s: must be 1 to %d bytes", field,
				  NAME_MAX_LEN);
	if (has_control(s))
		return apierr_set(e, 400, "validation_error",
				  "%s: must not contain control characters",
				  field);
	return 0;
}

int api_mcp_check_inline(struct json_object *map, struct buf *out,
			 struct apierr *e)
{
	struct json_object_iterator it, end;
	char field[160];
	int n = 0;

	if (!json_object_is_type(map, json_type_object))
		return apierr_field(e, "mcpServers",
				    "must be an object {name: {url, headers}}");
	buf_addch(out, '{');
	it = json_object_iter_begin(map);
	end = json_object_iter_end(map);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *k = json_object_iter_peek_name(&it);
		struct json_object *v = json_object_iter_peek_value(&it);
		struct json_object *h = NULL;
		const char *url = NULL;

		if (++n > INLINE_MAX)
			return apierr_set(e, 400, "validation_error",
					  "mcpServers: at most %d servers",
					  INLINE_MAX);
		snprintf(field, sizeof(field), "mcpServers.%.*s",
			 (int)utf8_cut(k, strlen(k), 64), k);
		if (check_name(k, "mcpServers: a server name", e))
			return -1;
		if (!json_object_is_type(v, json_type_object))
			return apierr_set(
				e, 400, "validation_error",
				"%s: must be an object {url, headers}", field);
		if (jx_get_str(v, "url", URL_MAX_LEN, &url, e) < 0)
			return -1;
		if (!url)
			return apierr_set(e, 400, "validation_error",
					  "%s.url: is required", field);
		strncat(field, ".url", sizeof(field) - strlen(field) - 1);
		if (api_mcp_check_url(url, field, e))
			return -1;
		field[strlen(field) - 4] = '\0';
		if (json_object_object_get_ex(v, "headers", &h) && h) {
			strncat(field, ".headers",
				sizeof(field) - strlen(field) - 1);
			if (api_mcp_check_headers(h, field, e))
				return -1;
		}
		if (n > 1)
			buf_addch(out, ',');
		buf_add_json_str(out, k, strlen(k));
		buf_adds(out, ":{\"url\":");
		buf_add_json_str(out, url, strlen(url));
		if (h) {
			buf_adds(out, ",\"headers\":");
			jx_append(out, h);
		}
		buf_addch(out, '}');
	}
	buf_addch(out, '}');
	return 0;
}

int api_mcp_check_refs(struct req *rq, const struct buf *caps)
{
	static const char q[] =
		"SELECT r FROM unnest($2::text[]) AS r WHERE NOT EXISTS ("
		"  SELECT 1 FROM mcp_servers m WHERE m.org_id = $1 "
		"  AND m.status = 'active' "
		"  AND m.id = regexp_replace(r, '^mcp_', '')::uuid) LIMIT 1";
	struct json_object *arr;
	struct buf lit = BUF_INIT;
	struct apierr e;
	const char *p[2];
	PGresult *res;
	size_t i, n = 0;
	int ret = 0;

	if (!caps->len || !strstr(caps->data, "\"mcp:"))
		return 0;
	arr = jx_parse_depth(caps->data, caps->len, 2 * JX_MAX_DEPTH, &e);
	buf_init(&lit, 64);
	buf_addch(&lit, '{');
	for (i = 0; arr && i < json_object_array_length(arr); i++) {
		const char *ref =
			jx_gets(json_object_array_get_idx(arr, i), "ref");
		if (!ref || strncmp(ref, "mcp:", 4))
			continue;
		if (n++)
			buf_addch(&lit, ',');
		buf_adds(&lit, ref + 4); /* mcp_<hex>: checked already */
	}
	buf_addch(&lit, '}');
	json_object_put(arr);
	if (!n)
		goto out;
	p[0] = rq->org;
	p[1] = lit.data;
	if (!(res = db_exec(rq->db, q, 2, p))) {
		api_db_error(rq);
		ret = -1;
		goto out;
	}
	if (PQntuples(res)) {
		res_error(rq, 400, "validation_error",
			  "capabilities: mcp:%s is not an active MCP server "
			  "of this organization",
			  PQgetvalue(res, 0, 0));
		ret = -1;
	}
	PQclear(res);
out:
	buf_release(&lit);
	return ret;
}

/* --- the resource ---------------------------------------------------------*/

static int check_body(struct json_object *body, int create,
		      struct mcp_input *in, struct apierr *e)
{
	const char *v = NULL;

	if (jx_get_str(body, "name", 0, &in->name, e) < 0)
		return -1;
	if (in->name && check_name(in->name, "name", e))
		return -1;
	if (!in->name && create)
		return apierr_field(e, "name", "is required");
	if (jx_get_str(body, "description", DESC_MAX_LEN, &in->description, e) <
	    0)
		return -1;
	in->has_desc = in->description || api_is_null(body, "description");
	if (jx_get_str(body, "url", 0, &in->url, e) < 0)
		return -1;
	if (!in->url && create)
		return apierr_field(e, "url", "is required");
	if (in->url && api_mcp_check_url(in->url, "url", e))
		return -1;
	if (jx_get_str(body, "transport_type", 0, &v, e) < 0)
		return -1;
	if (v && strcmp(v, "http"))
		return apierr_field(e, "transport_type",
				    "must be http (Streamable HTTP)");
	v = NULL;
	if (jx_get_str(body, "auth_mode", 0, &v, e) < 0)
		return -1;
	if (v && strcmp(v, "none") && strcmp(v, "api_key"))
		return apierr_field(e, "auth_mode",
				    "must be none or api_key (o_auth is not "
				    "supported)");
	if (jx_get_str(body, "api_key", SECRET_MAX_LEN, &in->api_key, e) < 0)
		return -1;
	if (in->api_key && !*in->api_key)
		return apierr_field(e, "api_key",
				    "must not be empty (null removes the key)");
	if (in->api_key &&
	    (has_control(in->api_key) ||
	     strlen(in->api_key) !=
		     (size_t)json_object_get_string_len(
			     json_object_object_get(body, "api_key"))))
		return apierr_field(e, "api_key",
				    "must not contain control characters (it "
				    "is sent as an HTTP header value)");
	in->has_key = in->api_key || api_is_null(body, "api_key");
	if (json_object_object_get_ex(body, "headers", &in->headers)) {
		in->has_headers = 1;
		if (in->headers &&
		    api_mcp_check_headers(in->headers, "headers", e))
			return -1;
	}
	if (create)
		return 0;
	if (jx_get_str(body, "status", 0, &in->status, e) < 0)
		return -1;
	if (in->status && strcmp(in->status, "active") &&
	    strcmp(in->status, "disabled"))
		return apierr_field(e, "status",
				    "must be active or disabled (DELETE "
				    "archives)");
	return 0;
}

/* Seal the key and the headers; the header names as a text[] literal.
 * 0, or -1 with a 500 sent. */
static int seal(struct req *rq, struct mcp_input *in)
{
	const unsigned char *key = NULL;
	struct json_object_iterator it, end;
	const char *js;
	int n = 0;

	if (in->api_key ||
	    (in->headers && json_object_object_length(in->headers))) {
		key = api_server_key();
		if (!key)
			goto fail;
	}
	if (in->api_key &&
	    crypto_seal(key, in->api_key, strlen(in->api_key), &in->key_enc))
		goto fail;
	buf_addch(&in->header_names, '{');
	if (in->headers && json_object_object_length(in->headers)) {
		js = json_object_to_json_string_ext(in->headers,
						    JSON_C_TO_STRING_PLAIN);
		if (crypto_seal(key, js, strlen(js), &in->headers_enc))
			goto fail;
		it = json_object_iter_begin(in->headers);
		end = json_object_iter_end(in->headers);
		for (; !json_object_iter_equal(&it, &end);
		     json_object_iter_next(&it)) {
			if (n++)
				buf_addch(&in->header_names, ',');
			/* a token: no quote, comma, brace or blank */
			buf_addch(&in->header_names, '"');
			buf_adds(&in->header_names,
				 json_object_iter_peek_name(&it));
			buf_addch(&in->header_names, '"');
		}
	}
	buf_addch(&in->header_names, '}');
	return 0;
fail:
	res_internal(rq);
	return -1;
}

static void input_init(struct mcp_input *in)
{
	memset(in, 0, sizeof(*in));
	buf_init(&in->key_enc, 0);
	buf_init(&in->headers_enc, 0);
	buf_init(&in->header_names, 0);
}

static void input_release(struct mcp_input *in)
{
	buf_release(&in->key_enc);
	buf_release(&in->headers_enc);
	buf_release(&in->header_names);
}

static int parse_input(struct req *rq, struct json_object *body, int create,
		       struct mcp_input *in)
{
	struct apierr e;

	if (check_body(body, create, in, &e)) {
		res_apierr(rq, &e);
		return -1;
	}
	return seal(rq, in);
}

static const char *enc_or_null(const struct buf *b)
{
	return b->len ? b->data : NULL;
}

void h_mcp_servers_list(struct req *rq)
{
	static const char q[] =
		"WITH f AS (SELECT m AS r FROM mcp_servers m WHERE m.org_id = $1 "
		"  AND ($2::bool OR m.status <> 'archived') "
		"  AND ($3::text IS NULL "
		"    OR strpos(lower(m.name), lower($3)) > 0 "
		"    OR strpos(lower(coalesce(m.description, '')), "
		"              lower($3)) > 0)), " API_PAGE_SQL(
			"api_mcp_server", "$4", "$5");
	struct api_page pg;
	const char *search, *p[5];
	int archived;

	if (api_list_params(rq, &search, &archived, &pg))
		return;
	p[0] = rq->org;
	p[1] = archived ? "true" : "false";
	p[2] = search;
	p[3] = pg.offset;
	p[4] = pg.limit;
	api_send_json_row(rq, 200, NOT_FOUND, q, 5, p);
}

void h_mcp_servers_create(struct req *rq)
{
	/* no row: the organization is at its limit */
	static const char q[] =
		"INSERT INTO mcp_servers AS m (org_id, name, description, url, "
		"  header_names, headers_enc, api_key_enc) "
		"SELECT $1, $2, $3, $4, $5::text[], $6, $7 "
		"WHERE (SELECT count(*) FROM mcp_servers c WHERE c.org_id = $1 "
		"  AND c.status <> 'archived') < $8::bigint "
		"RETURNING api_mcp_server(m)";
	struct json_object *body = api_body(rq);
	struct mcp_input in;
	char max[24];
	const char *p[8], *v;
	PGresult *res;

	input_init(&in);
	if (!body || parse_input(rq, body, 1, &in))
		goto out;
	snprintf(max, sizeof(max), "%ld", config_int("org_max_mcp_servers"));
	p[0] = rq->org;
	p[1] = in.name;
	p[2] = in.description;
	p[3] = in.url;
	p[4] = in.header_names.data;
	p[5] = enc_or_null(&in.headers_enc);
	p[6] = enc_or_null(&in.key_enc);
	p[7] = max;
	if (!(res = db_exec(rq->db, q, 8, p))) {
		api_write_error(rq, "MCP server");
		goto out;
	}
	if (PQntuples(res) == 1) {
		v = db_val(res, 0, 0);
		res_json(rq, 201, v, strlen(v));
	} else {
		res_error(rq, 429, "org_mcp_server_limit",
			  "this organization has %s MCP servers, the most "
			  "allowed (org_max_mcp_servers); delete one first",
			  max);
	}
	PQclear(res);
out:
	input_release(&in);
	json_object_put(body);
}

void h_mcp_servers_get(struct req *rq)
{
	static const char q[] = "SELECT api_mcp_server(m) FROM mcp_servers m "
				"WHERE m.id = $1 AND m.org_id = $2";
	char hex[33];
	const char *p[2];

	if (api_id(rq, rq->cap[0], "mcp", "server_id", hex))
		return;
	p[0] = hex;
	p[1] = rq->org;
	api_send_json_row(rq, 200, NOT_FOUND, q, 2, p);
}

void h_mcp_servers_update(struct req *rq)
{
	/* one statement under the row's lock: (the server's JSON or NULL,
	 * whether the change needs the secrets again); no row: not found.
	 * An archived server cannot be changed. */
	static const char q[] =
		"WITH cur AS (SELECT m.id, $4::text IS NOT NULL "
		"  AND m.url IS DISTINCT FROM $4::text "
		"  AND ((m.api_key_enc IS NOT NULL AND NOT $7::bool) "
		"    OR (m.headers_enc IS NOT NULL AND NOT $10::bool)) "
		"  AS needs_secrets FROM mcp_servers m "
		"  WHERE m.id = $1 AND m.org_id = $2 "
		"  AND m.status <> 'archived' FOR UPDATE), "
		"upd AS (UPDATE mcp_servers m SET "
		"  name = coalesce($3::text, m.name), "
		"  url = coalesce($4::text, m.url), "
		"  description = CASE WHEN $5::bool THEN $6::text "
		"    ELSE m.description END, "
		"  api_key_enc = CASE WHEN $7::bool THEN $8::text "
		"    ELSE m.api_key_enc END, "
		"  headers_enc = CASE WHEN $10::bool THEN $11::text "
		"    ELSE m.headers_enc END, "
		"  header_names = CASE WHEN $10::bool THEN $12::text[] "
		"    ELSE m.header_names END, "
		"  status = coalesce($9::text, m.status), updated_at = now() "
		"  FROM cur WHERE m.id = cur.id AND NOT cur.needs_secrets "
		"  RETURNING api_mcp_server(m) AS j) "
		"SELECT (SELECT j FROM upd), needs_secrets FROM cur";
	struct json_object *body = NULL;
	struct mcp_input in;
	char hex[33];
	const char *p[12], *v;
	PGresult *res;

	input_init(&in);
	if (api_id(rq, rq->cap[0], "mcp", "server_id", hex))
		goto out;
	body = api_body(rq);
	if (!body || parse_input(rq, body, 0, &in))
		goto out;
	p[0] = hex;
	p[1] = rq->org;
	p[2] = in.name;
	p[3] = in.url;
	p[4] = in.has_desc ? "true" : "false";
	p[5] = in.description;
	p[6] = in.has_key ? "true" : "false";
	p[7] = enc_or_null(&in.key_enc);
	p[8] = in.status;
	p[9] = in.has_headers ? "true" : "false";
	p[10] = enc_or_null(&in.headers_enc);
	p[11] = in.header_names.data;
	if (!(res = db_exec(rq->db, q, 12, p))) {
		api_write_error(rq, "MCP server");
		goto out;
	}
	if (PQntuples(res) != 1)
		res_error(rq, 404, "not_found", NOT_FOUND);
	else if ((v = db_val(res, 0, 0)) != NULL)
		res_json(rq, 200, v, strlen(v));
	else
		res_error(rq, 400, "validation_error",
			  "api_key, headers: are required when url changes "
			  "(stored secrets are never sent to another "
			  "address): give them again, or null for none");
	PQclear(res);
out:
	input_release(&in);
	json_object_put(body);
}

void h_mcp_servers_delete(struct req *rq)
{
	static const char q[] =
		"UPDATE mcp_servers SET status = 'archived', archived_at = now(), "
		"  updated_at = now() "
		"WHERE id = $1 AND org_id = $2 AND status <> 'archived'";
	char hex[33];
	const char *p[2];
	PGresult *res;

	if (api_id(rq, rq->cap[0], "mcp", "server_id", hex))
		return;
	p[0] = hex;
	p[1] = rq->org;
	if (!(res = db_exec(rq->db, q, 2, p))) {
		api_db_error(rq);
		return;
	}
	if (strcmp(PQcmdTuples(res), "0"))
		res_empty(rq, 204);
	else
		res_error(rq, 404, "not_found", NOT_FOUND);
	PQclear(res);
}

/* GET /capabilities: the organization's active servers, after the
 * catalogue, as capabilities of their own (ref mcp:<mcp_id>). */
int api_mcp_capabilities(struct req *rq, const char *search,
			 struct json_object **out)
{
	static const char q[] =
		"SELECT coalesce(json_agg(json_build_object("
		"  'id', 'mcp:' || evr_id('mcp', m.id), "
		"  'name', m.name, 'description', coalesce(m.description, "
		"    'Tools of the MCP server ' || m.name), "
		"  'status', 'available', 'system_prompt', '', "
		"  'tool_definitions', '[]'::json, 'config_schema', '{}'::json, "
		"  'is_mcp', true, 'mcp_server_id', evr_id('mcp', m.id), "
		"  'url', m.url, "
		"  'self_url', '/api/v1/mcp-servers/' || evr_id('mcp', m.id), "
		"  'view_url', '/', 'ui_link', '/') "
		"  ORDER BY m.created_at, m.id), '[]') "
		"FROM mcp_servers m WHERE m.org_id = $1 AND m.status = 'active' "
		"AND ($2::text IS NULL OR strpos(lower(m.name), lower($2)) > 0 "
		"  OR strpos(lower(coalesce(m.description, '')), lower($2)) > 0)";
	const char *p[2] = {rq->org, search};
	struct apierr e;
	PGresult *res = db_exec(rq->db, q, 2, p);
	const char *v;

	if (!res) {
		api_db_error(rq);
		return -1;
	}
	v = db_val(res, 0, 0);
	*out = v ? jx_parse(v, strlen(v), &e) : NULL;
	PQclear(res);
	if (!*out) {
		res_internal(rq);
		return -1;
	}
	return 0;
}
