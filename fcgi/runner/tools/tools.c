/*
 * tools: the dispatch table of the built-in tools, argument validation
 * against the catalog, and the result/error convention of tools.h.
 *
 * The catalog (fcgi/lib/catalog.c) is the single source of the tool
 * definitions the model sees; the arguments of every call are validated
 * here against the same `parameters` schema before the tool runs, so a
 * tool never sees a shape its definition does not allow. The catalog's
 * tool lists are JSON text, parsed once (pthread_once) and then only
 * read: parsing them at every call was 8 % of the runner's CPU in the
 * event-write benchmark (20 tool calls per turn).
 */
#include "tools.h"
#include "tools_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apierr.h"
#include "catalog.h"

struct tool_entry {
	const char *name;
	const char *capability;
	tools_fn *fn;
};

/* Tools of the catalog that are not here (web_fetch) are run elsewhere
 * in the runner; tools_run() answers TOOL_UNKNOWN. */
static const struct tool_entry tool_table[] = {
	{"get_current_time", "current_time", tools_current_time},
	{"write_todos", "stateless_todo_list", tools_write_todos},
	{"get_session_info", "session", tools_session_info},
	{"write_session_title", "session", tools_session_title},
	{"kv_store", "session_storage", tools_kv_store},
	{"list_directory", "session_file_system", tools_fs_list},
	{"read_file", "session_file_system", tools_fs_read},
	{"write_file", "session_file_system", tools_fs_write},
	{"edit_file", "session_file_system", tools_fs_edit},
	{"delete_file", "session_file_system", tools_fs_delete},
	{"move_file", "session_file_system", tools_fs_move},
	{"copy_file", "session_file_system", tools_fs_copy},
	{"grep_files", "session_file_system", tools_fs_grep},
	{"stat_file", "session_file_system", tools_fs_stat},
	{"make_directory", "session_file_system", tools_fs_mkdir},
	{"calculate", "test_math", tools_calculate},
	{"get_weather", "test_weather", tools_weather},
};

#define NTOOLS (sizeof(tool_table) / sizeof(tool_table[0]))

static const struct tool_entry *entry_find(const char *name)
{
	size_t i;
	for (i = 0; i < NTOOLS; i++)
		if (!strcmp(tool_table[i].name, name))
			return &tool_table[i];
	return NULL;
}

/* The catalog's tool lists, parsed once, in catalog_all() order; never
 * changed after, so any thread may read them. */
static struct json_object **lists;
static size_t nlists;
static pthread_once_t lists_once = PTHREAD_ONCE_INIT;

static void lists_parse(void)
{
	const struct catalog_cap *all = catalog_all(&nlists);
	size_t i;
	lists = xcalloc(nlists, sizeof(*lists));
	for (i = 0; i < nlists; i++) {
		lists[i] = json_tokener_parse(all[i].tools_json);
		/* the literals are compiled in and parsed by test_catalog: a
		 * bad one is a build defect */
		if (!lists[i] ||
		    !json_object_is_type(lists[i], json_type_array))
			abort();
	}
}

struct json_object *tools_catalog_list(const struct catalog_cap *cap)
{
	size_t n;
	const struct catalog_cap *all = catalog_all(&n);
	size_t k;

	pthread_once(&lists_once, lists_parse);
	for (k = 0; k < nlists; k++)
		if (&all[k] == cap)
			return lists[k];
	abort(); /* cap must come from the catalog */
}

/* The definition of tool `name` in cap's tool list (borrowed, read only),
 * or NULL when cap does not define that tool. */
static struct json_object *definition_find(const struct catalog_cap *cap,
					   const char *name)
{
	struct json_object *list = tools_catalog_list(cap);
	size_t i, n = json_object_array_length(list);

	for (i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(list, i);
		struct json_object *tn = NULL;
		if (json_object_object_get_ex(t, "name", &tn) &&
		    json_object_is_type(tn, json_type_string) &&
		    !strcmp(json_object_get_string(tn), name))
			return t;
	}
	return NULL;
}

const char *tools_capability_of(const char *name)
{
	const struct tool_entry *t;
	const struct catalog_cap *all;
	size_t i, n;

	if (!name)
		return NULL;
	if ((t = entry_find(name)))
		return t->capability;
	/* tools run outside this table (files, fetch) still belong to a
	 * capability whose config the runner needs */
	all = catalog_all(&n);
	for (i = 0; i < n; i++)
		if (definition_find(&all[i], name))
			return all[i].id;
	return NULL;
}

/* Validate args against the tool's `parameters`. 0, or -1 with the
 * sentence for the model in `error`. */
static int args_check(const char *capability, const char *name,
		      struct json_object *args, struct buf *error)
{
	const struct catalog_cap *cap = catalog_find(capability);
	struct json_object *def, *params = NULL;
	struct apierr e;

	/* the table names catalog entries: test_tools checks every row */
	if (!cap)
		abort();
	def = definition_find(cap, name);
	if (!def || !json_object_object_get_ex(def, "parameters", &params))
		abort();
	if (catalog_check_value(params, args, "arguments", &e)) {
		tools_fail(error, "Invalid arguments for %s: %s.", name, e.msg);
		return -1;
	}
	return 0;
}

enum tool_status tools_run(const struct tool_ctx *c, const char *name,
			   struct json_object *args, struct buf *result,
			   struct buf *error)
{
	const struct tool_entry *t = name ? entry_find(name) : NULL;
	struct json_object *empty = NULL;
	enum tool_status st;

	buf_reset(result);
	buf_reset(error);
	if (!t)
		return TOOL_UNKNOWN;
	/* models send "" or nothing for a tool without parameters; the
	 * runner may hand that over as NULL */
	if (!args) {
		args = empty = json_object_new_object();
		if (!args)
			abort();
	}
	if (args_check(t->capability, t->name, args, error)) {
		st = TOOL_ERROR;
		goto out;
	}
	st = t->fn(c, args, result, error);
	if (st == TOOL_OK) {
		buf_reset(error);
	} else {
		st = TOOL_ERROR;
		buf_reset(result);
		if (!error->len)
			tools_fail(error, "The tool %s failed.", t->name);
	}
out:
	json_object_put(empty);
	return st;
}

int tools_check_args(const char *name, struct json_object *args,
		     struct buf *error)
{
	const char *cap = tools_capability_of(name);
	if (!cap)
		return tools_fail(error, "No tool named '%s' is available.",
				  name ? name : ""),
		       -1;
	return args_check(cap, name, args, error);
}

enum tool_status tools_fail(struct buf *error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(error, fmt, ap);
	va_end(ap);
	return TOOL_ERROR;
}

int tools_need_db(const struct tool_ctx *c, struct buf *error)
{
	if (c && c->db && c->org && c->session)
		return 0;
	tools_fail(error, "This tool is not available here (no session).");
	return -1;
}

void tools_add_number(struct buf *b, double d)
{
	char s[40];
	int prec;

	/* callers refuse non-finite values; this keeps the output JSON
	 * whatever happens */
	if (!isfinite(d)) {
		buf_adds(b, "null");
		return;
	}
	for (prec = 1; prec < 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, d);
		if (strtod(s, NULL) == d)
			break;
	}
	if (prec == 17)
		snprintf(s, sizeof(s), "%.17g", d);
	buf_adds(b, s);
}
