/*
 * router: the route table and the matcher. Patterns are literal segments,
 * "{name}" (one segment) and a trailing "{name*}" (the rest of the path);
 * the names are those of the OpenAPI document and of error messages. Matching is on the
 * raw path (REQUEST_URI without the query), so an encoded "/" inside a
 * segment stays inside it; captures are percent-decoded afterwards.
 */
#include "api.h"

#include <stdio.h>
#include <string.h>

#define V1 "/api/v1"

static const struct route routes[] = {
	{"GET", "/health", h_health, ROUTE_NOAUTH, 0, "Liveness and readiness"},
	{"GET", "/metrics", h_metrics, ROUTE_NOAUTH, 0,
	 "Operator metrics (Prometheus text format; loopback only)"},

	{"GET", V1 "/auth/me", h_me, 0, 0, "The caller"},
	{"GET", V1 "/auth/api-keys", h_keys_list, 0, 0, "List API keys"},
	{"POST", V1 "/auth/api-keys", h_keys_create, ROUTE_JSON_BODY, 0,
	 "Create an API key (shown once)"},
	{"DELETE", V1 "/auth/api-keys/{key_id}", h_keys_delete, 0, 0,
	 "Revoke an API key"},

	{"GET", V1 "/harnesses", h_harnesses_list, 0, 0, "List harnesses"},
	{"POST", V1 "/harnesses", h_harnesses_create, ROUTE_JSON_BODY, 0,
	 "Create a harness"},
	{"GET", V1 "/harnesses/{harness_id_or_name}", h_harnesses_get, 0, 0,
	 "Get a harness by id or name"},
	{"PATCH", V1 "/harnesses/{harness_id_or_name}", h_harnesses_update, ROUTE_JSON_BODY, 0,
	 "Update a harness"},
	{"DELETE", V1 "/harnesses/{harness_id_or_name}", h_harnesses_delete, 0, 0,
	 "Archive a harness"},

	{"GET", V1 "/agents", h_agents_list, 0, 0, "List agents"},
	{"POST", V1 "/agents", h_agents_create, ROUTE_JSON_BODY, 0,
	 "Create an agent"},
	{"GET", V1 "/agents/{agent_id_or_name}", h_agents_get, 0, 0,
	 "Get an agent by id or name"},
	{"PATCH", V1 "/agents/{agent_id_or_name}", h_agents_update, ROUTE_JSON_BODY, 0,
	 "Update an agent"},
	{"DELETE", V1 "/agents/{agent_id_or_name}", h_agents_delete, 0, 0,
	 "Archive an agent"},

	{"GET", V1 "/llm-providers", h_providers_list, 0, 0,
	 "List LLM providers"},
	{"POST", V1 "/llm-providers", h_providers_create, ROUTE_JSON_BODY, 0,
	 "Create an LLM provider"},
	{"GET", V1 "/llm-providers/{provider_id}", h_providers_get, 0, 0,
	 "Get an LLM provider"},
	{"PATCH", V1 "/llm-providers/{provider_id}", h_providers_update, ROUTE_JSON_BODY,
	 0, "Update an LLM provider"},
	{"DELETE", V1 "/llm-providers/{provider_id}", h_providers_delete, 0, 0,
	 "Delete an LLM provider and its models"},
	{"GET", V1 "/llm-providers/{provider_id}/models", h_provider_models_list, 0, 0,
	 "List a provider's models"},
	{"POST", V1 "/llm-providers/{provider_id}/models", h_provider_models_create,
	 ROUTE_JSON_BODY, 0, "Add a model to a provider"},

	{"GET", V1 "/llm-models", h_models_list, 0, 0, "List models"},
	{"GET", V1 "/llm-models/{model_id}", h_models_get, 0, 0, "Get a model"},
	{"PATCH", V1 "/llm-models/{model_id}", h_models_update, ROUTE_JSON_BODY, 0,
	 "Update a model"},
	{"DELETE", V1 "/llm-models/{model_id}", h_models_delete, 0, 0,
	 "Delete a model"},
	/* the later upstream document's names for the two above */
	{"GET", V1 "/providers", h_providers_list, 0, 0,
	 "List LLM providers (alias)"},
	{"POST", V1 "/providers", h_providers_create, ROUTE_JSON_BODY, 0,
	 "Create an LLM provider (alias)"},
	{"GET", V1 "/providers/{provider_id}", h_providers_get, 0, 0,
	 "Get an LLM provider (alias)"},
	{"PATCH", V1 "/providers/{provider_id}", h_providers_update,
	 ROUTE_JSON_BODY, 0, "Update an LLM provider (alias)"},
	{"DELETE", V1 "/providers/{provider_id}", h_providers_delete, 0, 0,
	 "Delete an LLM provider and its models (alias)"},
	{"GET", V1 "/providers/{provider_id}/models", h_provider_models_list,
	 0, 0, "List a provider's models (alias)"},
	{"POST", V1 "/providers/{provider_id}/models", h_provider_models_create,
	 ROUTE_JSON_BODY, 0, "Add a model to a provider (alias)"},
	{"GET", V1 "/models", h_models_list, 0, 0, "List models (alias)"},
	{"GET", V1 "/models/{model_id}", h_models_get, 0, 0,
	 "Get a model (alias)"},
	{"PATCH", V1 "/models/{model_id}", h_models_update, ROUTE_JSON_BODY, 0,
	 "Update a model (alias)"},
	{"DELETE", V1 "/models/{model_id}", h_models_delete, 0, 0,
	 "Delete a model (alias)"},

	{"GET", V1 "/capabilities", h_capabilities_list, 0, 0,
	 "List built-in capabilities"},
	{"GET", V1 "/capabilities/{capability_id}", h_capabilities_get, 0, 0,
	 "Get a capability"},

	{"GET", V1 "/sessions", h_sessions_list, 0, 0, "List sessions"},
	{"POST", V1 "/sessions", h_sessions_create, ROUTE_JSON_BODY, 0,
	 "Create a session"},
	{"POST", V1 "/sessions/chat", h_sessions_chat, ROUTE_JSON_BODY, 0,
	 "The caller's global chat session"},
	{"GET", V1 "/sessions/{session_id}", h_sessions_get, 0, 0, "Get a session"},
	{"PATCH", V1 "/sessions/{session_id}", h_sessions_update, ROUTE_JSON_BODY, 0,
	 "Update a session's title and tags"},
	{"DELETE", V1 "/sessions/{session_id}", h_sessions_delete, 0, 0,
	 "Delete a session"},
	{"POST", V1 "/sessions/{session_id}/cancel", h_sessions_cancel, ROUTE_JSON_BODY,
	 0, "Cancel the running turn"},
	{"POST", V1 "/sessions/{session_id}/messages", h_messages_create,
	 ROUTE_JSON_BODY, 0, "Send a message (starts a turn)"},
	{"GET", V1 "/sessions/{session_id}/messages", h_messages_list, 0, 0,
	 "List the conversation"},

	/* the actions under /fs/_/ before the catch-all {path*} */
	{"GET", V1 "/sessions/{session_id}/fs", h_fs_root, 0, 0,
	 "List the root of the session file system"},
	{"POST", V1 "/sessions/{session_id}/fs/_/stat", h_fs_stat,
	 ROUTE_JSON_BODY, 0, "Stat a file or directory"},
	{"POST", V1 "/sessions/{session_id}/fs/_/move", h_fs_move,
	 ROUTE_JSON_BODY, 0, "Move or rename a file or directory"},
	{"POST", V1 "/sessions/{session_id}/fs/_/copy", h_fs_copy,
	 ROUTE_JSON_BODY, 0, "Copy a file or directory"},
	{"POST", V1 "/sessions/{session_id}/fs/_/grep", h_fs_grep,
	 ROUTE_JSON_BODY, 0, "Search the session's text files"},
	{"GET", V1 "/sessions/{session_id}/fs/_/download/{path*}", h_fs_download,
	 0, 0, "Download a file's raw bytes"},
	{"GET", V1 "/sessions/{session_id}/fs/{path*}", h_fs_get, 0, 0,
	 "Read a file, or list a directory"},
	{"POST", V1 "/sessions/{session_id}/fs/{path*}", h_fs_create,
	 ROUTE_ANY_BODY | ROUTE_FS_BODY, 0,
	 "Create a file (JSON or raw bytes) or a directory"},
	{"PUT", V1 "/sessions/{session_id}/fs/{path*}", h_fs_put,
	 ROUTE_ANY_BODY | ROUTE_FS_BODY, 0, "Create or replace a file"},
	{"DELETE", V1 "/sessions/{session_id}/fs/{path*}", h_fs_delete, 0, 0,
	 "Delete a file or directory"},
	{"GET", V1 "/images", h_images_list, 0, 0, "List images"},
	{"POST", V1 "/images", h_images_create, ROUTE_ANY_BODY, IMAGES_MAX_BODY,
	 "Upload an image (multipart/form-data: file, session_id)"},
	{"GET", V1 "/images/{image_id}", h_images_get, 0, 0,
	 "Get an image's metadata"},
	{"GET", V1 "/images/{image_id}/content", h_images_content, 0, 0,
	 "Download an image's bytes"},
	{"DELETE", V1 "/images/{image_id}", h_images_delete, 0, 0,
	 "Delete an image"},
};

const struct route *router_table(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}

/* Match path against pattern; capture raw segment spans. Returns 1 on a
 * match. */
static int match(const char *pat, const char *path, const char **cs,
		 size_t *cl, size_t *nc)
{
	*nc = 0;
	while (*pat) {
		if (pat[0] == '{') {
			const char *close = strchr(pat, '}');
			const char *slash = strchr(path, '/');
			size_t len = slash ? (size_t)(slash - path)
					   : strlen(path);
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
