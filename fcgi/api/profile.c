/*
 * profile: what harnesses and agents have in common. Both are a named
 * bundle of prompt, default model, capabilities and tags, looked up by id
 * or by name and listed with ?search=; one validator keeps their limits
 * and error messages identical.
 */
#include "api.h"
#include "ids.h"
#include "json.h"

#include <string.h>

#define NAME_MAX_LEN 64
#define LABEL_MAX_LEN 512
#define PROMPT_MAX_LEN 100000
#define SEARCH_MAX_LEN 256

void api_profile_init(struct profile *p)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->caps, 0);
	buf_init(&p->tags, 0);
	buf_init(&p->mcp, 0);
	buf_init(&p->tools, 0);
}

void api_profile_release(struct profile *p)
{
	buf_release(&p->caps);
	buf_release(&p->tags);
	buf_release(&p->mcp);
	buf_release(&p->tools);
}

int api_is_null(struct json_object *body, const char *key)
{
	struct json_object *v = NULL;
	return json_object_object_get_ex(body, key, &v) && v == NULL;
}

/* Names appear in URLs ({id_or_name}) and are matched exactly, so they
 * are restricted to a slug; having no '_' they never look like an id. */
static int check_slug(const char *s, size_t n, struct apierr *e)
{
	if (n == 0 || n > NAME_MAX_LEN)
		return apierr_set(e, 400, "validation_error",
				  "name: must be 1 to %d bytes", NAME_MAX_LEN);
	/* strspn also stops at an embedded NUL ("a\u0000b") */
	if (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
		return apierr_field(e, "name",
				    "only lowercase letters, digits and "
				    "hyphens are allowed");
	return 0;
}

int api_profile_check(struct json_object *body, int create, struct profile *p,
		      struct apierr *e)
{
	struct json_object *caps = NULL, *tags = NULL, *model = NULL, *nm;
	struct json_object *mcp = NULL;
	struct json_object *tools = NULL;

	if (jx_get_str(body, "name", 0, &p->name, e) < 0)
		return -1;
	if (p->name && json_object_object_get_ex(body, "name", &nm) &&
	    check_slug(p->name, (size_t)json_object_get_string_len(nm), e))
		return -1;
	if (!p->name && create)
		return apierr_field(e, "name", "is required");
	if (jx_get_str(body, "display_name", LABEL_MAX_LEN, &p->display_name,
		       e) < 0 ||
	    jx_get_str(body, "description", LABEL_MAX_LEN, &p->description, e) <
		    0 ||
	    jx_get_str(body, "system_prompt", PROMPT_MAX_LEN, &p->system_prompt,
		       e) < 0)
		return -1;
	/* ids in a body are 404s, but a wrong JSON type is still a 400 */
	if (json_object_object_get_ex(body, "default_model_id", &model)) {
		if (model && !json_object_is_type(model, json_type_string))
			return apierr_field(e, "default_model_id",
					    "must be a string or null");
		p->has_model = 1;
	}
	if (json_object_object_get_ex(body, "capabilities", &caps) && caps &&
	    api_check_capabilities(caps, "capabilities", &p->caps, e))
		return -1;
	if (json_object_object_get_ex(body, "mcpServers", &mcp) && mcp &&
	    api_mcp_check_inline(mcp, &p->mcp, e))
		return -1;
	if (json_object_object_get_ex(body, "tags", &tags) && tags) {
		if (api_check_tags(tags, e))
			return -1;
		api_pg_text_array(&p->tags, tags);
	}
	if (json_object_object_get_ex(body, "tools", &tools) && tools &&
	    api_check_tools(tools, &p->tools, e))
		return -1;
	return api_check_approval(body, &p->approval, &p->has_approval, e);
}

int api_profile_refs(struct req *rq, struct json_object *body,
		     struct profile *p)
{
	struct json_object *model = NULL;

	p->model_hex[0] = '\0';
	if (api_mcp_check_refs(rq, &p->caps))
		return -1;
	if (!p->has_model)
		return 0;
	json_object_object_get_ex(body, "default_model_id", &model);
	if (!model)
		return 0;
	return api_ref(rq, json_object_get_string(model), "mod",
		       "default_model_id", "llm_models", p->model_hex);
}

int api_id_or_name(struct req *rq, const char *prefix, char hex[33],
		   const char **name)
{
	const char *v = rq->cap[0];

	hex[0] = '\0';
	*name = NULL;
	if (ids_has_prefix(v, prefix))
		return api_id(rq, v, prefix, "id_or_name", hex);
	*name = v;
	return 0;
}

int api_profile_params(const struct profile *pf, int patch, const char **p)
{
	int n = 0;
	p[n++] = pf->name;
	p[n++] = pf->display_name;
	p[n++] = pf->description;
	p[n++] = pf->system_prompt;
	if (patch)
		p[n++] = pf->has_model ? "true" : "false";
	p[n++] = pf->model_hex[0] ? pf->model_hex : NULL;
	return n;
}

const char *api_profile_mcp(const struct profile *pf)
{
	return pf->mcp.len ? pf->mcp.data : NULL;
}

void api_profile_lists(const struct profile *pf, const char **p)
{
	p[0] = pf->caps.len ? pf->caps.data : NULL;
	p[1] = pf->tags.len ? pf->tags.data : NULL;
}

void api_profile_tools(const struct profile *pf, const char **p)
{
	p[0] = pf->tools.len ? pf->tools.data : NULL;
	p[1] = pf->has_approval ? "true" : "false";
	p[2] = pf->approval;
}

int api_target_params(struct req *rq, const char *prefix, char hex[33],
		      const char **p)
{
	if (api_id_or_name(rq, prefix, hex, &p[2]))
		return -1;
	p[0] = rq->org;
	p[1] = hex[0] ? hex : NULL;
	return 0;
}

int api_list_params(struct req *rq, const char **search, int *archived,
		    struct api_page *pg)
{
	struct apierr e;

	*archived = 0;
	*search = req_query(rq, "search");
	if (*search && strlen(*search) > SEARCH_MAX_LEN) {
		apierr_set(&e, 400, "validation_error",
			   "search: longer than %d bytes", SEARCH_MAX_LEN);
		goto fail;
	}
	if (*search && !**search)
		*search = NULL;
	if (req_query_bool(rq, "include_archived", archived, &e) < 0)
		goto fail;
	return api_page_params(rq, pg);
fail:
	res_apierr(rq, &e);
	return -1;
}

void api_write_error(struct req *rq, const char *what)
{
	if (db_is(rq->db, DB_UNIQUE_VIOLATION))
		res_error(rq, 409, "conflict",
			  "name: an active %s with this name already exists",
			  what);
	else if (db_is(rq->db, DB_FK_VIOLATION))
		res_error(rq, 404, "not_found",
			  "A referenced resource no longer exists");
	else
		api_db_error(rq);
}
