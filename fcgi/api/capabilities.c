/*
 * capabilities: the read-only catalogue of built-in capabilities
 * (GET /capabilities, GET /capabilities/{id}). It is compiled in
 * (catalog.h); the list adds, after it, the organization's active MCP
 * servers (mcp_servers.c: ref mcp:<mcp_id>, "is_mcp": true).
 */
#include "api.h"
#include "catalog.h"
#include "json.h"

#include <ctype.h>
#include <string.h>

/* Case-insensitive (ASCII) substring test; strcasestr is a GNU extension
 * the rest of the code does not enable. An empty needle matches. */
static int contains_ci(const char *hay, const char *needle)
{
	size_t i, n = strlen(needle);
	for (; *hay; hay++) {
		for (i = 0; i < n && hay[i]; i++)
			if (tolower((unsigned char)hay[i]) !=
			    tolower((unsigned char)needle[i]))
				break;
		if (i == n)
			return 1;
	}
	return n == 0;
}

static int matches(const struct catalog_cap *c, const char *search)
{
	return !search || contains_ci(c->id, search) ||
	       contains_ci(c->name, search) ||
	       contains_ci(c->description, search);
}

void h_capabilities_list(struct req *rq)
{
	struct buf out = BUF_INIT;
	struct apierr e;
	const struct catalog_cap *all;
	const char *search = req_query(rq, "search");
	struct json_object *mcp = NULL;
	long offset, limit, total = 0, shown = 0;
	size_t i, n;

	if (req_page(rq, &offset, &limit, &e)) {
		res_apierr(rq, &e);
		return;
	}
	if (api_mcp_capabilities(rq, search, &mcp))
		return;
	all = catalog_all(&n);
	buf_init(&out, 4096);
	buf_adds(&out, "{\"data\":[");
	for (i = 0; i < n; i++) {
		if (!matches(&all[i], search))
			continue;
		if (total++ < offset || shown >= limit)
			continue;
		if (shown++)
			buf_addch(&out, ',');
		catalog_append_json(&all[i], &out);
	}
	for (i = 0; i < json_object_array_length(mcp); i++) {
		if (total++ < offset || shown >= limit)
			continue;
		if (shown++)
			buf_addch(&out, ',');
		jx_append(&out, json_object_array_get_idx(mcp, i));
	}
	json_object_put(mcp);
	buf_addf(&out, "],\"total\":%ld,\"offset\":%ld,\"limit\":%ld}", total,
		 offset, limit);
	res_json(rq, 200, out.data, out.len);
	buf_release(&out);
}

void h_capabilities_get(struct req *rq)
{
	struct buf out = BUF_INIT;
	const struct catalog_cap *c =
		rq->ncap ? catalog_find(rq->cap[0]) : NULL;

	if (!c) {
		res_error(rq, 404, "not_found", "Capability not found");
		return;
	}
	buf_init(&out, 4096);
	catalog_append_json(c, &out);
	res_json(rq, 200, out.data, out.len);
	buf_release(&out);
}
