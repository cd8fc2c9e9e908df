/*
 * agents: GET/POST /agents, GET/PATCH/DELETE /agents/{id_or_name}.
 *
 * An agent is a profile (profile.c) plus a harness and an iteration cap.
 * DELETE archives: the row stays for the sessions that reference it, but
 * the agent is gone for get, patch, delete and the default list, and its
 * name is free again.
 */
#include "api.h"
#include "json.h"

#include <stdio.h>
#include <string.h>

#define NOT_FOUND "Agent not found"
#define MAX_TAG_FILTER 32

/* The fields an agent adds to the profile. has_* = given; an empty
 * harness_hex / iterations with has_* set is an explicit null. */
struct agent_extra {
	int has_harness, has_iter;
	char harness_hex[33];
	char iterations[24];
};

static int check_extra(struct json_object *body, struct agent_extra *x,
		       struct apierr *e)
{
	struct json_object *h = NULL;
	int64_t n;
	int r;

	memset(x, 0, sizeof(*x));
	if (json_object_object_get_ex(body, "harness_id", &h)) {
		if (h && !json_object_is_type(h, json_type_string))
			return apierr_field(e, "harness_id",
					    "must be a string or null");
		x->has_harness = 1;
	}
	r = jx_get_int(body, "max_iterations", 1, 1000, &n, e);
	if (r < 0)
		return -1;
	if (r == 1) {
		snprintf(x->iterations, sizeof(x->iterations), "%lld",
			 (long long)n);
		x->has_iter = 1;
	} else if (api_is_null(body, "max_iterations")) {
		x->has_iter = 1;
	}
	return 0;
}

/* Validate the whole body (all 400s), then resolve its references (404s
 * naming the field). 0, or -1 with the answer sent. */
static int parse_body(struct req *rq, struct json_object *body, int create,
		      struct profile *pf, struct agent_extra *x)
{
	struct json_object *h = NULL;
	struct apierr e;

	if (api_profile_check(body, create, pf, &e) ||
	    check_extra(body, x, &e)) {
		res_apierr(rq, &e);
		return -1;
	}
	if (api_profile_refs(rq, body, pf))
		return -1;
	json_object_object_get_ex(body, "harness_id", &h);
	if (h && api_ref(rq, json_object_get_string(h), "hns", "harness_id",
			 "harnesses", x->harness_hex))
		return -1;
	return 0;
}

void h_agents_list(struct req *rq)
{
	static const char q[] =
		"WITH f AS (SELECT a AS r FROM agents a WHERE a.org_id = $1 "
		"  AND ($2::bool OR a.status = 'active') "
		"  AND ($3::text IS NULL "
		"    OR strpos(lower(a.name), lower($3)) > 0 "
		"    OR strpos(lower(a.display_name), lower($3)) > 0 "
		"    OR strpos(lower(a.description), lower($3)) > 0) "
		"  AND ($6::text[] IS NULL OR a.tags @> $6::text[])), " API_PAGE_SQL(
			"api_agent", "$4", "$5");
	struct buf tags = BUF_INIT;
	struct api_page pg;
	const char *search, *p[6];
	int archived;

	if (api_list_params(rq, &search, &archived, &pg) ||
	    api_tag_filter(rq, &tags) < 0)
		goto out;
	p[0] = rq->org;
	p[1] = archived ? "true" : "false";
	p[2] = search;
	p[3] = pg.offset;
	p[4] = pg.limit;
	p[5] = tags.len ? tags.data : NULL;
	api_send_json_row(rq, 200, NOT_FOUND, q, 6, p);
out:
	buf_release(&tags);
}

void h_agents_create(struct req *rq)
{
	static const char q[] =
		"INSERT INTO agents AS a (org_id, name, display_name, "
		"  description, system_prompt, default_model_id, harness_id, "
		"  capabilities, tags, max_iterations, tools, approval, "
		"  mcp_servers) "
		"VALUES ($1, $2, coalesce($3::text, ''), coalesce($4::text, ''), "
		"  coalesce($5::text, ''), $6::uuid, $7::uuid, "
		"  coalesce($8::jsonb, '[]'), coalesce($9::text[], '{}'), "
		"  $10::int, coalesce($11::jsonb, '[]'), "
		"  CASE WHEN $12::bool THEN $13::text END, "
		"  coalesce($14::jsonb, '{}')) "
		"RETURNING api_agent(a)";
	struct json_object *body = api_body(rq);
	struct profile pf;
	struct agent_extra x;
	const char *p[14], *v;
	PGresult *res;

	api_profile_init(&pf);
	if (!body || parse_body(rq, body, 1, &pf, &x))
		goto out;
	api_profile_tools(&pf, p + 10);
	if (api_tools_clash(rq, p[10], NULL,
			    x.harness_hex[0] ? x.harness_hex : NULL, NULL))
		goto out;
	p[0] = rq->org;
	api_profile_params(&pf, 0, p + 1);
	p[6] = x.harness_hex[0] ? x.harness_hex : NULL;
	api_profile_lists(&pf, p + 7);
	p[9] = x.iterations[0] ? x.iterations : NULL;
	p[13] = api_profile_mcp(&pf);
	res = db_exec(rq->db, q, 14, p);
	if (!res) {
		api_write_error(rq, "agent");
		goto out;
	}
	v = db_val(res, 0, 0);
	res_json(rq, 201, v, strlen(v));
	PQclear(res);
out:
	api_profile_release(&pf);
	json_object_put(body);
}

