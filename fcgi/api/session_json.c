/*
 * session_json: the Session object of GET /sessions/{id}, built here from
 * the row's columns instead of by the SQL function api_session(s).
 *
 * Why: api_session() is a SQL function of a whole row that PostgreSQL
 * does not inline, so every call parses, analyses and plans its body
 * again; that was half of the database's time on this read path, while
 * the plain primary-key SELECT of the same columns costs a fraction.
 * The columns come in binary (no output functions, no DateStyle or
 * TimeZone dependence); the text written is byte for byte what
 * api_session() of sql/019_waiting_turns.sql writes (json_build_object's
 * `"key" : value, ` layout, to_json's compact array, jsonb's own text), so
 * the other routes, which still use api_session(), answer the same object
 * (tests/e2e/test_sessions.py compares them). A change to the Session
 * shape goes into both.
 *
 * Owns: session_json_sql (the SELECT) and session_json() (its row).
 */
#include "api.h"
#include "ids.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The columns session_json() reads, in this order. $1 id, $2 org. */
const char session_json_sql[] =
	"SELECT id, org_id, agent_id, harness_id, model_id, title, tags, "
	"capabilities, tools, approval, system_prompt, max_iterations, status, usage_input, "
	"usage_output, locale, parallel_tool_calls, "
	"coalesce(owner_user_id, chat_user_id), created_at, updated_at, "
	"mcp_servers "
	"FROM sessions WHERE id = $1 AND org_id = $2";

enum {
	C_ID,
	C_ORG,
	C_AGENT,
	C_HARNESS,
	C_MODEL,
	C_TITLE,
	C_TAGS,
	C_CAPS,
	C_TOOLS,
	C_APPROVAL,
	C_PROMPT,
	C_MAXIT,
	C_STATUS,
	C_UIN,
	C_UOUT,
	C_LOCALE,
	C_PTC,
	C_OWNER,
	C_CREATED,
	C_UPDATED,
	C_MCP,
	C_COUNT
};

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void key(struct buf *b, const char *k, int first)
{
	if (!first)
		buf_add(b, ", ", 2);
	buf_addch(b, '"');
	buf_adds(b, k);
	buf_add(b, "\" : ", 4);
}

/* The id of a uuid column, or null. */
static int put_id(struct buf *b, const PGresult *r, int col, const char *prefix)
{
	char id[IDS_MAX_LEN];
	if (PQgetisnull(r, 0, col)) {
		buf_add(b, "null", 4);
		return 0;
	}
	if (PQgetlength(r, 0, col) != 16)
		return -1;
	ids_format(prefix, (const unsigned char *)PQgetvalue(r, 0, col), id,
		   sizeof(id));
	buf_add_json_str(b, id, strlen(id));
	return 0;
}

static void put_text(struct buf *b, const PGresult *r, int col)
{
	if (PQgetisnull(r, 0, col))
		buf_add(b, "null", 4);
	else
		buf_add_json_str(b, PQgetvalue(r, 0, col),
				 (size_t)PQgetlength(r, 0, col));
}

/* evr_ts(): "YYYY-MM-DDTHH:MM:SS.mmmZ" in UTC, milliseconds truncated,
 * from timestamptz's binary form (microseconds since 2000-01-01 UTC). */
static int put_ts(struct buf *b, const PGresult *r, int col)
{
	int64_t us, ms;
	time_t t;
	struct tm tm;
	char s[40];

	if (PQgetlength(r, 0, col) != 8)
		return -1;
	us = (int64_t)be64((const unsigned char *)PQgetvalue(r, 0, col));
	ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
	t = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
	ms -= (int64_t)t * 1000;
	t += 946684800; /* 2000-01-01 in Unix time */
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1 ||
	    tm.tm_year + 1900 > 9999)
		return -1;
	snprintf(s, sizeof(s), "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)ms);
	buf_adds(b, s);
	return 0;
}

/* to_json(text[]): ["a","b"] (compact), from the binary array form. */
static int put_tags(struct buf *b, const PGresult *r, int col)
{
	const unsigned char *p = (const unsigned char *)PQgetvalue(r, 0, col);
	const unsigned char *end = p + PQgetlength(r, 0, col);
	uint32_t ndim, n, i;

	if (end - p < 12)
		return -1;
	ndim = be32(p);
	if (ndim == 0) {
		buf_add(b, "[]", 2);
		return 0;
	}
	if (ndim != 1 || end - p < 20)
		return -1;
	n = be32(p + 12);
	p += 20;
	buf_addch(b, '[');
	for (i = 0; i < n; i++) {
		int32_t len;
		if (end - p < 4)
			return -1;
		len = (int32_t)be32(p);
		p += 4;
		if (i)
			buf_addch(b, ',');
		if (len < 0) {
			buf_add(b, "null", 4);
			continue;
		}
		if (end - p < len)
			return -1;
		buf_add_json_str(b, (const char *)p, (size_t)len);
		p += len;
	}
	buf_addch(b, ']');
	return 0;
}

