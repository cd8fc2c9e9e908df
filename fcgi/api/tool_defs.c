/*
 * tool_defs: the `tools` and `approval` fields of agents, harnesses and
 * sessions (ARCHITECTURE 3.9, README "Client-side tools and approval").
 *
 * `tools` is the upstream document's ToolDefinition list:
 *   {"type":"client_side","name","description","parameters",
 *    "display_name"?,"hints"?,"policy"?}  a tool the client executes;
 *   {"type":"builtin","name","policy":"auto"|"requires_approval",
 *    "description"?,"parameters"?}       the policy of a capability's tool
 *                                         (or an MCP tool, by its name).
 * `approval`: "auto" | "writes" | "all", null inherits.
 * Names are ^[a-zA-Z0-9_-]{1,64}$, at most tools_max entries, one entry
 * per name; a client-side tool may not take the name of a capability's
 * tool, nor of a client-side tool of another layer (the agent's or
 * harness's of a session, the harness's of an agent).
 */
#include "api.h"
#include "catalog.h"
#include "config.h"
#include "json.h"

#include <stdio.h>
#include <string.h>

#define TOOL_NAME_MAX 64

static int name_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= TOOL_NAME_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* Is `name` the name of a tool of some capability of the catalogue? */
static int catalog_has_tool(const char *name)
{
	size_t n, i, j;
	const struct catalog_cap *all = catalog_all(&n);
	int found = 0;

	for (i = 0; i < n && !found; i++) {
		struct json_object *defs =
			json_tokener_parse(all[i].tools_json);
		for (j = 0; defs && j < json_object_array_length(defs); j++) {
			const char *tn = jx_gets(
				json_object_array_get_idx(defs, j), "name");
			if (tn && !strcmp(tn, name))
				found = 1;
		}
		json_object_put(defs);
	}
	return found;
}

/* An object member of a tool no larger than tool_schema_max_bytes as
 * compact JSON (every request carries it to the model): 0, or -1 with
 * the 400 in e. */
static int schema_size(struct json_object *v, const char *field,
		       const char *member, struct apierr *e)
{
	long max = config_int("tool_schema_max_bytes");
	size_t n = v ? strlen(jx_str(v)) : 0;

	if ((long)n <= max)
		return 0;
	return apierr_set(e, 400, "validation_error",
			  "%s.%s: %zu bytes as JSON, at most %ld "
			  "(tool_schema_max_bytes)",
			  field, member, n, max);
}

static int check_one(struct json_object *t, const char *field,
		     struct json_object *seen, struct apierr *e)
{
	const char *type, *name, *pol = NULL, *desc = NULL, *dn = NULL;
	struct json_object *params = NULL, *hints = NULL;
	int client;

	if (!json_object_is_type(t, json_type_object))
		return apierr_field(e, field, "must be an object");
	type = jx_gets(t, "type");
	if (!type || (strcmp(type, "client_side") && strcmp(type, "builtin")))
		return apierr_field(e, field,
				    "type must be \"client_side\" or "
				    "\"builtin\"");
	client = !strcmp(type, "client_side");
	name = jx_gets(t, "name");
	if (!name || !name_ok(name))
		return apierr_set(e, 400, "validation_error",
				  "%s.name: must match ^[a-zA-Z0-9_-]{1,64}$",
				  field);
	if (jx_get(seen, name))
		return apierr_set(e, 400, "validation_error",
				  "%s.name: the tool '%s' is listed twice",
				  field, name);
	json_object_object_add(seen, name, json_object_new_boolean(client));
	if (jx_get_str(t, "description",
		       (size_t)config_int("tool_description_max_bytes"), &desc,
		       e) < 0 ||
	    jx_get_str(t, "display_name", 256, &dn, e) < 0 ||
	    jx_get_str(t, "policy", 32, &pol, e) < 0 ||
	    jx_get_obj(t, "parameters", &params, e) < 0 ||
	    jx_get_obj(t, "hints", &hints, e) < 0 ||
	    schema_size(params, field, "parameters", e) < 0 ||
	    schema_size(hints, field, "hints", e) < 0)
		return -1;
	if (params && jx_gets(params, "type") &&
	    strcmp(jx_gets(params, "type"), "object"))
		return apierr_set(e, 400, "validation_error",
				  "%s.parameters: must be a JSON Schema of "
				  "type \"object\"",
				  field);
	if (client) {
		if (!desc)
			return apierr_set(e, 400, "validation_error",
					  "%s.description: is required", field);
		/* providers take only an object schema for a function */
		if (!params || !jx_gets(params, "type"))
			return apierr_set(e, 400, "validation_error",
					  "%s.parameters: is required (a JSON "
					  "Schema of type \"object\")",
					  field);
		if (pol && strcmp(pol, "auto") &&
		    strcmp(pol, "requires_approval") &&
		    strcmp(pol, "client_side"))
			return apierr_set(e, 400, "validation_error",
					  "%s.policy: must be \"auto\", "
					  "\"requires_approval\" or "
					  "\"client_side\"",
					  field);
		if (catalog_has_tool(name))
			return apierr_set(e, 400, "validation_error",
					  "%s.name: '%s' is the name of a "
					  "capability's tool",
					  field, name);
	} else if (pol && strcmp(pol, "auto") &&
		   strcmp(pol, "requires_approval")) {
		return apierr_set(e, 400, "validation_error",
				  "%s.policy: must be \"auto\" or "
				  "\"requires_approval\"",
				  field);
	}
	return 0;
}

