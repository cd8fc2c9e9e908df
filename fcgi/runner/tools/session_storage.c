/*
 * session_storage: kv_store(operation set|get|delete|list, key?, value?)
 * (ARCHITECTURE 6.2), a per-session key-value store in table session_kv
 * (sql/003_session_kv.sql), removed with its session.
 *
 * Keys are 1..256 bytes of UTF-8 without control characters; at most 1000
 * keys per session. Values are what the catalog's schema allows (strings,
 * structured data stored as JSON text, as the prompt tells the model), at
 * most 64 KiB; the column is jsonb so that other value types need no
 * migration, and `get` returns the stored JSON value as it is.
 *
 * Results:
 *   set    {"operation":"set","key":k,"stored":true}
 *   get    {"operation":"get","key":k,"found":true|false,"value":v|null}
 *   delete {"operation":"delete","key":k,"deleted":true|false}
 *   list   {"operation":"list","keys":[...],"count":n} (byte order)
 * A missing key is a normal answer (found/deleted false), not an error.
 *
 * Every statement joins sessions on the session id AND the organization of
 * the tool context, so a session of another organization is never read or
 * written. None locks the session row: tools run while the event writer
 * updates it. The 1000-key check and the insert are one statement; only
 * two runners executing the same turn at once (a takeover racing a
 * zombie) could pass it together, by one key.
 */
#include "tools_internal.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

static const char sql_set[] =
	"INSERT INTO session_kv (session_id, key, value, updated_at) "
	"SELECT s.id, $3::text, to_jsonb($4::text), now() FROM sessions s "
	"WHERE s.id = $1::uuid AND s.org_id = $2::uuid "
	"AND (EXISTS (SELECT 1 FROM session_kv k "
	"             WHERE k.session_id = s.id AND k.key = $3::text) "
	"     OR (SELECT count(*) FROM session_kv k "
	"         WHERE k.session_id = s.id) < $5::int) "
	"ON CONFLICT (session_id, key) DO UPDATE "
	"SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at "
	"RETURNING 1";

/* After a set that wrote nothing: gone (no row) or full (a row). */
static const char sql_exists[] =
	"SELECT 1 FROM sessions WHERE id = $1::uuid AND org_id = $2::uuid";

/* No row: the session is gone; a NULL value: no such key. */
static const char sql_get[] =
	"SELECT k.value::text FROM sessions s "
	"LEFT JOIN session_kv k ON k.session_id = s.id AND k.key = $3::text "
	"WHERE s.id = $1::uuid AND s.org_id = $2::uuid";

static const char sql_delete[] =
	"DELETE FROM session_kv k USING sessions s "
	"WHERE k.session_id = s.id AND s.id = $1::uuid AND s.org_id = $2::uuid "
	"AND k.key = $3::text RETURNING 1";

/* One row always (an aggregate); a gone session lists as empty.
 * array_to_json, unlike json_agg, writes no spaces. */
static const char sql_list[] =
	"SELECT coalesce(array_to_json(array_agg(k.key ORDER BY k.key "
	"COLLATE \"C\")), '[]')::text, count(*) "
	"FROM sessions s JOIN session_kv k ON k.session_id = s.id "
	"WHERE s.id = $1::uuid AND s.org_id = $2::uuid";

static void head(struct buf *result, const char *op, const char *key,
		 size_t keylen)
{
	buf_addf(result, "{\"operation\":\"%s\"", op);
	if (key) {
		buf_adds(result, ",\"key\":");
		buf_add_json_str(result, key, keylen);
	}
}

static enum tool_status kv_set(const struct tool_ctx *c, const char *key,
			       size_t keylen, const char *value,
			       struct buf *result, struct buf *error)
{
	char limit[16];
	const char *p[5];
	PGresult *res;
	enum tool_status st;

	snprintf(limit, sizeof(limit), "%d", TOOLS_KV_MAX_KEYS);
	p[0] = c->session;
	p[1] = c->org;
	p[2] = key;
	p[3] = value;
	p[4] = limit;
	if (!(res = db_exec(c->db, sql_set, 5, p)))
		return tools_fail(error, TOOLS_MSG_DB);
	if (PQntuples(res) == 1) {
		head(result, "set", key, keylen);
		buf_adds(result, ",\"stored\":true}");
		st = TOOL_OK;
		goto out;
	}
	PQclear(res);
	if (!(res = db_exec(c->db, sql_exists, 2, p)))
		return tools_fail(error, TOOLS_MSG_DB);
	if (PQntuples(res) == 0)
		st = tools_fail(error, TOOLS_MSG_GONE);
	else
		st = tools_fail(error,
				"The store already holds %d keys, the most a "
				"session may have; delete a key you no longer "
				"need first.",
				TOOLS_KV_MAX_KEYS);
out:
	PQclear(res);
	return st;
}

