/*
 * test_catalog: the built-in capability table (every JSON literal parses
 * and has the expected shape), catalog_find, the config-schema validator
 * and the API representation.
 */
#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "apierr.h"
#include "buf.h"
#include "catalog.h"
#include "check_run.h"

/* Parse strictly, the way request bodies are parsed, so a literal that
 * only a lenient parser accepts still fails here. */
static struct json_object *parse_strict(const char *s)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;

	ck_assert_ptr_nonnull(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
					    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, s, (int)strlen(s));
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != strlen(s)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;
	json_object_object_get_ex(o, key, &v);
	return v;
}

static int is_schema_object(struct json_object *s)
{
	struct json_object *t = get(s, "type");
	return json_object_is_type(s, json_type_object) && t &&
	       json_object_is_type(t, json_type_string) &&
	       !strcmp(json_object_get_string(t), "object") &&
	       json_object_is_type(get(s, "properties"), json_type_object);
}

START_TEST(test_literals_parse)
{
	size_t i, j, n;
	const struct catalog_cap *all = catalog_all(&n);

	ck_assert_uint_ge(n, 8);
	for (i = 0; i < n; i++) {
		const struct catalog_cap *c = &all[i];
		struct json_object *tools, *schema, *extra;

		ck_assert_msg(c->id && *c->id && c->name && *c->name &&
				      c->description && *c->description,
			      "%zu: missing id/name/description", i);
		ck_assert_msg(c->system_prompt && strlen(c->system_prompt) > 40,
			      "%s: system prompt missing or trivial", c->id);

		tools = parse_strict(c->tools_json);
		ck_assert_msg(tools != NULL, "%s: tools_json does not parse",
			      c->id);
		ck_assert_msg(json_object_is_type(tools, json_type_array) &&
				      json_object_array_length(tools) > 0,
			      "%s: tools_json is not a non-empty array", c->id);
		for (j = 0; j < json_object_array_length(tools); j++) {
			struct json_object *t =
				json_object_array_get_idx(tools, j);
			struct json_object *name = get(t, "name");
			struct json_object *desc = get(t, "description");
			ck_assert_msg(
				json_object_is_type(name, json_type_string) &&
					json_object_get_string_len(name),
				"%s: tool %zu has no name", c->id, j);
			ck_assert_msg(
				json_object_is_type(desc, json_type_string) &&
					json_object_get_string_len(desc),
				"%s: tool %s has no description", c->id,
				json_object_get_string(name));
			ck_assert_msg(is_schema_object(get(t, "parameters")),
				      "%s: tool %s: parameters is not an "
				      "object schema",
				      c->id, json_object_get_string(name));
		}
		json_object_put(tools);

		schema = parse_strict(c->config_schema);
		ck_assert_msg(schema != NULL,
			      "%s: config_schema does not parse", c->id);
		ck_assert_msg(is_schema_object(schema),
			      "%s: config_schema is not an object schema",
			      c->id);
		extra = get(schema, "additionalProperties");
		ck_assert_msg(json_object_is_type(extra, json_type_boolean) &&
				      !json_object_get_boolean(extra),
			      "%s: config_schema allows unknown keys", c->id);
		json_object_put(schema);
	}
}
END_TEST

START_TEST(test_ids_unique_and_expected)
{
	static const char *const want[] = {
		"session_file_system", "web_fetch",    "current_time",
		"stateless_todo_list", "session",      "session_storage",
		"test_math",           "test_weather",
	};
	size_t i, j, n;
	const struct catalog_cap *all = catalog_all(&n);

	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			ck_assert_str_ne(all[i].id, all[j].id);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(catalog_find(want[i]) != NULL, "%s missing",
			      want[i]);
}
END_TEST

