/*
 * session: get_session_info and write_session_title (ARCHITECTURE 6.2).
 *
 * Both act on the session of the turn, never on one the model names: every
 * statement is keyed by the session id AND the organization of the tool
 * context. A session deleted while its turn runs is reported to the model
 * as gone, a database failure as a retryable error; neither fails the
 * turn.
 */
#include "tools_internal.h"

#include <libpq-fe.h>
#include <string.h>

static const char sql_info[] =
	"SELECT json_build_object("
	"'id', evr_id('ses', s.id), 'title', s.title, "
	"'tags', to_json(s.tags), 'status', s.status, "
	"'created_at', evr_ts(s.created_at), "
	"'agent_id', evr_id('agt', s.agent_id), "
	"'harness_id', evr_id('hns', s.harness_id), "
	"'model_id', evr_id('mod', s.model_id))::text "
	"FROM sessions s WHERE s.id = $1::uuid AND s.org_id = $2::uuid";

/* The same updated_at bump as PATCH /sessions/{id}. */
static const char sql_title[] =
	"UPDATE sessions SET title = $3, updated_at = now() "
	"WHERE id = $1::uuid AND org_id = $2::uuid "
	"RETURNING json_build_object('id', evr_id('ses', id), "
	"'title', title)::text";

/* Run a one-row statement whose single column is a JSON text and append
 * that text to result. */
static enum tool_status one_json_row(const struct tool_ctx *c, const char *sql,
				     int nparams, const char *const *params,
				     struct buf *result, struct buf *error)
{
	PGresult *res = db_exec(c->db, sql, nparams, params);
	const char *json;
	enum tool_status st;

	if (!res)
		return tools_fail(error, TOOLS_MSG_DB);
	if (!(json = db_val(res, 0, 0))) {
		st = tools_fail(error, TOOLS_MSG_GONE);
		goto out;
	}
	buf_adds(result, json);
	st = TOOL_OK;
out:
	PQclear(res);
	return st;
}

enum tool_status tools_session_info(const struct tool_ctx *c,
				    struct json_object *args,
				    struct buf *result, struct buf *error)
{
	const char *p[2];

	(void)args;
	if (tools_need_db(c, error))
		return TOOL_ERROR;
	p[0] = c->session;
	p[1] = c->org;
	return one_json_row(c, sql_info, 2, p, result, error);
}

static int space_like(unsigned char ch)
{
	return ch <= 0x20 || ch == 0x7f;
}

/* A title is one line: control characters (newlines, tabs...) become
 * spaces, runs of them one space, and the ends are trimmed. Models often
 * end a title with a newline; refusing that would only cost a retry. */
static void title_normalize(const char *s, size_t len, struct buf *out)
{
	size_t i;
	int pending_space = 0;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (space_like(ch)) {
			pending_space = out->len > 0;
			continue;
		}
		if (pending_space)
			buf_addch(out, ' ');
		pending_space = 0;
		buf_addch(out, (char)ch);
	}
}

enum tool_status tools_session_title(const struct tool_ctx *c,
				     struct json_object *args,
				     struct buf *result, struct buf *error)
{
	struct json_object *t = NULL;
	struct buf title = BUF_INIT;
	const char *p[3];
	enum tool_status st;

	if (tools_need_db(c, error)) {
		st = TOOL_ERROR;
		goto out;
	}
	json_object_object_get_ex(args, "title", &t);
	/* NUL is a control character too: checked on the raw text, before
	 * normalizing would hide it */
	if (!utf8_valid(json_object_get_string(t),
			(size_t)json_object_get_string_len(t), 0)) {
		st = tools_fail(error, "title is not valid UTF-8 text.");
		goto out;
	}
	title_normalize(json_object_get_string(t),
			(size_t)json_object_get_string_len(t), &title);
	if (!title.len) {
		st = tools_fail(error, "title must not be blank.");
		goto out;
	}
	if (title.len > TOOLS_TITLE_MAX) {
		st = tools_fail(error,
				"title is longer than %d bytes; use a few "
				"words.",
				TOOLS_TITLE_MAX);
		goto out;
	}
	p[0] = c->session;
	p[1] = c->org;
	p[2] = title.data;
	st = one_json_row(c, sql_title, 3, p, result, error);
out:
	buf_release(&title);
	return st;
}
