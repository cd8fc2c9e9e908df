/*
 * tools_internal: what the per-capability files of fcgi/runner/tools share
 * with the dispatcher (tools.c) and the unit tests; not for the rest of
 * the runner, which uses tools.h only.
 *
 * Every tool function has the signature of tools_fn. It is called only by
 * tools_run(), after `args` was validated against the tool's `parameters`
 * in the catalog, so it may rely on the types, enums and length bounds
 * stated there (not on anything stricter). `args` is borrowed and only
 * read. The function appends the result JSON to `result` (TOOL_OK) or one
 * sentence for the model to `error` (TOOL_ERROR); tools_run() clears
 * whichever buffer does not apply, so a tool may fail after writing part
 * of a result.
 */
#ifndef EVR_TOOLS_INTERNAL_H
#define EVR_TOOLS_INTERNAL_H

#include <json-c/json.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "tools.h"
#include "utf8.h"

typedef enum tool_status tools_fn(const struct tool_ctx *c,
				  struct json_object *args, struct buf *result,
				  struct buf *error);

/* current_time.c */
enum tool_status tools_current_time(const struct tool_ctx *c,
				    struct json_object *args,
				    struct buf *result, struct buf *error);
/* The same at time t instead of now, for tests. `zone` NULL means UTC. */
enum tool_status tools_current_time_at(const char *zone, time_t t,
				       struct buf *result, struct buf *error);

/* stateless_todo_list.c */
enum tool_status tools_write_todos(const struct tool_ctx *c,
				   struct json_object *args, struct buf *result,
				   struct buf *error);

/* session.c */
enum tool_status tools_session_info(const struct tool_ctx *c,
				    struct json_object *args,
				    struct buf *result, struct buf *error);
enum tool_status tools_session_title(const struct tool_ctx *c,
				     struct json_object *args,
				     struct buf *result, struct buf *error);

/* session_storage.c */
enum tool_status tools_kv_store(const struct tool_ctx *c,
				struct json_object *args, struct buf *result,
				struct buf *error);

/* session_file_system.c */
tools_fn tools_fs_list, tools_fs_read, tools_fs_write, tools_fs_edit,
	tools_fs_delete, tools_fs_move, tools_fs_copy, tools_fs_grep,
	tools_fs_stat, tools_fs_mkdir;

/* test_math.c, test_weather.c */
enum tool_status tools_calculate(const struct tool_ctx *c,
				 struct json_object *args, struct buf *result,
				 struct buf *error);
enum tool_status tools_weather(const struct tool_ctx *c,
			       struct json_object *args, struct buf *result,
			       struct buf *error);

/* html_text.c: HTML reduced to readable text, appended to b; text_clean:
 * any bytes as valid UTF-8 without control characters but '\n' and '\t'
 * (invalid sequences become U+FFFD). */
void html_to_text(const char *html, size_t len, struct buf *b);
void text_clean(const char *s, size_t len, struct buf *b);

/* Limits enforced by the tools beyond the catalog schemas (bytes). */
#define TOOLS_TITLE_MAX 512
#define TOOLS_KV_KEY_MAX 256
#define TOOLS_KV_VALUE_MAX 65536
#define TOOLS_KV_MAX_KEYS 1000
#define TOOLS_TODO_TEXT_MAX 1024
#define TOOLS_FS_PATTERN_MAX 1024

/* Append a formatted sentence to `error` and return TOOL_ERROR, so a tool
 * can `return tools_fail(error, ...)`. */
enum tool_status tools_fail(struct buf *error, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* For the tools that use the database: 0 when c has a connection, an
 * organization and a session, else -1 with the sentence in `error`. */
int tools_need_db(const struct tool_ctx *c, struct buf *error);

/* The sentences for the two failures every database tool shares. */
#define TOOLS_MSG_GONE "This session no longer exists."
#define TOOLS_MSG_DB                                                           \
	"The session's data could not be reached (a database error); try "     \
	"again later."

/* Append a finite double as the shortest JSON number that reads back as
 * the same double ("0.1", "5", "1e+300"). */
void tools_add_number(struct buf *b, double d);

#endif