/* Every tool named in ARCHITECTURE 6.2, under its capability. */
START_TEST(test_tool_names)
{
	static const struct {
		const char *cap, *tool;
	} want[] = {
		{"session_file_system", "list_directory"},
		{"session_file_system", "read_file"},
		{"session_file_system", "write_file"},
		{"session_file_system", "edit_file"},
		{"session_file_system", "delete_file"},
		{"session_file_system", "move_file"},
		{"session_file_system", "copy_file"},
		{"session_file_system", "grep_files"},
		{"session_file_system", "stat_file"},
		{"session_file_system", "make_directory"},
		{"web_fetch", "fetch_url"},
		{"current_time", "get_current_time"},
		{"stateless_todo_list", "write_todos"},
		{"session", "get_session_info"},
		{"session", "write_session_title"},
		{"session_storage", "kv_store"},
		{"test_weather", "get_weather"},
	};
	size_t i, j;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct catalog_cap *c = catalog_find(want[i].cap);
		struct json_object *tools;
		int found = 0;

		ck_assert_ptr_nonnull(c);
		tools = parse_strict(c->tools_json);
		ck_assert_ptr_nonnull(tools);
		for (j = 0; j < json_object_array_length(tools); j++) {
			struct json_object *t =
				json_object_array_get_idx(tools, j);
			if (!strcmp(json_object_get_string(get(t, "name")),
				    want[i].tool))
				found = 1;
		}
		json_object_put(tools);
		ck_assert_msg(found, "%s: no tool %s", want[i].cap,
			      want[i].tool);
	}
}
END_TEST

START_TEST(test_find)
{
	const struct catalog_cap *c = catalog_find("web_fetch");

	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c->id, "web_fetch");
	ck_assert_ptr_null(catalog_find("nope"));
	ck_assert_ptr_null(catalog_find(""));
	ck_assert_ptr_null(catalog_find("WEB_FETCH"));
	ck_assert_ptr_null(catalog_find("web_fetch "));
	ck_assert_ptr_null(catalog_find(NULL));
}
END_TEST

/* Validate the JSON text cfg for capability id; returns the rc and leaves
 * the error in e. */
static int check(const char *id, const char *cfg, struct apierr *e)
{
	const struct catalog_cap *c = catalog_find(id);
	struct json_object *o = cfg ? parse_strict(cfg) : NULL;
	int rc;

	ck_assert_ptr_nonnull(c);
	if (cfg)
		ck_assert_msg(o != NULL, "test config does not parse: %s", cfg);
	memset(e, 0, sizeof(*e));
	rc = catalog_check_config(c, o, "capabilities[0]", e);
	json_object_put(o);
	return rc;
}

static void reject_cfg(const char *id, const char *cfg, const char *msg)
{
	struct apierr e;

	ck_assert_msg(check(id, cfg, &e) == -1, "%s accepted %s", id, cfg);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.code, "validation_error");
	ck_assert_str_eq(e.msg, msg);
}

static void accept_cfg(const char *id, const char *cfg)
{
	struct apierr e;
	int rc = check(id, cfg, &e);

	ck_assert_msg(rc == 0, "%s rejected %s: %s", id, cfg ? cfg : "NULL",
		      e.msg);
}

START_TEST(test_config_accept)
{
	size_t i, n;
	const struct catalog_cap *all = catalog_all(&n);

	for (i = 0; i < n; i++) {
		accept_cfg(all[i].id, "{}");
		accept_cfg(all[i].id, NULL);
	}
	accept_cfg("session_file_system", "{\"max_file_size_mb\":1}");
	accept_cfg("session_file_system", "{\"max_file_size_mb\":10}");
	accept_cfg("session_file_system", "{\"max_file_size_mb\":1024}");
	/* 5.0 is an integer in JSON Schema */
	accept_cfg("session_file_system", "{\"max_file_size_mb\":5.0}");
	accept_cfg("web_fetch", "{\"max_bytes\":65536,\"timeout_s\":10}");
	accept_cfg("web_fetch", "{\"timeout_s\":120}");
}
END_TEST

#define FS_MB "capabilities[0].config.max_file_size_mb: "

