/*
 * models: GET /llm-models, GET/PATCH/DELETE /llm-models/{id}, and the
 * model validation and listing that /llm-providers/{id}/models shares.
 * A model belongs to one provider of the organization; it is shown with
 * its provider's name and type (SQL api_model).
 */
#include "api.h"
#include "json.h"

#include <stdio.h>
#include <string.h>

#define NOT_FOUND "Model not found"
#define MODEL_ID_MAX_LEN 256
#define LABEL_MAX_LEN 512
#define MAX_CONTEXT_TOKENS 10000000

static const char *const model_caps[] = {"chat", "tools", "vision",
					 "reasoning"};

void api_model_input_init(struct model_input *m)
{
	memset(m, 0, sizeof(*m));
	buf_init(&m->caps, 0);
}

void api_model_input_release(struct model_input *m)
{
	buf_release(&m->caps);
}

/* capabilities: a list of known model features, each at most once. */
static int check_caps(struct json_object *arr, struct apierr *e)
{
	size_t i, j, k, n = json_object_array_length(arr);
	char name[40];

	for (i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(arr, i);
		const char *s;
		snprintf(name, sizeof(name), "capabilities[%zu]", i);
		if (!json_object_is_type(c, json_type_string))
			return apierr_field(e, name, "must be a string");
		s = json_object_get_string(c);
		for (k = 0; k < sizeof(model_caps) / sizeof(*model_caps); k++)
			if (!strcmp(s, model_caps[k]))
				break;
		if (k == sizeof(model_caps) / sizeof(*model_caps))
			return apierr_field(e, name,
					    "must be one of chat, tools, "
					    "vision, reasoning");
		for (j = 0; j < i; j++)
			if (!strcmp(s,
				    json_object_get_string(
					    json_object_array_get_idx(arr, j))))
				return apierr_set(e, 400, "validation_error",
						  "%s: duplicate '%s'", name,
						  s);
	}
	return 0;
}

int api_model_check(struct json_object *body, int create, struct model_input *m,
		    struct apierr *e)
{
	struct json_object *caps = NULL;
	int64_t ctx;
	int enabled, r;

	if (jx_get_str(body, "model_id", MODEL_ID_MAX_LEN, &m->model_id, e) < 0)
		return -1;
	if (m->model_id && !*m->model_id)
		return apierr_field(e, "model_id", "must not be empty");
	if (!m->model_id && create)
		return apierr_field(e, "model_id", "is required");
	if (jx_get_str(body, "display_name", LABEL_MAX_LEN, &m->display_name,
		       e) < 0)
		return -1;
	r = jx_get_array(body, "capabilities", 0, &caps, e);
	if (r < 0 || (r == 1 && check_caps(caps, e)))
		return -1;
	if (r == 1)
		api_pg_text_array(&m->caps, caps);
	r = jx_get_int(body, "context_tokens", 1, MAX_CONTEXT_TOKENS, &ctx, e);
	if (r < 0)
		return -1;
	if (r == 1)
		snprintf(m->context_tokens, sizeof(m->context_tokens), "%lld",
			 (long long)ctx);
	r = jx_get_bool(body, "enabled", &enabled, e);
	if (r < 0)
		return -1;
	if (r == 1)
		m->enabled = enabled ? "true" : "false";
	return 0;
}

void api_models_page(struct req *rq, const char *provider_hex,
		     int provider_required)
{
	/* $5: answer no row (a 404) when the provider is not the org's,
	 * rather than an empty page */
	static const char q[] =
		"WITH f AS (SELECT m AS r FROM llm_models m WHERE m.org_id = $1 "
		"  AND ($2::uuid IS NULL OR m.provider_id = $2::uuid)), " API_PAGE_SQL(
			"api_model", "$3",
			"$4") " "
			      "WHERE NOT $5::bool OR EXISTS (SELECT 1 FROM llm_providers "
			      "  WHERE id = $2::uuid AND org_id = $1)";
	struct api_page pg;
	const char *p[5];

	if (api_page_params(rq, &pg))
		return;
	p[0] = rq->org;
	p[1] = provider_hex;
	p[2] = pg.offset;
	p[3] = pg.limit;
	p[4] = provider_required ? "true" : "false";
	api_send_json_row(rq, 200, "LLM provider not found", q, 5, p);
}

void h_models_list(struct req *rq)
{
	const char *v = req_query(rq, "provider_id");
	char hex[33];

	if (v && api_id(rq, v, "prv", "provider_id", hex))
		return;
	api_models_page(rq, v ? hex : NULL, 0);
}

void h_models_get(struct req *rq)
{
	static const char q[] = "SELECT api_model(m) FROM llm_models m "
				"WHERE m.id = $1 AND m.org_id = $2";
	char hex[33];
	const char *p[2];

	if (api_id(rq, rq->cap[0], "mod", "id", hex))
		return;
	p[0] = hex;
	p[1] = rq->org;
	api_send_json_row(rq, 200, NOT_FOUND, q, 2, p);
}

void api_model_write(struct req *rq, const char *sql, const char *prefix,
		     int create, int status)
{
	struct json_object *body = NULL;
	struct model_input m;
	struct apierr e;
	char hex[33];
	const char *p[7];

	api_model_input_init(&m);
	if (api_id(rq, rq->cap[0], prefix, "id", hex))
		goto out;
	body = api_body(rq);
	if (!body)
		goto out;
	if (api_model_check(body, create, &m, &e)) {
		res_apierr(rq, &e);
		goto out;
	}
	p[0] = hex;
	p[1] = rq->org;
	p[2] = m.model_id;
	p[3] = m.display_name;
	p[4] = m.caps.len ? m.caps.data : NULL;
	p[5] = m.context_tokens[0] ? m.context_tokens : NULL;
	p[6] = m.enabled;
	api_send_json_row(rq, status, NOT_FOUND, sql, 7, p);
out:
	api_model_input_release(&m);
	json_object_put(body);
}

void h_models_update(struct req *rq)
{
	static const char q[] =
		"UPDATE llm_models m SET "
		"  model_id = coalesce($3::text, m.model_id), "
		"  display_name = coalesce($4::text, m.display_name), "
		"  capabilities = coalesce($5::text[], m.capabilities), "
		"  context_tokens = coalesce($6::int, m.context_tokens), "
		"  enabled = coalesce($7::bool, m.enabled), updated_at = now() "
		"WHERE m.id = $1 AND m.org_id = $2 RETURNING api_model(m)";
	api_model_write(rq, q, "mod", 0, 200);
}

void h_models_delete(struct req *rq)
{
	static const char q[] =
		"DELETE FROM llm_models WHERE id = $1 AND org_id = $2";
	api_delete(rq, q, "mod", "model_id", "The model is still in use",
		   NOT_FOUND);
}