void h_agents_get(struct req *rq)
{
	static const char q[] =
		"SELECT api_agent(a) FROM agents a WHERE a.org_id = $1 "
		"AND a.status = 'active' AND (a.id = $2 OR a.name = $3)";
	char hex[33];
	const char *p[3];

	if (api_target_params(rq, "agt", hex, p) == 0)
		api_send_json_row(rq, 200, NOT_FOUND, q, 3, p);
}

void h_agents_update(struct req *rq)
{
	static const char q[] =
		"UPDATE agents a SET "
		"  name = coalesce($4::text, a.name), "
		"  display_name = coalesce($5::text, a.display_name), "
		"  description = coalesce($6::text, a.description), "
		"  system_prompt = coalesce($7::text, a.system_prompt), "
		"  default_model_id = CASE WHEN $8::bool THEN $9::uuid "
		"    ELSE a.default_model_id END, "
		"  harness_id = CASE WHEN $10::bool THEN $11::uuid "
		"    ELSE a.harness_id END, "
		"  capabilities = coalesce($12::jsonb, a.capabilities), "
		"  tags = coalesce($13::text[], a.tags), "
		"  max_iterations = CASE WHEN $14::bool THEN $15::int "
		"    ELSE a.max_iterations END, "
		"  tools = coalesce($16::jsonb, a.tools), "
		"  approval = CASE WHEN $17::bool THEN $18::text "
		"    ELSE a.approval END, "
		"  mcp_servers = coalesce($19::jsonb, a.mcp_servers), "
		"  updated_at = now() "
		"WHERE a.org_id = $1 AND a.status = 'active' "
		"  AND (a.id = $2 OR a.name = $3) "
		"RETURNING api_agent(a)";
	struct json_object *body = api_body(rq);
	struct profile pf;
	struct agent_extra x;
	char hex[33];
	const char *p[19], *v;
	PGresult *res;

	api_profile_init(&pf);
	if (!body || api_target_params(rq, "agt", hex, p) ||
	    parse_body(rq, body, 0, &pf, &x))
		goto out;
	api_profile_params(&pf, 1, p + 3);
	p[9] = x.has_harness ? "true" : "false";
	p[10] = x.harness_hex[0] ? x.harness_hex : NULL;
	api_profile_lists(&pf, p + 11);
	p[13] = x.has_iter ? "true" : "false";
	p[14] = x.iterations[0] ? x.iterations : NULL;
	api_profile_tools(&pf, p + 15);
	if (api_tools_clash(rq, p[15], NULL,
			    x.harness_hex[0] ? x.harness_hex : NULL, NULL))
		goto out;
	p[18] = api_profile_mcp(&pf);
	res = db_exec(rq->db, q, 19, p);
	if (!res) {
		api_write_error(rq, "agent");
		goto out;
	}
	v = db_val(res, 0, 0);
	if (v)
		res_json(rq, 200, v, strlen(v));
	else
		res_error(rq, 404, "not_found", NOT_FOUND);
	PQclear(res);
out:
	api_profile_release(&pf);
	json_object_put(body);
}

void h_agents_delete(struct req *rq)
{
	static const char q[] =
		"UPDATE agents SET status = 'archived', archived_at = now(), "
		"  updated_at = now() "
		"WHERE org_id = $1 AND status = 'active' "
		"  AND (id = $2 OR name = $3)";
	char hex[33];
	const char *p[3];
	PGresult *res;

	if (api_target_params(rq, "agt", hex, p))
		return;
	res = db_exec(rq->db, q, 3, p);
	if (!res) {
		api_db_error(rq);
		return;
	}
	if (strcmp(PQcmdTuples(res), "0"))
		res_empty(rq, 204);
	else
		res_error(rq, 404, "not_found", NOT_FOUND);
	PQclear(res);
}
