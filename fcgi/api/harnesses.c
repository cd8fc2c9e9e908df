/*
 * harnesses: GET/POST /harnesses, GET/PATCH/DELETE /harnesses/{id_or_name}.
 *
 * The built-in harnesses (base, generic, platform-chat) are seeded per
 * organization and read-only: PATCH and DELETE answer 409 `read_only`
 * (the resource exists, its state forbids the change). DELETE archives;
 * an archived harness is gone for get, patch, delete and the default
 * list, and its name is free again.
 */
#include "api.h"

#include <stdio.h>
#include <string.h>

#define NOT_FOUND "Harness not found"

void h_harnesses_list(struct req *rq)
{
	static const char q[] =
		"WITH f AS (SELECT h AS r FROM harnesses h WHERE h.org_id = $1 "
		"  AND ($2::bool OR h.status = 'active') "
		"  AND ($3::text IS NULL "
		"    OR strpos(lower(h.name), lower($3)) > 0 "
		"    OR strpos(lower(h.display_name), lower($3)) > 0 "
		"    OR strpos(lower(h.description), lower($3)) > 0)), " API_PAGE_SQL(
			"api_harness", "$4", "$5");
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

void h_harnesses_create(struct req *rq)
{
	static const char q[] =
		"INSERT INTO harnesses AS h (org_id, name, display_name, "
		"  description, system_prompt, default_model_id, capabilities, "
		"  tags, tools, approval, mcp_servers) "
		"VALUES ($1, $2, coalesce($3::text, ''), coalesce($4::text, ''), "
		"  coalesce($5::text, ''), $6::uuid, "
		"  coalesce($7::jsonb, '[]'), coalesce($8::text[], '{}'), "
		"  coalesce($9::jsonb, '[]'), "
		"  CASE WHEN $10::bool THEN $11::text END, "
		"  coalesce($12::jsonb, '{}')) "
		"RETURNING api_harness(h)";
	struct json_object *body = api_body(rq);
	struct profile pf;
	struct apierr e;
	const char *p[12];
	PGresult *res;

	api_profile_init(&pf);
	if (!body)
		goto out;
	if (api_profile_check(body, 1, &pf, &e)) {
		res_apierr(rq, &e);
		goto out;
	}
	if (api_profile_refs(rq, body, &pf))
		goto out;
	p[0] = rq->org;
	api_profile_params(&pf, 0, p + 1);
	api_profile_lists(&pf, p + 6);
	api_profile_tools(&pf, p + 8);
	p[11] = api_profile_mcp(&pf);
	res = db_exec(rq->db, q, 12, p);
	if (!res) {
		api_write_error(rq, "harness");
		goto out;
	}
	res_json(rq, 201, db_val(res, 0, 0), strlen(db_val(res, 0, 0)));
	PQclear(res);
out:
	api_profile_release(&pf);
	json_object_put(body);
}

void h_harnesses_get(struct req *rq)
{
	static const char q[] =
		"SELECT api_harness(h) FROM harnesses h WHERE h.org_id = $1 "
		"AND h.status = 'active' AND (h.id = $2 OR h.name = $3)";
	char hex[33];
	const char *p[3];

	if (api_target_params(rq, "hns", hex, p) == 0)
		api_send_json_row(rq, 200, NOT_FOUND, q, 3, p);
}

/* Column 0 of a PATCH/DELETE result is the target's is_built_in (NULL:
 * no such active harness), column 1 what the write produced (NULL: the
 * row was archived meanwhile). Sends the error and returns -1, or 0. */
static int write_outcome(struct req *rq, PGresult *res)
{
	const char *builtin = db_val(res, 0, 0);
	if (!builtin || (strcmp(builtin, "t") && !db_val(res, 0, 1))) {
		res_error(rq, 404, "not_found", NOT_FOUND);
		return -1;
	}
	if (!strcmp(builtin, "t")) {
		res_error(rq, 409, "read_only",
			  "Built-in harnesses are read-only; create a new "
			  "harness instead");
		return -1;
	}
	return 0;
}

/* The target of PATCH and DELETE, shared as text so both statements lock
 * the same row: the caller's active harness with that id or name. */
#define TARGET                                                                 \
	"WITH t AS (SELECT id, is_built_in FROM harnesses WHERE org_id = $1 "  \
	"  AND status = 'active' AND (id = $2 OR name = $3)) "

void h_harnesses_update(struct req *rq)
{
	static const char q[] = TARGET
		", u AS (UPDATE harnesses h SET "
		"  name = coalesce($4::text, h.name), "
		"  display_name = coalesce($5::text, h.display_name), "
		"  description = coalesce($6::text, h.description), "
		"  system_prompt = coalesce($7::text, h.system_prompt), "
		"  default_model_id = CASE WHEN $8::bool THEN $9::uuid "
		"    ELSE h.default_model_id END, "
		"  capabilities = coalesce($10::jsonb, h.capabilities), "
		"  tags = coalesce($11::text[], h.tags), "
		"  tools = coalesce($12::jsonb, h.tools), "
		"  approval = CASE WHEN $13::bool THEN $14::text "
		"    ELSE h.approval END, "
		"  mcp_servers = coalesce($15::jsonb, h.mcp_servers), "
		"  updated_at = now() "
		"  FROM t WHERE h.id = t.id AND NOT t.is_built_in "
		"  AND h.status = 'active' RETURNING api_harness(h) AS j) "
		"SELECT (SELECT is_built_in FROM t), (SELECT j FROM u)";
	struct json_object *body = api_body(rq);
	struct profile pf;
	struct apierr e;
	char hex[33];
	const char *p[15], *v;
	PGresult *res;

	api_profile_init(&pf);
	if (!body || api_target_params(rq, "hns", hex, p))
		goto out;
	if (api_profile_check(body, 0, &pf, &e)) {
		res_apierr(rq, &e);
		goto out;
	}
	if (api_profile_refs(rq, body, &pf))
		goto out;
	api_profile_params(&pf, 1, p + 3);
	api_profile_lists(&pf, p + 9);
	api_profile_tools(&pf, p + 11);
	p[14] = api_profile_mcp(&pf);
	res = db_exec(rq->db, q, 15, p);
	if (!res) {
		api_write_error(rq, "harness");
		goto out;
	}
	if (!write_outcome(rq, res)) {
		v = db_val(res, 0, 1);
		res_json(rq, 200, v, strlen(v));
	}
	PQclear(res);
out:
	api_profile_release(&pf);
	json_object_put(body);
}

void h_harnesses_delete(struct req *rq)
{
	static const char q[] =
		TARGET ", u AS (UPDATE harnesses h SET status = 'archived', "
		       "  archived_at = now(), updated_at = now() "
		       "  FROM t WHERE h.id = t.id AND NOT t.is_built_in "
		       "  AND h.status = 'active' RETURNING h.id) "
		       "SELECT (SELECT is_built_in FROM t), (SELECT id FROM u)";
	char hex[33];
	const char *p[3];
	PGresult *res;

	if (api_target_params(rq, "hns", hex, p))
		return;
	res = db_exec(rq->db, q, 3, p);
	if (!res) {
		api_db_error(rq);
		return;
	}
	if (!write_outcome(rq, res))
		res_empty(rq, 204);
	PQclear(res);
}
