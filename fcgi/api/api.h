/*
 * api: the REST program's handlers and the route table that maps
 * (method, path) to them.
 *
 * A handler is a plain function of a request (http.h): the accept loop
 * (main.c) has already matched the route, checked the body size and
 * Content-Type, and authenticated the caller (rq->org, rq->user, rq->key
 * hold the caller's 32-hex uuids), so a handler only validates its own
 * input, runs its queries scoped by rq->org, and answers with one res_*
 * call. Handlers never keep anything between requests.
 */
#ifndef EVR_API_H
#define EVR_API_H

#include <json-c/json.h>
#include <libpq-fe.h>

#include "apierr.h"
#include "buf.h"
#include "db.h"
#include "http.h"

typedef void (*handler_fn)(struct req *rq);

enum route_flags {
	ROUTE_NOAUTH = 1 << 0,    /* /health, the OpenAPI document */
	ROUTE_JSON_BODY = 1 << 1, /* a JSON object body; empty = {} */
	ROUTE_ANY_BODY = 1 << 2,  /* raw bytes of any Content-Type */
	ROUTE_FS_BODY = 1 << 3,   /* the file routes' limit: fs_body_max() */
	/* a raw (not JSON) body of API_STREAM_MIN bytes or more is not read
	 * before the handler, which reads it with api_body_read() */
	ROUTE_STREAM_BODY = 1 << 4,
};
#define API_STREAM_MIN (256 * 1024)

/* (common.c) Up to n more bytes of a streamed body (rq->body_in) into p;
 * 0 at its end, -1 on an error. What the handler leaves unread is read
 * and dropped after it. */
int api_body_read(void *rq, char *p, int n);

/* Who may call a route (ARCHITECTURE 2.2 plus key roles, sql/010): every route
 * names one; R_UNSET (a route added without a rule) is refused to all
 * and fails the unit test that walks the table. */
enum route_role {
	R_UNSET = 0,
	R_PUBLIC, /* no key */
	R_MEMBER, /* any valid key */
	R_ADMIN,  /* an admin key */
};

struct route {
	const char *method;
	/* "/api/v1/sessions/{session_id}/cancel": "{name}" captures one
	 * segment, a final "{name*}" the rest of the path (may be empty) */
	const char *pattern;
	handler_fn fn;
	unsigned flags;
	size_t max_body;     /* 0 = the default 1 MiB */
	const char *summary; /* for the OpenAPI document */
	enum route_role role;
};

#define API_MAX_BODY (1024 * 1024)

/* The route table, in match order. */
const struct route *router_table(size_t *n);
/* Match and fill rq->cap. NULL if nothing matches; then, if the path
 * matches under other methods, `allow` gets them ("GET, POST") and the
 * answer is a 405, else a 404. A capture that is not valid
 * percent-encoded UTF-8 also yields NULL, with *bad_path = its number + 1
 * and rq->cap[0] = the pattern (for router_cap_name), a 400. */
const struct route *router_match(struct req *rq, struct buf *allow,
				 int *bad_path);

void router_cap_name(const char *pat, size_t k, char *out, size_t n);
/* May the authenticated caller (rq->role) use the route? 1, or 0 with a
 * 403 `forbidden` naming the role needed sent. */
int router_allowed(const struct route *rt, struct req *rq);
/* "admin", "member", "public" (the OpenAPI document's x-role). */
const char *router_role_name(enum route_role r);

/* --- common.c: helpers shared by the handlers ----------------------------*/

/* The request body as a JSON object (owned by the caller), or NULL with
 * the error already sent. An empty body is an empty object. */
struct json_object *api_body(struct req *rq);
/* The same, but the top-level string member `bytes_field` (stored as
 * bytes, not text) may hold what text columns refuse. */
struct json_object *api_body_bytes(struct req *rq, const char *bytes_field);
/* Run a query whose single column of row 0 is a JSON document and send
 * it with `status`; no row is a 404 with `what` ("Session not found"). */
void api_send_json_row(struct req *rq, int status, const char *what,
		       const char *sql, int n, const char *const *params);
/* ?offset= and ?limit= (req_page) as the text of query parameters. 0, or
 * -1 with the 400 sent. */
struct api_page {
	char offset[24], limit[24];
};
int api_page_params(struct req *rq, struct api_page *pg);
/* A paginated list (?offset=&limit=, 400 when malformed): sql takes $1 =
 * organization, $2 = offset, $3 = limit and returns the envelope as one
 * JSON row. */
void api_send_page(struct req *rq, const char *sql);
/* The end of a list query that answers one JSON row, {data, total,
 * offset, limit}: the query starts "WITH f AS (SELECT x AS r FROM ...), "
 * (every match, as the row-typed column r); fn(r) is a row's JSON; off
 * and lim name the parameters ("$2"). Oldest first. */