START_TEST(test_config_reject)
{
	reject_cfg("session_file_system", "{\"max_file_size_mb\":\"10\"}",
		   FS_MB "must be an integer");
	reject_cfg("session_file_system", "{\"max_file_size_mb\":1.5}",
		   FS_MB "must be an integer");
	reject_cfg("session_file_system", "{\"max_file_size_mb\":null}",
		   FS_MB "must be an integer");
	reject_cfg("session_file_system", "{\"max_file_size_mb\":true}",
		   FS_MB "must be an integer");
	reject_cfg("session_file_system", "{\"max_file_size_mb\":1025}",
		   FS_MB "must be at most 1024");
	reject_cfg("session_file_system", "{\"max_file_size_mb\":0}",
		   FS_MB "must be at least 1");
	reject_cfg("session_file_system", "{\"max_file_size_mb\":-3}",
		   FS_MB "must be at least 1");
	reject_cfg("session_file_system",
		   "{\"max_file_size_mb\":99999999999999999999}",
		   FS_MB "must be at most 1024");
	reject_cfg("session_file_system", "{\"foo\":1}",
		   "capabilities[0].config: unknown key 'foo'");
	reject_cfg("session_file_system", "{\"max_file_size_mb\":10,\"x\":{}}",
		   "capabilities[0].config: unknown key 'x'");
	reject_cfg("current_time", "{\"timezone\":\"UTC\"}",
		   "capabilities[0].config: unknown key 'timezone'");
	reject_cfg("web_fetch", "{\"timeout_s\":0}",
		   "capabilities[0].config.timeout_s: must be at least 1");
	reject_cfg("web_fetch", "{\"max_bytes\":[1]}",
		   "capabilities[0].config.max_bytes: must be an integer");
	reject_cfg("test_math", "[]",
		   "capabilities[0].config: must be an object");
	reject_cfg("test_math", "\"x\"",
		   "capabilities[0].config: must be an object");
}
END_TEST

/* The parameters schema of tool `tool` of capability `cap` (from a parse
 * owned by *root, which the caller puts). */
static struct json_object *tool_params(const char *cap, const char *tool,
				       struct json_object **root)
{
	const struct catalog_cap *c = catalog_find(cap);
	size_t i;

	ck_assert_ptr_nonnull(c);
	*root = parse_strict(c->tools_json);
	ck_assert_ptr_nonnull(*root);
	for (i = 0; i < json_object_array_length(*root); i++) {
		struct json_object *t = json_object_array_get_idx(*root, i);
		if (!strcmp(json_object_get_string(get(t, "name")), tool))
			return get(t, "parameters");
	}
	ck_abort_msg("%s: no tool %s", cap, tool);
	return NULL;
}

/* Validate the JSON text args against a tool's parameters; NULL msg means
 * it must pass. */
static void args(const char *cap, const char *tool, const char *json,
		 const char *msg)
{
	struct json_object *root, *schema = tool_params(cap, tool, &root);
	struct json_object *v = parse_strict(json);
	struct apierr e;
	int rc;

	ck_assert_msg(v != NULL, "test args do not parse: %s", json);
	memset(&e, 0, sizeof(e));
	rc = catalog_check_value(schema, v, "arguments", &e);
	if (msg) {
		ck_assert_msg(rc == -1, "%s accepted %s", tool, json);
		ck_assert_int_eq(e.status, 400);
		ck_assert_str_eq(e.code, "validation_error");
		ck_assert_str_eq(e.msg, msg);
	} else {
		ck_assert_msg(rc == 0, "%s rejected %s: %s", tool, json, e.msg);
	}
	json_object_put(v);
	json_object_put(root);
}

/* The general subset (enum, required, items, lengths, numbers) through
 * the tool schemas, which use more of it than the config schemas. */
