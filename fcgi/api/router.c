/*
 * router: the route table and the matcher. Patterns are literal segments,
 * "{name}" (one segment) and a trailing "{name*}" (the rest of the path);
 * the names are those of the OpenAPI document and of error messages. Matching
 * is on the raw path (REQUEST_URI without the query), so an encoded "/" inside
 * a segment stays inside it; captures are percent-decoded afterwards.
 */
#include "api.h"

#include <stdio.h>
#include <string.h>

#define V1 "/api/v1"

/* Each route's last column is who may call it (enum route_role in api.h):
 * R_PUBLIC without a key; R_MEMBER for any key: sessions, messages,
 * events, files, images, reading agents, harnesses, models and
 * capabilities, the caller and its own keys (keys.c narrows those);
 * R_ADMIN for the rest: writing agents, harnesses and models, and LLM
 * providers (they hold the organization's secrets); MCP servers are
 * read by members (their secrets never leave), written by admins. */

static const struct route routes[] = {
	{"GET", "/health", h_health, ROUTE_NOAUTH, 0, "Liveness and readiness",
	 R_PUBLIC},
	{"GET", "/metrics", h_metrics, ROUTE_NOAUTH, 0,
	 "Operator metrics (Prometheus text format; loopback only)", R_PUBLIC},

	{"GET", V1 "/auth/me", h_me, 0, 0, "The caller", R_MEMBER},
	{"GET", V1 "/auth/api-keys", h_keys_list, 0, 0, "List API keys",
	 R_MEMBER},
	{"POST", V1 "/auth/api-keys", h_keys_create, ROUTE_JSON_BODY, 0,
	 "Create an API key (shown once)", R_MEMBER},
	{"DELETE", V1 "/auth/api-keys/{key_id}", h_keys_delete, 0, 0,
	 "Revoke an API key", R_MEMBER},

	{"GET", V1 "/harnesses", h_harnesses_list, 0, 0, "List harnesses",
	 R_MEMBER},
	{"POST", V1 "/harnesses", h_harnesses_create, ROUTE_JSON_BODY, 0,
	 "Create a harness", R_ADMIN},
	{"GET", V1 "/harnesses/{harness_id_or_name}", h_harnesses_get, 0, 0,
	 "Get a harness by id or name", R_MEMBER},
	{"PATCH", V1 "/harnesses/{harness_id_or_name}", h_harnesses_update,
	 ROUTE_JSON_BODY, 0, "Update a harness", R_ADMIN},
	{"DELETE", V1 "/harnesses/{harness_id_or_name}", h_harnesses_delete, 0,
	 0, "Archive a harness", R_ADMIN},

	{"GET", V1 "/agents", h_agents_list, 0, 0, "List agents", R_MEMBER},
	{"POST", V1 "/agents", h_agents_create, ROUTE_JSON_BODY, 0,
	 "Create an agent", R_ADMIN},
	{"GET", V1 "/agents/{agent_id_or_name}", h_agents_get, 0, 0,
	 "Get an agent by id or name", R_MEMBER},
	{"PATCH", V1 "/agents/{agent_id_or_name}", h_agents_update,
	 ROUTE_JSON_BODY, 0, "Update an agent", R_ADMIN},
	{"DELETE", V1 "/agents/{agent_id_or_name}", h_agents_delete, 0, 0,
	 "Archive an agent", R_ADMIN},

	{"GET", V1 "/llm-providers", h_providers_list, 0, 0,
	 "List LLM providers", R_ADMIN},
	{"POST", V1 "/llm-providers", h_providers_create, ROUTE_JSON_BODY, 0,
	 "Create an LLM provider", R_ADMIN},
	{"GET", V1 "/llm-providers/{provider_id}", h_providers_get, 0, 0,
	 "Get an LLM provider", R_ADMIN},
	{"PATCH", V1 "/llm-providers/{provider_id}", h_providers_update,
	 ROUTE_JSON_BODY, 0, "Update an LLM provider", R_ADMIN},
	{"DELETE", V1 "/llm-providers/{provider_id}", h_providers_delete, 0, 0,
	 "Delete an LLM provider and its models", R_ADMIN},
	{"GET", V1 "/llm-providers/{provider_id}/models",
	 h_provider_models_list, 0, 0, "List a provider's models", R_ADMIN},
	{"POST", V1 "/llm-providers/{provider_id}/models",
	 h_provider_models_create, ROUTE_JSON_BODY, 0,
	 "Add a model to a provider", R_ADMIN},

	{"GET", V1 "/mcp-servers", h_mcp_servers_list, 0, 0, "List MCP servers",
	 R_MEMBER},
	{"POST", V1 "/mcp-servers", h_mcp_servers_create, ROUTE_JSON_BODY, 0,
	 "Register an MCP server", R_ADMIN},
	{"GET", V1 "/mcp-servers/{server_id}", h_mcp_servers_get, 0, 0,
	 "Get an MCP server", R_MEMBER},
	{"PATCH", V1 "/mcp-servers/{server_id}", h_mcp_servers_update,
	 ROUTE_JSON_BODY, 0, "Update an MCP server", R_ADMIN},
	{"DELETE", V1 "/mcp-servers/{server_id}", h_mcp_servers_delete, 0, 0,
	 "Archive an MCP server", R_ADMIN},

	{"GET", V1 "/llm-models", h_models_list, 0, 0, "List models", R_MEMBER},
	{"GET", V1 "/llm-models/{model_id}", h_models_get, 0, 0, "Get a model",
	 R_MEMBER},
	{"PATCH", V1 "/llm-models/{model_id}", h_models_update, ROUTE_JSON_BODY,
	 0, "Update a model", R_ADMIN},
	{"DELETE", V1 "/llm-models/{model_id}", h_models_delete, 0, 0,
	 "Delete a model", R_ADMIN},
	/* the later upstream document's names for the two above */
	{"GET", V1 "/providers", h_providers_list, 0, 0,
	 "List LLM providers (alias)", R_ADMIN},
	{"POST", V1 "/providers", h_providers_create, ROUTE_JSON_BODY, 0,
	 "Create an LLM provider (alias)", R_ADMIN},
	{"GET", V1 "/providers/{provider_id}", h_providers_get, 0, 0,
	 "Get an LLM provider (alias)", R_ADMIN},
	{"PATCH", V1 "/providers/{provider_id}", h_providers_update,
	 ROUTE_JSON_BODY, 0, "Update an LLM provider (alias)", R_ADMIN},
	{"DELETE", V1 "/providers/{provider_id}", h_providers_delete, 0, 0,
	 "Delete an LLM provider and its models (alias)", R_ADMIN},
	{"GET", V1 "/providers/{provider_id}/models", h_provider_models_list, 0,
	 0, "List a provider's models (alias)", R_ADMIN},
	{"POST", V1 "/providers/{provider_id}/models", h_provider_models_create,
	 ROUTE_JSON_BODY, 0, "Add a model to a provider (alias)", R_ADMIN},
	{"GET", V1 "/models", h_models_list, 0, 0, "List models (alias)",
	 R_MEMBER},
	{"GET", V1 "/models/{model_id}", h_models_get, 0, 0,
	 "Get a model (alias)", R_MEMBER},
	{"PATCH", V1 "/models/{model_id}", h_models_update, ROUTE_JSON_BODY, 0,
	 "Update a model (alias)", R_ADMIN},
	{"DELETE", V1 "/models/{model_id}", h_models_delete, 0, 0,
	 "Delete a model (alias)", R_ADMIN},

	{"GET", V1 "/capabilities", h_capabilities_list, 0, 0,
	 "List built-in capabilities", R_MEMBER},
	{"GET", V1 "/capabilities/{capability_id}", h_capabilities_get, 0, 0,
	 "Get a capability", R_MEMBER},

	{"GET", V1 "/sessions", h_sessions_list, 0, 0, "List sessions",
	 R_MEMBER},
	{"POST", V1 "/sessions", h_sessions_create, ROUTE_JSON_BODY, 0,
	 "Create a session", R_MEMBER},
	{"POST", V1 "/sessions/chat", h_sessions_chat, ROUTE_JSON_BODY, 0,
	 "The caller's global chat session", R_MEMBER},
	{"GET", V1 "/sessions/{session_id}", h_sessions_get, 0, 0,
	 "Get a session", R_MEMBER},
	{"PATCH", V1 "/sessions/{session_id}", h_sessions_update,
	 ROUTE_JSON_BODY, 0, "Update a session's title and tags", R_MEMBER},
	{"DELETE", V1 "/sessions/{session_id}", h_sessions_delete, 0, 0,
	 "Delete a session", R_MEMBER},
	{"POST", V1 "/sessions/{session_id}/cancel", h_sessions_cancel,
	 ROUTE_JSON_BODY, 0, "Cancel the running turn", R_MEMBER},
	{"POST", V1 "/sessions/{session_id}/tool-results", h_tool_results,
	 ROUTE_JSON_BODY, 0, "Submit results of client-side tool calls",
	 R_MEMBER},
	{"POST", V1 "/sessions/{session_id}/tool-approvals", h_tool_approvals,
	 ROUTE_JSON_BODY, 0, "Approve or deny tool calls", R_MEMBER},
	{"POST", V1 "/sessions/{session_id}/messages", h_messages_create,
	 ROUTE_JSON_BODY, 0, "Send a message (starts a turn)", R_MEMBER},
	{"GET", V1 "/sessions/{session_id}/messages", h_messages_list, 0, 0,
	 "List the conversation", R_MEMBER},

	/* the actions under /fs/_/ before the catch-all {path*} */
	{"GET", V1 "/sessions/{session_id}/fs", h_fs_root, 0, 0,
	 "List the root of the session file system", R_MEMBER},
	{"POST", V1 "/sessions/{session_id}/fs/_/stat", h_fs_stat,
	 ROUTE_JSON_BODY, 0, "Stat a file or directory", R_MEMBER},
	{"POST", V1 "/sessions/{session_id}/fs/_/move", h_fs_move,
	 ROUTE_JSON_BODY, 0, "Move or rename a file or directory", R_MEMBER},
	{"POST", V1 "/sessions/{session_id}/fs/_/copy", h_fs_copy,
	 ROUTE_JSON_BODY, 0, "Copy a file or directory", R_MEMBER},
	{"POST", V1 "/sessions/{session_id}/fs/_/grep", h_fs_grep,
	 ROUTE_JSON_BODY, 0, "Search the session's text files", R_MEMBER},
	{"GET", V1 "/sessions/{session_id}/fs/_/download/{path*}",
	 h_fs_download, 0, 0, "Download a file's raw bytes", R_MEMBER},
	{"GET", V1 "/sessions/{session_id}/fs/{path*}", h_fs_get, 0, 0,
	 "Read a file, or list a directory", R_MEMBER},
	{"POST", V1 "/sessions/{session_id}/fs/{path*}", h_fs_create,
	 ROUTE_ANY_BODY | ROUTE_FS_BODY | ROUTE_STREAM_BODY, 0,
	 "Create a file (JSON or raw bytes) or a directory", R_MEMBER},
	{"PUT", V1 "/sessions/{session_id}/fs/{path*}", h_fs_put,
	 ROUTE_ANY_BODY | ROUTE_FS_BODY | ROUTE_STREAM_BODY, 0,
	 "Create or replace a file", R_MEMBER},
	{"DELETE", V1 "/sessions/{session_id}/fs/{path*}", h_fs_delete, 0, 0,
	 "Delete a file or directory", R_MEMBER},
	{"GET", V1 "/images", h_images_list, 0, 0, "List images", R_MEMBER},
	{"POST", V1 "/images", h_images_create, ROUTE_ANY_BODY, IMAGES_MAX_BODY,
	 "Upload an image (multipart/form-data: file, session_id)", R_MEMBER},
	{"GET", V1 "/images/{image_id}", h_images_get, 0, 0,
	 "Get an image's metadata", R_MEMBER},
	{"GET", V1 "/images/{image_id}/content", h_images_content, 0, 0,
	 "Download an image's bytes", R_MEMBER},
	{"DELETE", V1 "/images/{image_id}", h_images_delete, 0, 0,
	 "Delete an image", R_MEMBER},
};