#define API_PAGE_SQL(fn, off, lim)                                             \
	"pg AS (SELECT r FROM f ORDER BY (r).created_at, (r).id "              \
	"  OFFSET " off " LIMIT " lim ") "                                     \
	"SELECT json_build_object('data', coalesce((SELECT json_agg(" fn       \
	"(r) ORDER BY (r).created_at, (r).id) FROM pg), '[]'), "               \
	"  'total', (SELECT count(*) FROM f), "                                \
	"  'offset', " off "::bigint, 'limit', " lim "::bigint)"
/* Parse a path or query id with prefix; on failure sends 400 naming
 * `name` and returns -1. */
int api_id(struct req *rq, const char *value, const char *prefix,
	   const char *name, char hex[33]);
/* Send a failed query as a 500 (or 503 when the database is down). */
void api_db_error(struct req *rq);
/* Build a PostgreSQL text[] literal from a JSON array of strings
 * (validated by the caller) into b. */
void api_pg_text_array(struct buf *b, struct json_object *arr);
/* Validate `tags`: at most 32 strings of at most 64 bytes. */
int api_check_tags(struct json_object *tags, struct apierr *e);
/* ?tags=a,b&tags=c (repeated and/or comma-separated) as a text[] literal
 * in lit, with the limits of body tags: 1 = tags given, 0 = none, -1 =
 * 400 sent. Lists filter on rows that carry all of them. */
int api_tag_filter(struct req *rq, struct buf *lit);
/* Validate a `[{ref, config}]` capability list against the catalogue and
 * each capability's config schema; writes the normalized list (config
 * defaults to {}) as JSON into out. */
int api_check_capabilities(struct json_object *caps, const char *field,
			   struct buf *out, struct apierr *e);
/* Resolve a body id field (e.g. "model_id" with prefix "mod") to a row of
 * the caller's organization in `table`; any miss, malformed or not, is a
 * 404 naming the field. Returns 0 with hex filled, or -1 (sent). */
int api_ref(struct req *rq, const char *value, const char *prefix,
	    const char *field, const char *table, char hex[33]);

/* DELETE of the row named by rq->cap[0] (an id with prefix, parameter
 * `name`): sql takes $1 = id, $2 = organization. 204; 404 with not_found;
 * 409 with in_use when a foreign key still points at it. */
void api_delete(struct req *rq, const char *sql, const char *prefix,
		const char *name, const char *in_use, const char *not_found);

/* The server key that seals provider API keys (loaded once from the
 * `server_key_file` setting). NULL if it cannot be loaded (logged). */
const unsigned char *api_server_key(void);

/* --- message_input.c: the body of POST .../messages, no database -------*/

struct message_input {
	struct buf content;  /* normalized parts, a JSON array */
	struct buf controls; /* normalized controls, a JSON object or "" */
	struct buf images;   /* image_file ids, 32-hex, comma-separated */
	size_t nimages;
	char model[33]; /* controls.model_id, 32-hex, if has_model */
	int has_model;
	struct json_object *metadata; /* borrowed from the body */
};

void message_input_init(struct message_input *in);
void message_input_release(struct message_input *in);
/* 0, or -1 with a 400 (or a 404 for a malformed model id) in e. */
int message_input_parse(struct json_object *body, struct message_input *in,
			struct apierr *e);

/* --- idempotency.c: Idempotency-Key (ARCHITECTURE 2.2)
 * ------------------------*/

/* 400 (sent) and -1 if the header is present but malformed. */
int idem_check_header(struct req *rq);
/* In the effect's transaction, before the effect: 0 = go on (no key, or
 * the key is ours now), 1 = answered already (replay or 422; roll back),
 * -1 = database error (sent; roll back). */
int idem_begin(struct req *rq);
/* After a 2xx response was built in rq, store it with the key (same
 * transaction). 0, or -1 on a database error. */
int idem_finish(struct req *rq);

/* --- tool_defs.c: `tools` and `approval` (ARCHITECTURE 3.9) ----------*/

/* Validate a `tools` list (client-side tools, per-tool policies); its JSON
 * into out. 0, or -1 with a 400 in e. */
int api_check_tools(struct json_object *tools, struct buf *out,
		    struct apierr *e);
/* `approval` of body: *given, and *mode (NULL for null). 0 or -1 (400). */
int api_check_approval(struct json_object *body, const char **mode, int *given,
		       struct apierr *e);
/* A client-side tool of tools_json named as one of another layer: the
 * agent's and the harness's (hex ids, or NULL: those of `session`, the
 * harness also the agent's). 400 sent, -1; 0 when none clashes (or
 * tools_json is NULL). */
