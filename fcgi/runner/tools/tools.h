/*
 * tools: the built-in tools the runner executes for the model
 * (ARCHITECTURE 6.2; their descriptions and schemas are in fcgi/lib/catalog.c).
 * A tool runs synchronously on the runner's own database connection, outside
 * any transaction of the event writer, and must finish quickly (the slow,
 * network-bound ones — web_fetch — run on the curl multi instead and are
 * not dispatched here; see web_fetch_new below; bash runs in a sandbox
 * watched by the runner's loop, see virtual_bash.h).
 *
 * A tool never fails the turn: bad arguments, a missing file, a refused
 * address... are returned to the model as the tool's error text.
 */
#ifndef EVR_TOOLS_H
#define EVR_TOOLS_H

#include <curl/curl.h>
#include <json-c/json.h>

#include "buf.h"
#include "db.h"

struct tool_ctx {
	struct db *db;
	const char *org; /* 32-hex uuids */
	const char *session;
	const char *turn;
	/* the effective config of the capability that provides the tool
	 * (borrowed; an empty object when none) */
	struct json_object *config;
	/* an event of the tool's turn (type, data as JSON text), queued
	 * with the turn's own; NULL: the tool writes its events itself */
	void (*emit)(void *arg, const char *type, const char *data);
	void *emit_arg;
};

enum tool_status { TOOL_OK = 0, TOOL_ERROR = 1, TOOL_UNKNOWN = 2 };

/* Run tool `name` with parsed arguments `args` (borrowed; may be an
 * object of any shape: validate it). On TOOL_OK `result` holds the result
 * as a JSON text; on TOOL_ERROR `error` holds a sentence for the model.
 * TOOL_UNKNOWN: no such tool here. */
enum tool_status tools_run(const struct tool_ctx *c, const char *name,
			   struct json_object *args, struct buf *result,
			   struct buf *error);

/* Validate args (borrowed) against tool `name`'s parameters in the
 * catalog: 0, or -1 with a sentence for the model in `error`. tools_run()
 * does this itself; the tools that run elsewhere (web_fetch) call it. */
int tools_check_args(const char *name, struct json_object *args,
		     struct buf *error);

/*
 * web_fetch (fetch_url) runs as a transfer on the runner's curl multi
 * handle, like an LLM call, so a slow site never stalls other turns:
 * web_fetch_new() validates the call and prepares the easy handle (behind
 * the address guard, scope GUARD_FETCH); the caller adds it to its multi
 * handle, and when the transfer ends (or at once, with rc, if it was never
 * added) web_fetch_done() turns the outcome into the tool's result or
 * error. web_fetch_free() removes nothing from the multi handle: the
 * caller does that first.
 *
 * Limits: the capability config's timeout_s (default fetch_timeout_s,
 * 30 s, whole transfer incl. redirects) and max_bytes (default
 * fetch_max_bytes, 1 MiB) of text returned, lowered by the call's own
 * max_bytes; at most 4 x max_bytes (capped at 40 MiB) are downloaded. A
 * longer text is cut and says so ("truncated": true).
 */
struct web_fetch;
struct web_fetch *web_fetch_new(struct json_object *args,
				struct json_object *config, struct buf *error);
CURL *web_fetch_easy(struct web_fetch *f);
enum tool_status web_fetch_done(struct web_fetch *f, CURLcode rc,
				struct buf *result, struct buf *error);
void web_fetch_free(struct web_fetch *f);

/* cap's tool definitions (cap from catalog_all()/catalog_find()), parsed
 * once for the process: borrowed and read-only (take references with
 * json_object_get, never change them). */
struct catalog_cap;
struct json_object *tools_catalog_list(const struct catalog_cap *cap);

/* Which capability provides tool `name` ("current_time" for
 * "get_current_time"), or NULL. */
const char *tools_capability_of(const char *name);

#endif