int api_check_tools(struct json_object *tools, struct buf *out,
		    struct apierr *e)
{
	struct json_object *seen;
	long max = config_int("tools_max");
	size_t i, n;
	char field[32];

	if (!json_object_is_type(tools, json_type_array))
		return apierr_field(e, "tools", "must be an array");
	n = json_object_array_length(tools);
	if ((long)n > max)
		return apierr_set(e, 400, "validation_error",
				  "tools: at most %ld entries (tools_max)",
				  max);
	seen = jx_obj();
	for (i = 0; i < n; i++) {
		snprintf(field, sizeof(field), "tools[%zu]", i);
		if (check_one(json_object_array_get_idx(tools, i), field, seen,
			      e) != 0) {
			json_object_put(seen);
			return -1;
		}
	}
	json_object_put(seen);
	buf_reset(out);
	jx_append(out, tools);
	return 0;
}

int api_check_approval(struct json_object *body, const char **mode, int *given,
		       struct apierr *e)
{
	struct json_object *v = NULL;

	*mode = NULL;
	*given = json_object_object_get_ex(body, "approval", &v);
	if (!*given || !v)
		return 0;
	*mode = json_object_get_string(v);
	if (!json_object_is_type(v, json_type_string) ||
	    (strcmp(*mode, "auto") && strcmp(*mode, "writes") &&
	     strcmp(*mode, "all")))
		return apierr_field(e, "approval",
				    "must be \"auto\", \"writes\", \"all\" or "
				    "null");
	return 0;
}

int api_tools_clash(struct req *rq, const char *tools_json, const char *agent,
		    const char *harness, const char *session)
{
	/* the client-side names of the other layers: the agent's and the
	 * harness's (a session's own, or the agent's harness) */
	static const char q[] =
		"WITH s AS (SELECT agent_id, harness_id FROM sessions "
		"  WHERE id = $5::uuid AND org_id = $4), "
		"ag AS (SELECT coalesce($2::uuid, (SELECT agent_id FROM s)) AS id), "
		"hn AS (SELECT coalesce($3::uuid, (SELECT harness_id FROM s), "
		"  (SELECT harness_id FROM agents WHERE org_id = $4 "
		"   AND id = (SELECT id FROM ag))) AS id), "
		"mine AS (SELECT x->>'name' AS n FROM "
		"  jsonb_array_elements($1::jsonb) x "
		"  WHERE x->>'type' = 'client_side'), "
		"other AS ("
		"  SELECT x->>'name' AS n FROM agents a, "
		"    jsonb_array_elements(a.tools) x "
		"  WHERE a.id = (SELECT id FROM ag) AND a.org_id = $4 "
		"    AND x->>'type' = 'client_side' "
		"  UNION ALL SELECT x->>'name' FROM harnesses h, "
		"    jsonb_array_elements(h.tools) x "
		"  WHERE h.org_id = $4 AND x->>'type' = 'client_side' AND "
		"    h.id = (SELECT id FROM hn)) "
		"SELECT n FROM mine WHERE n IN (SELECT n FROM other) LIMIT 1";
	const char *p[5] = {tools_json, agent, harness, rq->org, session};
	PGresult *res;

	if (!tools_json)
		return 0;
	if (!(res = db_exec(rq->db, q, 5, p))) {
		api_db_error(rq);
		return -1;
	}
	if (PQntuples(res)) {
		res_error(rq, 400, "validation_error",
			  "tools: the client-side tool '%s' is already "
			  "defined by another layer (agent or harness)",
			  PQgetvalue(res, 0, 0));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}