int api_tools_clash(struct req *rq, const char *tools_json, const char *agent,
		    const char *harness, const char *session);

/* --- profile.c: what harnesses and agents share -------------------------*/

/* The shared fields of a harness or agent body, validated. Strings borrow
 * from the body (NULL = not given); caps and tags own their text (a JSON
 * array and a text[] literal; length 0 = not given) until
 * api_profile_release(). has_model says default_model_id was given;
 * model_hex is then "" for an explicit null (clear it). */
struct profile {
	const char *name, *display_name, *description, *system_prompt;
	int has_model;
	char model_hex[33];
	struct buf caps, tags;
	struct buf mcp;   /* mcpServers, normalized (length 0 = not given) */
	struct buf tools; /* the tools list (JSON; length 0 = not given) */
	const char *approval; /* NULL: not given or null */
	int has_approval;
};

void api_profile_init(struct profile *p);
void api_profile_release(struct profile *p);
/* The 400 checks (name is required when `create`); 0 or -1 with e set. */
int api_profile_check(struct json_object *body, int create, struct profile *p,
		      struct apierr *e);
/* Resolve default_model_id to a model of the org: 0, or -1 (404 sent). */
int api_profile_refs(struct req *rq, struct json_object *body,
		     struct profile *p);
/* The profile's fields as query parameters, in this order: name,
 * display_name, description, system_prompt, then (PATCH: `patch`)
 * whether default_model_id was given, then default_model_id (NULL: none
 * or null). Returns how many it set (5, or 6). */
int api_profile_params(const struct profile *pf, int patch, const char **p);
/* capabilities and tags as query parameters (NULL when not given). */
void api_profile_lists(const struct profile *pf, const char **p);
/* mcpServers as a query parameter (jsonb text; NULL when not given). */
const char *api_profile_mcp(const struct profile *pf);
/* tools (NULL when not given), whether approval was given, approval:
 * three query parameters. */
void api_profile_tools(const struct profile *pf, const char **p);
/* Split the {id_or_name} capture: an id with `prefix` fills hex (name
 * NULL; malformed: 400 sent, -1), anything else is a name (hex ""). */
int api_id_or_name(struct req *rq, const char *prefix, char hex[33],
		   const char **name);
/* The {id_or_name} target as the parameters $1..$3 of a query on the
 * caller's resource (org, id or NULL, name or NULL), hex the id's
 * storage; 0, or -1 with the 400 sent. */
int api_target_params(struct req *rq, const char *prefix, char hex[33],
		      const char **p);
/* ?search= (at most 256 bytes; NULL if absent), ?include_archived= and
 * the page; 0, or -1 with the 400 sent. */
int api_list_params(struct req *rq, const char **search, int *archived,
		    struct api_page *pg);
/* Is key present in body with the value null? */
int api_is_null(struct json_object *body, const char *key);
/* Answer a failed write of a named resource: a duplicate name is a 409
 * `conflict`, a reference deleted meanwhile a 404, else api_db_error. */
void api_write_error(struct req *rq, const char *what);

/* --- models.c: the editable fields of a model ----------------------------*/

/* Borrowed strings (NULL = not given); caps a text[] literal (length 0 =
 * not given); context_tokens decimal ("" = not given); enabled "true" /
 * "false" or NULL. */
struct model_input {
	const char *model_id, *display_name, *enabled;
	struct buf caps;
	char context_tokens[24];
};

void api_model_input_init(struct model_input *m);
void api_model_input_release(struct model_input *m);
/* The 400 checks (model_id is required when `create`). 0 or -1, e set. */
int api_model_check(struct json_object *body, int create, struct model_input *m,
		    struct apierr *e);
/* PATCH of a model (prefix "mod", status 200) or a new model of a
 * provider (prefix "prv", create, 201): sql takes $1 = the path id, $2 =
 * organization, $3..$7 = model_id, display_name, capabilities,
 * context_tokens, enabled (NULL = unchanged or default) and returns the
 * model's JSON. */
void api_model_write(struct req *rq, const char *sql, const char *prefix,
		     int create, int status);
/* Send a page of the org's models ({data,total,offset,limit}, ?offset=
 * &limit=), all or one provider's (provider_hex, NULL = all). With
 * provider_required a provider that is not the org's is a 404, else an
 * empty page. */
void api_models_page(struct req *rq, const char *provider_hex,
		     int provider_required);

/* --- quota.c: per-organization limits -----------------------------------*/

enum org_quota { ORG_SESSIONS, ORG_EVENTS, ORG_STORAGE };
/* The limit from the configuration (storage in bytes). */
long long api_org_limit(enum org_quota q);
/* Would `adding` more (sessions: 1, events: 1 for "any more", bytes)
 * pass the organization's limit? 0 = no; -1 = it would (a 429 or 413
 * naming the limit sent) or the query failed (sent). */
