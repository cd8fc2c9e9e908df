/*
 * stateless_todo_list: write_todos(todos[]) (ARCHITECTURE 6.2).
 *
 * Stateless, as upstream: nothing is stored. The list lives in the
 * conversation itself (the call's arguments and this result are in the
 * event log and the history), and each call replaces it whole. The tool
 * checks the items and hands the list back with counts by status:
 * {"todos":[{content,activeForm,status}...],"total":n,
 *  "counts":{"pending":n,"in_progress":n,"completed":n}}
 * plus a "note" when the list breaks the prompt's "exactly one
 * in_progress" rule: a hint, not an error, so a model that does two
 * things at once is not stuck retrying.
 */
#include "tools_internal.h"

#include <string.h>

enum { ST_PENDING, ST_IN_PROGRESS, ST_COMPLETED, ST_COUNT };

static const char *const status_names[ST_COUNT] = {"pending", "in_progress",
						   "completed"};

static const char *str_field(struct json_object *item, const char *key,
			     size_t *len)
{
	struct json_object *v = NULL;

	json_object_object_get_ex(item, key, &v);
	*len = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

static int blank(const char *s, size_t len)
{
	size_t i;
	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return 0;
	return 1;
}

/* One item's text field: beyond the schema (a non-empty string), not
 * blank, valid UTF-8 and of a bounded size. */
static enum tool_status text_check(struct json_object *item, size_t i,
				   const char *key, struct buf *error)
{
	size_t len;
	const char *s = str_field(item, key, &len);

	if (blank(s, len))
		return tools_fail(error, "todos[%zu].%s must not be blank.", i,
				  key);
	if (len > TOOLS_TODO_TEXT_MAX)
		return tools_fail(error,
				  "todos[%zu].%s is longer than %d bytes; keep "
				  "items short.",
				  i, key, TOOLS_TODO_TEXT_MAX);
	if (!utf8_valid(s, len, 0))
		return tools_fail(error,
				  "todos[%zu].%s is not valid UTF-8 text.", i,
				  key);
	return TOOL_OK;
}

static int status_of(struct json_object *item)
{
	size_t len;
	const char *s = str_field(item, "status", &len);
	int k;

	for (k = 0; k < ST_COUNT; k++)
		if (!strcmp(s, status_names[k]))
			return k;
	return -1;
}

enum tool_status tools_write_todos(const struct tool_ctx *c,
				   struct json_object *args, struct buf *result,
				   struct buf *error)
{
	struct json_object *todos = NULL;
	size_t i, n, counts[ST_COUNT] = {0};

	(void)c;
	json_object_object_get_ex(args, "todos", &todos);
	n = json_object_array_length(todos);
	buf_adds(result, "{\"todos\":[");
	for (i = 0; i < n; i++) {
		struct json_object *item = json_object_array_get_idx(todos, i);
		const char *s;
		size_t len;
		int st = status_of(item);

		/* the schema's enum makes st valid */
		if (st < 0 || text_check(item, i, "content", error) ||
		    text_check(item, i, "activeForm", error))
			return TOOL_ERROR;
		counts[st]++;
		buf_adds(result, i ? ",{\"content\":" : "{\"content\":");
		s = str_field(item, "content", &len);
		buf_add_json_str(result, s, len);
		buf_adds(result, ",\"activeForm\":");
		s = str_field(item, "activeForm", &len);
		buf_add_json_str(result, s, len);
		buf_addf(result, ",\"status\":\"%s\"}", status_names[st]);
	}
	buf_addf(result,
		 "],\"total\":%zu,\"counts\":{\"pending\":%zu,"
		 "\"in_progress\":%zu,\"completed\":%zu}",
		 n, counts[ST_PENDING], counts[ST_IN_PROGRESS],
		 counts[ST_COMPLETED]);
	if (counts[ST_IN_PROGRESS] > 1)
		buf_addf(result,
			 ",\"note\":\"%zu items are in_progress; keep exactly "
			 "one in progress at a time.\"",
			 counts[ST_IN_PROGRESS]);
	buf_addch(result, '}');
	return TOOL_OK;
}