START_TEST(test_validator_subset)
{
	args("stateless_todo_list", "write_todos",
	     "{\"todos\":[{\"content\":\"Run tests\",\"activeForm\":"
	     "\"Running tests\",\"status\":\"in_progress\"}]}",
	     NULL);
	args("stateless_todo_list", "write_todos", "{\"todos\":[]}", NULL);
	args("stateless_todo_list", "write_todos",
	     "{\"todos\":[{\"content\":\"a\",\"activeForm\":\"b\","
	     "\"status\":\"pending\"},{\"content\":\"c\",\"activeForm\":"
	     "\"d\",\"status\":\"done\"}]}",
	     "arguments.todos[1].status: must be one of: pending, "
	     "in_progress, completed");
	args("stateless_todo_list", "write_todos",
	     "{\"todos\":[{\"content\":\"a\",\"status\":\"pending\"}]}",
	     "arguments.todos[0].activeForm: is required");
	args("stateless_todo_list", "write_todos",
	     "{\"todos\":[{\"content\":\"\",\"activeForm\":\"b\","
	     "\"status\":\"pending\"}]}",
	     "arguments.todos[0].content: must be at least 1 characters");
	args("stateless_todo_list", "write_todos", "{\"todos\":{}}",
	     "arguments.todos: must be an array");
	args("stateless_todo_list", "write_todos", "{}",
	     "arguments.todos: is required");
	args("session_storage", "kv_store", "{\"operation\":\"list\"}", NULL);
	args("session_storage", "kv_store",
	     "{\"operation\":\"set\",\"key\":\"k\",\"value\":\"v\"}", NULL);
	args("session_storage", "kv_store", "{\"operation\":\"SET\"}",
	     "arguments.operation: must be one of: set, get, delete, list");
	args("session_storage", "kv_store", "{\"operation\":7}",
	     "arguments.operation: must be a string");
	args("session_storage", "kv_store",
	     "{\"operation\":\"get\",\"extra\":1}",
	     "arguments: unknown key 'extra'");
	args("test_math", "calculate",
	     "{\"operation\":\"divide\",\"a\":1.5,\"b\":-2}", NULL);
	args("test_math", "calculate",
	     "{\"operation\":\"add\",\"a\":\"1\",\"b\":2}",
	     "arguments.a: must be a number");
	args("web_fetch", "fetch_url",
	     "{\"url\":\"https://example.com\",\"max_bytes\":0}",
	     "arguments.max_bytes: must be at least 1");
	args("web_fetch", "fetch_url", "{\"url\":null}",
	     "arguments.url: must be a string");
	/* lengths count code points: 128 two-byte characters fit */
	{
		char city[300];
		size_t i;
		strcpy(city, "{\"city\":\"");
		for (i = 0; i < 128; i++)
			strcat(city, "\xc3\xa9");
		strcat(city, "\"}");
		args("test_weather", "get_weather", city, NULL);
		city[strlen(city) - 2] = '\0';
		strcat(city, "e\"}");
		args("test_weather", "get_weather", city,
		     "arguments.city: must be at most 128 characters");
	}
	args("session", "get_session_info", "{}", NULL);
	args("session", "get_session_info", "[]",
	     "arguments: must be an object");
}
END_TEST

START_TEST(test_append_json)
{
	size_t i, n;
	const struct catalog_cap *all = catalog_all(&n);

	for (i = 0; i < n; i++) {
		struct buf b = BUF_INIT;
		struct json_object *o, *c, *tools;

		/* wrapped in an array to see that exactly one value, and
		 * nothing else, was appended */
		buf_adds(&b, "[");
		catalog_append_json(&all[i], &b);
		buf_adds(&b, "]");
		o = parse_strict(b.data);
		ck_assert_msg(o != NULL, "%s: output does not parse: %s",
			      all[i].id, b.data);
		ck_assert_uint_eq(json_object_array_length(o), 1);
		c = json_object_array_get_idx(o, 0);
		ck_assert_str_eq(json_object_get_string(get(c, "id")),
				 all[i].id);
		ck_assert_str_eq(json_object_get_string(get(c, "name")),
				 all[i].name);
		ck_assert_str_eq(json_object_get_string(get(c, "description")),
				 all[i].description);
		ck_assert_str_eq(json_object_get_string(get(c, "status")),
				 "available");
		ck_assert_str_eq(
			json_object_get_string(get(c, "system_prompt")),
			all[i].system_prompt);
		tools = get(c, "tool_definitions");
		ck_assert(json_object_is_type(tools, json_type_array));
		ck_assert_uint_gt(json_object_array_length(tools), 0);
		ck_assert(is_schema_object(get(c, "config_schema")));
		json_object_put(o);
		buf_release(&b);
	}
}
END_TEST

static Suite *catalog_suite(void)
{
	Suite *s = suite_create("catalog");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_literals_parse);
	tcase_add_test(tc, test_ids_unique_and_expected);
	tcase_add_test(tc, test_tool_names);
	tcase_add_test(tc, test_find);
	tcase_add_test(tc, test_config_accept);
	tcase_add_test(tc, test_config_reject);
	tcase_add_test(tc, test_validator_subset);
	tcase_add_test(tc, test_append_json);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(catalog_suite());
}