const struct route *router_table(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}

/* Match path against pattern; capture raw segment spans. Returns 1 on a
 * match. */
static int match(const char *pat, const char *path, const char **cs, size_t *cl,
		 size_t *nc)
{
	*nc = 0;
	while (*pat) {
		if (pat[0] == '{') {
			const char *close = strchr(pat, '}');
			const char *slash = strchr(path, '/');
			size_t len =
				slash ? (size_t)(slash - path) : strlen(path);
			if (!close || *nc == REQ_MAX_CAPS)
				return 0;
			if (close[-1] == '*') {
				cs[*nc] = path;
				cl[(*nc)++] = strlen(path);
				return close[1] == '\0';
			}
			if (len == 0)
				return 0;
			cs[*nc] = path;
			cl[(*nc)++] = len;
			path += len;
			pat = close + 1;
			continue;
		}
		if (*pat != *path)
			return 0;
		pat++;
		path++;
	}
	return *path == '\0';
}

/* The name of capture number k of pattern pat, into out. */
void router_cap_name(const char *pat, size_t k, char *out, size_t n)
{
	const char *p = pat;
	out[0] = '\0';
	while ((p = strchr(p, '{'))) {
		const char *close = strchr(p, '}');
		if (!close)
			return;
		if (k-- == 0) {
			size_t len = (size_t)(close - p - 1);
			if (len && p[len] == '*')
				len--;
			snprintf(out, n, "%.*s", (int)len, p + 1);
			return;
		}
		p = close;
	}
}