int api_org_quota(struct req *rq, enum org_quota q, long long adding);

/* --- handlers, one file per resource -------------------------------------*/
void h_health(struct req *rq);
/* health.c: fail the turns no runner is alive to run (no_runner). */
void api_fail_unclaimed(struct req *rq);
void h_metrics(struct req *rq);

void h_me(struct req *rq);
void h_keys_list(struct req *rq);
void h_keys_create(struct req *rq);
void h_keys_delete(struct req *rq);

void h_harnesses_list(struct req *rq);
void h_harnesses_create(struct req *rq);
void h_harnesses_get(struct req *rq);
void h_harnesses_update(struct req *rq);
void h_harnesses_delete(struct req *rq);

void h_agents_list(struct req *rq);
void h_agents_create(struct req *rq);
void h_agents_get(struct req *rq);
void h_agents_update(struct req *rq);
void h_agents_delete(struct req *rq);

void h_providers_list(struct req *rq);
void h_providers_create(struct req *rq);
void h_providers_get(struct req *rq);
void h_providers_update(struct req *rq);
void h_providers_delete(struct req *rq);
void h_provider_models_list(struct req *rq);
void h_provider_models_create(struct req *rq);

void h_models_list(struct req *rq);
void h_models_get(struct req *rq);
void h_models_update(struct req *rq);
void h_models_delete(struct req *rq);

void h_capabilities_list(struct req *rq);

/* mcp_servers.c: the resource, and the checks of MCP references */
void h_mcp_servers_list(struct req *rq);
void h_mcp_servers_create(struct req *rq);
void h_mcp_servers_get(struct req *rq);
void h_mcp_servers_update(struct req *rq);
void h_mcp_servers_delete(struct req *rq);
/* An MCP endpoint URL (absolute http(s), a host, no blanks or controls);
 * `field` names it in the 400. */
int api_mcp_check_url(const char *u, const char *field, struct apierr *e);
/* Headers {name: value}: token names (not one the transport sets),
 * string values without control characters (CR, LF, NUL ...). */
int api_mcp_check_headers(struct json_object *h, const char *field,
			  struct apierr *e);
/* The inline `mcpServers` map {name: {url, headers?}}, normalized into
 * out (a JSON object). 0, or -1 with the 400 in e. */
int api_mcp_check_inline(struct json_object *map, struct buf *out,
			 struct apierr *e);
/* The `mcp:<mcp_id>` refs of a normalized capability list (JSON text)
 * must name active servers of the caller's organization: 0, or -1 with
 * the 400 (or a database error) sent. */
int api_mcp_check_refs(struct req *rq, const struct buf *caps);
/* The organization's active servers as capability objects (?search=
 * applied): 0 with *out a JSON array (owned), or -1 (answered). */
int api_mcp_capabilities(struct req *rq, const char *search,
			 struct json_object **out);
void h_capabilities_get(struct req *rq);

void h_sessions_list(struct req *rq);
void h_sessions_create(struct req *rq);
void h_sessions_get(struct req *rq);
/* session_json.c: the SELECT of a session's columns ($1 id, $2 org; run
 * it with binary results) and the Session object of its one row into b;
 * -1 if the row is not of that shape. */
extern const char session_json_sql[];
int session_json(const PGresult *r, struct buf *b);
void h_sessions_update(struct req *rq);
void h_sessions_delete(struct req *rq);
void h_sessions_chat(struct req *rq);
void h_sessions_cancel(struct req *rq);
/* tool_answers.c: answers to a waiting turn (ARCHITECTURE 3.9) */
void h_tool_results(struct req *rq);
void h_tool_approvals(struct req *rq);

void h_messages_create(struct req *rq);
void h_messages_list(struct req *rq);

void h_fs_root(struct req *rq);
void h_fs_get(struct req *rq);
void h_fs_create(struct req *rq);
void h_fs_put(struct req *rq);
void h_fs_delete(struct req *rq);
void h_fs_download(struct req *rq);
void h_fs_stat(struct req *rq);
void h_fs_move(struct req *rq);
void h_fs_copy(struct req *rq);
void h_fs_grep(struct req *rq);
/* images.c: an image is at most 20 MiB; the upload body (multipart) at
 * most 21 MiB, as nginx's limit for the route */
#define IMAGES_MAX_BYTES (20 * 1024 * 1024)
#define IMAGES_MAX_BODY (21 * 1024 * 1024)
void h_images_create(struct req *rq);
void h_images_list(struct req *rq);
void h_images_get(struct req *rq);
void h_images_content(struct req *rq);
void h_images_delete(struct req *rq);

#endif