static enum tool_status kv_get(const struct tool_ctx *c, const char *key,
			       size_t keylen, struct buf *result,
			       struct buf *error)
{
	const char *p[3] = {c->session, c->org, key};
	PGresult *res = db_exec(c->db, sql_get, 3, p);
	const char *v;
	enum tool_status st;

	if (!res)
		return tools_fail(error, TOOLS_MSG_DB);
	if (PQntuples(res) == 0) {
		st = tools_fail(error, TOOLS_MSG_GONE);
		goto out;
	}
	head(result, "get", key, keylen);
	/* jsonb's text form is JSON: pasted as it is */
	if ((v = db_val(res, 0, 0)))
		buf_addf(result, ",\"found\":true,\"value\":%s}", v);
	else
		buf_adds(result, ",\"found\":false,\"value\":null}");
	st = TOOL_OK;
out:
	PQclear(res);
	return st;
}

static enum tool_status kv_delete(const struct tool_ctx *c, const char *key,
				  size_t keylen, struct buf *result,
				  struct buf *error)
{
	const char *p[3] = {c->session, c->org, key};
	PGresult *res = db_exec(c->db, sql_delete, 3, p);

	if (!res)
		return tools_fail(error, TOOLS_MSG_DB);
	head(result, "delete", key, keylen);
	buf_addf(result, ",\"deleted\":%s}",
		 PQntuples(res) > 0 ? "true" : "false");
	PQclear(res);
	return TOOL_OK;
}

static enum tool_status kv_list(const struct tool_ctx *c, struct buf *result,
				struct buf *error)
{
	const char *p[2] = {c->session, c->org};
	PGresult *res = db_exec(c->db, sql_list, 2, p);
	const char *keys, *count;
	enum tool_status st;

	if (!res)
		return tools_fail(error, TOOLS_MSG_DB);
	keys = db_val(res, 0, 0);
	count = db_val(res, 0, 1);
	if (!keys || !count) {
		st = tools_fail(error, TOOLS_MSG_DB);
		goto out;
	}
	head(result, "list", NULL, 0);
	buf_addf(result, ",\"keys\":%s,\"count\":%s}", keys, count);
	st = TOOL_OK;
out:
	PQclear(res);
	return st;
}

/* The string argument `name`, or NULL when absent. */
static const char *arg_str(struct json_object *args, const char *name,
			   size_t *len)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(args, name, &v) || !v)
		return NULL;
	*len = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

enum tool_status tools_kv_store(const struct tool_ctx *c,
				struct json_object *args, struct buf *result,
				struct buf *error)
{
	const char *op, *key, *value;
	size_t oplen, keylen = 0, valuelen = 0;

	if (tools_need_db(c, error))
		return TOOL_ERROR;
	/* the schema made operation one of the four and key, value strings */
	op = arg_str(args, "operation", &oplen);
	key = arg_str(args, "key", &keylen);
	value = arg_str(args, "value", &valuelen);
	if (!strcmp(op, "list"))
		return kv_list(c, result, error);
	if (!key)
		return tools_fail(error,
				  "key is required for operation \"%s\".", op);
	if (keylen == 0 || keylen > TOOLS_KV_KEY_MAX)
		return tools_fail(error, "key must be 1 to %d bytes long.",
				  TOOLS_KV_KEY_MAX);
	if (!utf8_valid(key, keylen, 1))
		return tools_fail(error, "key must be UTF-8 text without "
					 "control characters.");
	if (!strcmp(op, "get"))
		return kv_get(c, key, keylen, result, error);
	if (!strcmp(op, "delete"))
		return kv_delete(c, key, keylen, result, error);
	if (!value)
		return tools_fail(error, "value is required for operation "
					 "\"set\".");
	if (valuelen > TOOLS_KV_VALUE_MAX)
		return tools_fail(error,
				  "value is longer than %d bytes; store less, "
				  "or split it over several keys.",
				  TOOLS_KV_VALUE_MAX);
	if (!utf8_valid(value, valuelen, 0))
		return tools_fail(error, "value must be UTF-8 text without NUL "
					 "characters.");
	return kv_set(c, key, keylen, value, result, error);
}
