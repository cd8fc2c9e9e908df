/*
 * session_ext: the fields of the upstream API document's session create
 * that go beyond ARCHITECTURE 2.3, for sessions.c's create path:
 *   agent_name / harness_name  looked up in the organization (active
 *                              ones), each exclusive with its *_id;
 *   locale, parallel_tool_calls stored on the session and returned
 *                              (sql/015; the runner does not read them),
 *                              with the creating user (owner_principal_id);
 *   initial_files              [{path, content, encoding, is_readonly}]
 *                              written in the create's transaction
 *                              through fcgi/lib/fs.c, so each has its
 *                              file.written event and the session's file
 *                              limits hold; a "/workspace" prefix is
 *                              dropped, as upstream accepts it;
 *   tools, approval            client-side tools and the approval mode
 *                              (tool_defs.c, ARCHITECTURE 3.9).
 */
#include "api.h"
#include "fs.h"
#include "ids.h"
#include "json.h"
#include "session_ext.h"

#include <stdio.h>
#include <string.h>

#define LOCALE_MAX 64

/* name -> "<prefix>_<hex>" in body[id_key]; 0, or -1 when answered. */
static int by_name(struct req *rq, struct json_object *body,
		   const char *name_key, const char *id_key, const char *sql,
		   const char *prefix)
{
	const char *name = NULL, *p[2];
	struct apierr e;
	PGresult *res;
	char id[40];

	if (jx_get_str(body, name_key, 256, &name, &e) < 0) {
		res_apierr(rq, &e);
		return -1;
	}
	if (!name)
		return 0;
	if (jx_get(body, id_key)) {
		res_error(rq, 400, "validation_error",
			  "%s and %s: give one of them, not both", id_key,
			  name_key);
		return -1;
	}
	p[0] = rq->org;
	p[1] = name;
	if (!(res = db_exec(rq->db, sql, 2, p))) {
		api_db_error(rq);
		return -1;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		res_error(rq, 404, "not_found", "%s: not found", name_key);
		return -1;
	}
	snprintf(id, sizeof(id), "%s_%s", prefix, PQgetvalue(res, 0, 0));
	PQclear(res);
	json_object_object_add(body, id_key, json_object_new_string(id));
	return 0;
}

static int locale_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

/* Check initial_files[i]; its normalized path into path. */
static int file_check(struct json_object *f, size_t i,
		      char path[FS_PATH_MAX + 1], struct apierr *e)
{
	const char *in = NULL, *enc = NULL;
	char field[48];
	int ro = 0;

	snprintf(field, sizeof(field), "initial_files[%zu]", i);
	if (!json_object_is_type(f, json_type_object))
		return apierr_field(e, field, "must be an object");
	if (jx_get_str(f, "path", FS_PATH_MAX + 16, &in, e) < 0 ||
	    jx_get_str(f, "encoding", 16, &enc, e) < 0 ||
	    jx_get_bool(f, "is_readonly", &ro, e) < 0)
		return -1;
	if (!in)
		return apierr_field(e, field, "path is required");
	if (!jx_gets(f, "content"))
		return apierr_field(e, field, "content (a string) is required");
	if (enc && strcmp(enc, "text") && strcmp(enc, "base64"))
		return apierr_field(e, field,
				    "encoding must be \"text\" or \"base64\"");
	if (!strncmp(in, "/workspace", 10) && (in[10] == '/' || in[10] == '\0'))
		in += 10;
	if (fs_path_normalize(in, strlen(in), path, field, e) != 0)
		return -1;
	if (!strcmp(path, "/"))
		return apierr_field(e, field, "path must name a file");
	return 0;
}

int session_ext_read(struct req *rq, struct json_object *body,
		     struct session_ext *x)
{
	static const char q_agent[] =
		"SELECT replace(id::text, '-', '') FROM agents "
		"WHERE org_id = $1 AND name = $2 AND status = 'active'";
	static const char q_harness[] =
		"SELECT replace(id::text, '-', '') FROM harnesses "
		"WHERE org_id = $1 AND name = $2 AND status = 'active'";
	char path[FS_PATH_MAX + 1];
	struct apierr e;
	struct buf tools = BUF_INIT;
	int has_approval;
	size_t i;

	memset(x, 0, sizeof(*x));
	x->tools = jx_get(body, "tools");
	if (x->tools && api_check_tools(x->tools, &tools, &e) != 0) {
		buf_release(&tools);
		goto bad;
	}
	buf_release(&tools);
	if (api_check_approval(body, &x->approval, &has_approval, &e) != 0)
		goto bad;
	if (jx_get_str(body, "locale", LOCALE_MAX, &x->locale, &e) < 0 ||
	    (x->locale && !locale_ok(x->locale) &&
	     apierr_field(&e, "locale", "must be a BCP 47 tag (e.g. uk-UA)")) ||
	    (x->has_ptc = jx_get_bool(body, "parallel_tool_calls", &x->ptc,
				      &e)) < 0 ||
	    jx_get_array(body, "initial_files", 0, &x->files, &e) < 0 ||
	    jx_get_obj(body, "mcpServers", &x->mcp, &e) < 0)
		goto bad;
	if (x->mcp) {
		struct buf chk = BUF_INIT;
		int bad = api_mcp_check_inline(x->mcp, &chk, &e);
		buf_release(&chk);
		if (bad)
			goto bad;
	}
	for (i = 0; x->files && i < json_object_array_length(x->files); i++)
		if (file_check(json_object_array_get_idx(x->files, i), i, path,
			       &e) != 0)
			goto bad;
	if (by_name(rq, body, "agent_name", "agent_id", q_agent, "agt") ||
	    by_name(rq, body, "harness_name", "harness_id", q_harness, "hns"))
		return -1;
	return 0;
bad:
	res_apierr(rq, &e);
	return -1;
}

