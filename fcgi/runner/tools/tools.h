/*
 * tools: the built-in tools the runner executes for the model (DESIGN 4.7;
 * their descriptions and schemas are in fcgi/lib/catalog.c). A tool runs
 * synchronously on the runner's own database connection, outside any
 * transaction of the event writer, and must finish quickly (the slow,
 * network-bound ones — web_fetch — run on the curl multi instead and are
 * not dispatched here).
 *
 * A tool never fails the turn: bad arguments, a missing file, a refused
 * address... are returned to the model as the tool's error text.
 */
#ifndef EVR_TOOLS_H
#define EVR_TOOLS_H

#include <json-c/json.h>

#include "buf.h"
#include "db.h"

struct tool_ctx {
	struct db *db;
	const char *org;     /* 32-hex uuids */
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

/* Which capability provides tool `name` ("current_time" for
 * "get_current_time"), or NULL. */
const char *tools_capability_of(const char *name);

#endif