int session_json(const PGresult *r, struct buf *b)
{
	const char *v;
	char num[32];

	if (PQntuples(r) != 1 || PQnfields(r) != C_COUNT ||
	    PQbinaryTuples(r) != 1)
		return -1;
	buf_addch(b, '{');
	key(b, "id", 1);
	if (put_id(b, r, C_ID, "ses") != 0)
		return -1;
	key(b, "organization_id", 0);
	if (put_id(b, r, C_ORG, "org") != 0)
		return -1;
	key(b, "agent_id", 0);
	if (put_id(b, r, C_AGENT, "agt") != 0)
		return -1;
	key(b, "harness_id", 0);
	if (put_id(b, r, C_HARNESS, "hns") != 0)
		return -1;
	key(b, "model_id", 0);
	if (put_id(b, r, C_MODEL, "mod") != 0)
		return -1;
	key(b, "title", 0);
	put_text(b, r, C_TITLE);
	key(b, "tags", 0);
	if (put_tags(b, r, C_TAGS) != 0)
		return -1;
	/* jsonb's binary form: a version byte (1), then its text */
	key(b, "capabilities", 0);
	v = PQgetvalue(r, 0, C_CAPS);
	if (PQgetlength(r, 0, C_CAPS) < 1 || v[0] != 1)
		return -1;
	buf_add(b, v + 1, (size_t)PQgetlength(r, 0, C_CAPS) - 1);
	key(b, "tools", 0);
	v = PQgetvalue(r, 0, C_TOOLS);
	if (PQgetlength(r, 0, C_TOOLS) < 1 || v[0] != 1)
		return -1;
	buf_add(b, v + 1, (size_t)PQgetlength(r, 0, C_TOOLS) - 1);
	key(b, "approval", 0);
	put_text(b, r, C_APPROVAL);
	key(b, "system_prompt", 0);
	put_text(b, r, C_PROMPT);
	key(b, "max_iterations", 0);
	if (PQgetisnull(r, 0, C_MAXIT)) {
		buf_add(b, "null", 4);
	} else {
		if (PQgetlength(r, 0, C_MAXIT) != 4)
			return -1;
		snprintf(num, sizeof(num), "%d",
			 (int32_t)be32((const unsigned char *)PQgetvalue(
				 r, 0, C_MAXIT)));
		buf_adds(b, num);
	}
	key(b, "status", 0);
	put_text(b, r, C_STATUS);
	if (PQgetlength(r, 0, C_UIN) != 8 || PQgetlength(r, 0, C_UOUT) != 8)
		return -1;
	snprintf(num, sizeof(num), "%lld",
		 (long long)(int64_t)be64(
			 (const unsigned char *)PQgetvalue(r, 0, C_UIN)));
	key(b, "usage", 0);
	buf_adds(b, "{\"input_tokens\" : ");
	buf_adds(b, num);
	snprintf(num, sizeof(num), "%lld",
		 (long long)(int64_t)be64(
			 (const unsigned char *)PQgetvalue(r, 0, C_UOUT)));
	buf_adds(b, ", \"output_tokens\" : ");
	buf_adds(b, num);
	buf_addch(b, '}');
	key(b, "locale", 0);
	put_text(b, r, C_LOCALE);
	key(b, "parallel_tool_calls", 0);
	if (PQgetisnull(r, 0, C_PTC))
		buf_add(b, "null", 4);
	else
		buf_adds(b, PQgetvalue(r, 0, C_PTC)[0] ? "true" : "false");
	key(b, "owner_principal_id", 0);
	if (PQgetisnull(r, 0, C_OWNER)) {
		if (put_id(b, r, C_ORG, "org") != 0)
			return -1;
	} else if (put_id(b, r, C_OWNER, "usr") != 0) {
		return -1;
	}
	key(b, "created_at", 0);
	if (put_ts(b, r, C_CREATED) != 0)
		return -1;
	key(b, "updated_at", 0);
	if (put_ts(b, r, C_UPDATED) != 0)
		return -1;
	{
		char id[IDS_MAX_LEN];
		ids_format("ses", (const unsigned char *)PQgetvalue(r, 0, C_ID),
			   id, sizeof(id));
		key(b, "self_url", 0);
		buf_adds(b, "\"/api/v1/sessions/");
		buf_adds(b, id);
		buf_addch(b, '"');
		key(b, "view_url", 0);
		buf_adds(b, "\"/#");
		buf_adds(b, id);
		buf_addch(b, '"');
		key(b, "ui_link", 0);
		buf_adds(b, "\"/#");
		buf_adds(b, id);
		buf_addch(b, '"');
	}
	/* jsonb's binary form: a version byte (1), then its text */
	key(b, "mcpServers", 0);
	v = PQgetvalue(r, 0, C_MCP);
	if (PQgetlength(r, 0, C_MCP) < 1 || v[0] != 1)
		return -1;
	buf_add(b, v + 1, (size_t)PQgetlength(r, 0, C_MCP) - 1);
	buf_addch(b, '}');
	return 0;
}