const struct route *router_match(struct req *rq, struct buf *allow,
				 int *bad_path)
{
	const char *cs[REQ_MAX_CAPS];
	size_t cl[REQ_MAX_CAPS], nc, i, j;
	const struct route *hit = NULL;
	/* HEAD is answered like GET (nginx drops the body) */
	const char *method = strcmp(rq->method, "HEAD") ? rq->method : "GET";

	*bad_path = 0;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (!match(routes[i].pattern, rq->path, cs, cl, &nc))
			continue;
		if (!strcmp(routes[i].method, method)) {
			if (!hit) {
				hit = &routes[i];
				for (j = 0; j < nc; j++) {
					size_t dl;
					char *d = http_decode(rq->arena, cs[j],
							      cl[j], 0, &dl);
					/* a bad escape, an encoded NUL, or
					 * bytes that are not UTF-8 */
					if (!d || strlen(d) != dl ||
					    !http_utf8_ok(d)) {
						*bad_path = (int)j + 1;
						rq->cap[0] = routes[i].pattern;
						return NULL;
					}
					rq->cap[j] = d;
				}
				rq->ncap = nc;
			}
		} else if (allow && !strstr(allow->data ? allow->data : "",
					    routes[i].method)) {
			if (allow->len)
				buf_adds(allow, ", ");
			buf_adds(allow, routes[i].method);
		}
	}
	if (hit && allow)
		buf_reset(allow);
	return hit;
}

const char *router_role_name(enum route_role r)
{
	switch (r) {
	case R_PUBLIC:
		return "public";
	case R_MEMBER:
		return "member";
	case R_ADMIN:
		return "admin";
	default:
		return "unset";
	}
}

int router_allowed(const struct route *rt, struct req *rq)
{
	if (rt->role == R_PUBLIC || (rt->role == R_MEMBER && rq->role[0]) ||
	    (rt->role == R_ADMIN && !strcmp(rq->role, "admin")))
		return 1;
	if (rt->role == R_UNSET)
		res_error(rq, 403, "forbidden",
			  "%s %s has no access rule; refused to every key",
			  rt->method, rt->pattern);
	else
		res_error(rq, 403, "forbidden",
			  "This route needs an API key with the role '%s'; "
			  "this key's role is '%s'",
			  router_role_name(rt->role), rq->role);
	return 0;
}