/* Write initial_files[i] (checked by session_ext_read). */
static int file_write(struct req *rq, const struct fs_ctx *c,
		      struct json_object *f, size_t i)
{
	static const char q_ro[] =
		"UPDATE session_files SET is_readonly = true "
		"WHERE session_id = $1::uuid AND path = $2";
	char path[FS_PATH_MAX + 1], field[48];
	struct json_object *content = jx_get(f, "content");
	const char *enc = jx_gets(f, "encoding");
	struct json_object *ro = jx_get(f, "is_readonly");
	struct buf data = BUF_INIT;
	long long limit = 0;
	enum fs_status st;
	struct apierr e;
	const char *p[2];
	PGresult *res;

	file_check(f, i, path, &e);
	buf_init(&data, 0);
	if (enc && !strcmp(enc, "base64")) {
		if (fs_base64_decode(
			    json_object_get_string(content),
			    (size_t)json_object_get_string_len(content),
			    &data) != 0) {
			snprintf(field, sizeof(field), "initial_files[%zu]", i);
			apierr_field(&e, field, "content: not valid base64");
			res_apierr(rq, &e);
			buf_release(&data);
			return -1;
		}
	} else {
		buf_add(&data, json_object_get_string(content),
			(size_t)json_object_get_string_len(content));
	}
	st = fs_write(c, path, data.data ? data.data : "", data.len, FS_REPLACE,
		      NULL, &limit);
	buf_release(&data);
	if (st == FS_DB_ERROR) {
		api_db_error(rq);
		return -1;
	}
	if (st != FS_OK && st != FS_CREATED) {
		fs_error(st, path, limit, &e);
		res_apierr(rq, &e);
		return -1;
	}
	if (!ro || !json_object_get_boolean(ro))
		return 0;
	p[0] = c->session;
	p[1] = path;
	if (!(res = db_exec(rq->db, q_ro, 2, p))) {
		api_db_error(rq);
		return -1;
	}
	PQclear(res);
	return 0;
}

int session_ext_apply(struct req *rq, const struct session_ext *x,
		      const char **json, struct buf *out)
{
	static const char q[] =
		"UPDATE sessions s SET locale = $2, "
		"parallel_tool_calls = $3::boolean, owner_user_id = $4::uuid, "
		"tools = coalesce($5::jsonb, '[]'), approval = $6, "
		"mcp_servers = coalesce($7::jsonb, s.mcp_servers) "
		"WHERE id = $1::uuid RETURNING api_session(s)::text";
	struct json_object *o;
	struct apierr e;
	struct fs_ctx c;
	char sid[33];
	const char *p[7];
	struct buf mcp = BUF_INIT;
	PGresult *res;
	size_t i;
	int ok;

	o = jx_parse(*json, strlen(*json), &e);
	ok = o &&
	     ids_parse(jx_gets(o, "id") ? jx_gets(o, "id") : "", "ses", sid);
	json_object_put(o);
	if (!ok) {
		res_internal(rq);
		return -1;
	}
	c.db = rq->db;
	c.org = rq->org;
	c.session = sid;
	c.source = "api";
	c.emit = NULL;
	c.emit_arg = NULL;
	for (i = 0; x->files && i < json_object_array_length(x->files); i++)
		if (file_write(rq, &c, json_object_array_get_idx(x->files, i),
			       i) != 0)
			return -1;
	p[0] = sid;
	p[1] = x->locale;
	p[2] = x->has_ptc ? (x->ptc ? "true" : "false") : NULL;
	p[3] = rq->user[0] ? rq->user : NULL;
	p[4] = x->tools ? jx_str(x->tools) : NULL;
	p[5] = x->approval;
	if (api_tools_clash(rq, p[4], NULL, NULL, sid) != 0)
		return -1;
	/* checked by session_ext_read: only normalized here */
	if (x->mcp && api_mcp_check_inline(x->mcp, &mcp, &e) == 0)
		p[6] = mcp.data;
	else
		p[6] = NULL;
	res = db_exec(rq->db, q, 7, p);
	buf_release(&mcp);
	if (!res || PQntuples(res) != 1) {
		PQclear(res);
		api_db_error(rq);
		return -1;
	}
	buf_reset(out);
	buf_adds(out, PQgetvalue(res, 0, 0));
	PQclear(res);
	*json = out->data;
	return 0;
}
