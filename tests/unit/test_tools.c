/*
 * test_tools: the runner's built-in tools (fcgi/runner/tools): dispatch and
 * capability lookup against the catalog, argument validation, and each
 * tool's results and errors.
 *
 * The database tools (session, session_storage) run against a real
 * PostgreSQL when EVR_TEST_DATABASE_URL names a migrated database (sql/
 * 001..003); otherwise those cases are skipped. Each case creates its own
 * organizations and deletes them (with everything they own) afterwards.
 */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "catalog.h"
#include "db.h"
#include "tools.h"
#include "utf8.h"
#include "tools_internal.h"
#include "check_run.h"

/* --- helpers -------------------------------------------------------------*/

struct run {
	enum tool_status st;
	struct buf result, error;
	struct json_object *json; /* the parsed result on TOOL_OK */
};

static void run_release(struct run *r)
{
	buf_release(&r->result);
	buf_release(&r->error);
	json_object_put(r->json);
	memset(r, 0, sizeof(*r));
}

/* Run `name` with the JSON text `args` (NULL: no arguments) in ctx c. */
static void run_ctx(struct run *r, const struct tool_ctx *c, const char *name,
		    const char *args)
{
	struct json_object *a = NULL;

	memset(r, 0, sizeof(*r));
	buf_init(&r->result, 0);
	buf_init(&r->error, 0);
	if (args) {
		a = json_tokener_parse(args);
		ck_assert_msg(a != NULL, "test arguments do not parse: %s",
			      args);
	}
	r->st = tools_run(c, name, a, &r->result, &r->error);
	json_object_put(a);
	if (r->st == TOOL_OK) {
		r->json = json_tokener_parse(r->result.data);
		ck_assert_msg(r->json != NULL, "%s: result is not JSON: %s",
			      name, r->result.data);
		ck_assert_uint_eq(r->error.len, 0);
	} else if (r->st == TOOL_ERROR) {
		ck_assert_msg(r->error.len > 0, "%s: error without text", name);
		ck_assert_uint_eq(r->result.len, 0);
	}
}

static const struct tool_ctx no_db_ctx = {NULL, NULL, NULL, NULL,
					  NULL, NULL, NULL};

static void run(struct run *r, const char *name, const char *args)
{
	run_ctx(r, &no_db_ctx, name, args);
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;
	json_object_object_get_ex(o, key, &v);
	return v;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key);
	ck_assert_msg(json_object_is_type(v, json_type_string),
		      "%s is not a string", key);
	return json_object_get_string(v);
}

static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key);
	ck_assert_msg(json_object_is_type(v, json_type_int),
		      "%s is not an integer", key);
	return json_object_get_int64(v);
}

static int get_bool(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key);
	ck_assert_msg(json_object_is_type(v, json_type_boolean),
		      "%s is not a boolean", key);
	return json_object_get_boolean(v);
}

/* Expect TOOL_ERROR whose text contains `part`. */
static void expect_error_ctx(const struct tool_ctx *c, const char *name,
			     const char *args, const char *part)
{
	struct run r;

	run_ctx(&r, c, name, args);
	ck_assert_msg(r.st == TOOL_ERROR, "%s %s: expected an error, got %d %s",
		      name, args ? args : "(null)", r.st, r.result.data);
	ck_assert_msg(strstr(r.error.data, part) != NULL,
		      "%s %s: error \"%s\" lacks \"%s\"", name,
		      args ? args : "(null)", r.error.data, part);
	run_release(&r);
}

static void expect_error(const char *name, const char *args, const char *part)
{
	expect_error_ctx(&no_db_ctx, name, args, part);
}

static char *repeat(const char *unit, size_t n)
{
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < n; i++)
		buf_adds(&b, unit);
	return buf_detach(&b, NULL);
}

/* --- dispatch and validation ---------------------------------------------*/

START_TEST(test_capability_of)
{
	static const char *const pairs[][2] = {
		{"get_current_time", "current_time"},
		{"write_todos", "stateless_todo_list"},
		{"get_session_info", "session"},
		{"write_session_title", "session"},
		{"kv_store", "session_storage"},
		{"calculate", "test_math"},
		{"get_weather", "test_weather"},
		{"read_file", "session_file_system"},
		{"make_directory", "session_file_system"},
		{"fetch_url", "web_fetch"},
	};
	size_t i;

	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		const char *cap = tools_capability_of(pairs[i][0]);
		ck_assert_msg(cap && !strcmp(cap, pairs[i][1]),
			      "%s: capability %s, expected %s", pairs[i][0],
			      cap ? cap : "NULL", pairs[i][1]);
	}
	ck_assert_ptr_null(tools_capability_of("nope"));
	ck_assert_ptr_null(tools_capability_of(""));
	ck_assert_ptr_null(tools_capability_of(NULL));
	ck_assert_ptr_null(tools_capability_of("current_time"));
}
END_TEST

/* Every tool of the catalog maps back to its capability, and every tool of
 * the capabilities implemented here is dispatched. */
START_TEST(test_table_matches_catalog)
{
	const struct catalog_cap *all;
	size_t i, j, n;

	all = catalog_all(&n);
	for (i = 0; i < n; i++) {
		struct json_object *list =
			json_tokener_parse(all[i].tools_json);
		/* fetch_url and bash run on the runner's loop */
		int here = strcmp(all[i].id, "web_fetch") &&
			   strcmp(all[i].id, "virtual_bash");

		ck_assert_ptr_nonnull(list);
		for (j = 0; j < json_object_array_length(list); j++) {
			const char *name = get_str(
				json_object_array_get_idx(list, j), "name");
			const char *cap = tools_capability_of(name);
			struct run r;

			ck_assert_msg(cap && !strcmp(cap, all[i].id),
				      "%s: capability %s, expected %s", name,
				      cap ? cap : "NULL", all[i].id);
			run(&r, name, "{}");
			if (here)
				ck_assert_msg(r.st != TOOL_UNKNOWN,
					      "%s is not dispatched", name);
			else
				ck_assert_msg(r.st == TOOL_UNKNOWN,
					      "%s should run elsewhere", name);
			run_release(&r);
		}
		json_object_put(list);
	}
}
END_TEST

START_TEST(test_unknown)
{
	struct run r;

	run(&r, "nope", "{}");
	ck_assert_int_eq(r.st, TOOL_UNKNOWN);
	ck_assert_uint_eq(r.result.len, 0);
	ck_assert_uint_eq(r.error.len, 0);
	run_release(&r);
	run(&r, NULL, "{}");
	ck_assert_int_eq(r.st, TOOL_UNKNOWN);
	run_release(&r);
	/* a real tool run by another part of the runner */
	run(&r, "fetch_url", "{\"url\":\"http://example.com/\"}");
	ck_assert_int_eq(r.st, TOOL_UNKNOWN);
	run_release(&r);
}
END_TEST

START_TEST(test_schema_errors)
{
	expect_error("calculate", "{\"operation\":\"add\",\"a\":1}",
		     "Invalid arguments for calculate: arguments.b: is "
		     "required.");
	expect_error("calculate", "{\"operation\":\"pow\",\"a\":1,\"b\":2}",
		     "arguments.operation: must be one of: add, subtract, "
		     "multiply, divide");
	expect_error("calculate",
		     "{\"operation\":\"add\",\"a\":1,\"b\":2,\"c\":3}",
		     "arguments: unknown key 'c'");
	expect_error("calculate", "{\"operation\":\"add\",\"a\":\"1\",\"b\":2}",
		     "arguments.a: must be a number");
	expect_error("calculate", "[1,2]", "arguments: must be an object");
	expect_error("calculate", NULL, "arguments.operation: is required");
	expect_error("get_current_time", "{\"timezone\":5}",
		     "arguments.timezone: must be a string");
	expect_error("get_current_time", "{\"timezone\":null}",
		     "arguments.timezone: must be a string");
	expect_error("get_current_time", "{\"zone\":\"UTC\"}",
		     "unknown key 'zone'");
	expect_error("write_todos", "{}", "arguments.todos: is required");
	expect_error("get_weather", "{\"city\":\"\"}",
		     "arguments.city: must be at least 1 characters");
	expect_error("kv_store", "{\"operation\":\"SET\"}",
		     "arguments.operation: must be one of: set, get, delete, "
		     "list");
	expect_error("get_session_info", "{\"x\":1}", "unknown key 'x'");
	/* validation comes before the database is needed */
	expect_error("write_session_title", "{}",
		     "arguments.title: is required");
}
END_TEST

START_TEST(test_no_database)
{
	expect_error("get_session_info", "{}", "not available");
	expect_error("write_session_title", "{\"title\":\"T\"}",
		     "not available");
	expect_error("kv_store", "{\"operation\":\"list\"}", "not available");
}
END_TEST

START_TEST(test_text_ok)
{
	ck_assert(utf8_valid("", 0, 1));
	ck_assert(utf8_valid("abc", 3, 1));
	ck_assert(utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, 1));
	ck_assert(utf8_valid("a\nb", 3, 0));
	ck_assert(!utf8_valid("a\nb", 3, 1));
	ck_assert(!utf8_valid("a\x7f", 2, 1));
	ck_assert(!utf8_valid("a\0b", 3, 0));
	ck_assert(!utf8_valid("\xc3", 1, 0));             /* truncated */
	ck_assert(!utf8_valid("\xc0\xaf", 2, 0));         /* overlong */
	ck_assert(!utf8_valid("\xe0\x80\xaf", 3, 0));     /* overlong */
	ck_assert(!utf8_valid("\xed\xa0\x80", 3, 0));     /* surrogate */
	ck_assert(!utf8_valid("\xf4\x90\x80\x80", 4, 0)); /* > 10FFFF */
	ck_assert(!utf8_valid("\x80", 1, 0));
	ck_assert(!utf8_valid("\xe2\x82", 2, 0));
}
END_TEST

START_TEST(test_add_number)
{
	static const struct {
		double d;
		const char *s;
	} cases[] = {
		{5, "5"},
		{-2, "-2"},
		{0.25, "0.25"},
		{0.1, "0.1"},
		{0.1 + 0.2, "0.30000000000000004"},
		{1.0 / 3, "0.3333333333333333"},
		{1e300, "1e+300"},
		{123456789012345678.0, "1.2345678901234568e+17"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = BUF_INIT;
		tools_add_number(&b, cases[i].d);
		ck_assert_str_eq(b.data, cases[i].s);
		buf_release(&b);
	}
}
END_TEST

/* --- current_time --------------------------------------------------------*/

/* 2024-07-01T12:00:00Z, a Monday; 2024-01-01T00:00:00Z, a Monday. */
#define T_JULY ((time_t)1719835200)
#define T_JAN ((time_t)1704067200)

static struct json_object *time_at(const char *zone, time_t t)
{
	struct buf res = BUF_INIT, err = BUF_INIT;
	struct json_object *o;
	enum tool_status st;

	st = tools_current_time_at(zone, t, &res, &err);
	ck_assert_msg(st == TOOL_OK, "%s: %s", zone ? zone : "(null)",
		      err.data);
	o = json_tokener_parse(res.data);
	ck_assert_ptr_nonnull(o);
	buf_release(&res);
	buf_release(&err);
	return o;
}

static void expect_time(const char *zone, time_t t, const char *iso,
			const char *human, const char *weekday)
{
	struct json_object *o = time_at(zone, t);

	ck_assert_str_eq(get_str(o, "timezone"), zone ? zone : "UTC");
	ck_assert_str_eq(get_str(o, "iso8601"), iso);
	ck_assert_int_eq(get_int(o, "unix"), (int64_t)t);
	ck_assert_str_eq(get_str(o, "human"), human);
	ck_assert_str_eq(get_str(o, "weekday"), weekday);
	ck_assert_str_eq(get_str(o, "utc_offset"), iso + strlen(iso) - 6);
	json_object_put(o);
}

START_TEST(test_time_zones)
{
	expect_time(NULL, T_JULY, "2024-07-01T12:00:00+00:00",
		    "Monday, 1 July 2024, 12:00:00 UTC (UTC+00:00)", "Monday");
	expect_time("UTC", T_JAN, "2024-01-01T00:00:00+00:00",
		    "Monday, 1 January 2024, 00:00:00 UTC (UTC+00:00)",
		    "Monday");
	expect_time("America/New_York", T_JULY, "2024-07-01T08:00:00-04:00",
		    "Monday, 1 July 2024, 08:00:00 EDT (UTC-04:00)", "Monday");
	expect_time("America/New_York", T_JAN, "2023-12-31T19:00:00-05:00",
		    "Sunday, 31 December 2023, 19:00:00 EST (UTC-05:00)",
		    "Sunday");
	expect_time("Europe/Berlin", T_JULY, "2024-07-01T14:00:00+02:00",
		    "Monday, 1 July 2024, 14:00:00 CEST (UTC+02:00)", "Monday");
	expect_time("Asia/Kolkata", T_JULY, "2024-07-01T17:30:00+05:30",
		    "Monday, 1 July 2024, 17:30:00 IST (UTC+05:30)", "Monday");
	expect_time("Asia/Kathmandu", T_JULY, "2024-07-01T17:45:00+05:45",
		    "Monday, 1 July 2024, 17:45:00 +0545 (UTC+05:45)",
		    "Monday");
	expect_time("Pacific/Kiritimati", T_JULY, "2024-07-02T02:00:00+14:00",
		    "Tuesday, 2 July 2024, 02:00:00 +14 (UTC+14:00)",
		    "Tuesday");
	expect_time("Etc/GMT+5", T_JULY, "2024-07-01T07:00:00-05:00",
		    "Monday, 1 July 2024, 07:00:00 -05 (UTC-05:00)", "Monday");
	expect_time("America/Argentina/Buenos_Aires", T_JULY,
		    "2024-07-01T09:00:00-03:00",
		    "Monday, 1 July 2024, 09:00:00 -03 (UTC-03:00)", "Monday");
}
END_TEST

START_TEST(test_time_invalid)
{
	static const char *const bad_names[] = {
		"../etc/passwd",
		"/etc/passwd",
		"Europe/../../etc/passwd",
		"..",
		".",
		"Europe//Berlin",
		"Europe/",
		"/UTC",
		"",
		"zone.tab",
		"Europe/Berlin\n",
		"Europe/Berlin ",
		"Europe\\Berlin",
		"Europe/Berlin;rm",
		/* 65 characters */
		("A123456789B123456789C123456789D123456789E123456789F123456789"
		 "G1234"),
	};
	/* well-formed names that are no zone: not in the database, in the
	 * wrong case, a directory, a leap-second clock, a text file */
	static const char *const unknown[] = {
		"Mars/Olympus_Mons", "PST",         "europe/berlin", "Europe",
		"right/UTC",         "leapseconds",
	};
	size_t i;

	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		struct buf res = BUF_INIT, err = BUF_INIT;
		ck_assert_msg(tools_current_time_at(bad_names[i], T_JULY, &res,
						    &err) == TOOL_ERROR,
			      "accepted \"%s\"", bad_names[i]);
		ck_assert_msg(strstr(err.data, "not a valid IANA time zone"),
			      "%s: %s", bad_names[i], err.data);
		buf_release(&res);
		buf_release(&err);
	}
	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		struct buf res = BUF_INIT, err = BUF_INIT;
		ck_assert_msg(tools_current_time_at(unknown[i], T_JULY, &res,
						    &err) == TOOL_ERROR,
			      "accepted \"%s\"", unknown[i]);
		ck_assert_msg(strstr(err.data, "Unknown time zone"), "%s: %s",
			      unknown[i], err.data);
		buf_release(&res);
		buf_release(&err);
	}
	/* the same through the dispatcher, with the name longer than the
	 * schema allows and with an embedded NUL */
	expect_error("get_current_time", "{\"timezone\":\"../etc/passwd\"}",
		     "not a valid IANA time zone name");
	expect_error("get_current_time",
		     "{\"timezone\":\"Europe/Berlin_and_a_very_long_suffix_"
		     "that_goes_on_and_on_and_on_and_on\"}",
		     "must be at most 64 characters");
	expect_error("get_current_time", "{\"timezone\":\"UTC\\u0000x\"}",
		     "NUL");
}
END_TEST

/* The zone is set only for the conversion: TZ is what it was before, and
 * an unset TZ converts as it did. */
START_TEST(test_time_restores_tz)
{
	struct json_object *o;
	struct tm before, after;
	time_t t = T_JULY;

	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	o = time_at("America/New_York", t);
	json_object_put(o);
	ck_assert_str_eq(getenv("TZ"), "Asia/Tokyo");
	localtime_r(&t, &after);
	ck_assert_int_eq(after.tm_gmtoff, 9 * 3600);

	unsetenv("TZ");
	tzset();
	localtime_r(&t, &before);
	o = time_at("Asia/Kolkata", t);
	json_object_put(o);
	localtime_r(&t, &after);
	ck_assert_int_eq(after.tm_gmtoff, before.tm_gmtoff);
	ck_assert_int_eq(after.tm_hour, before.tm_hour);
	unsetenv("TZ");
	tzset();
}
END_TEST

START_TEST(test_time_tzdir)
{
	struct buf res = BUF_INIT, err = BUF_INIT;
	struct json_object *o;

	setenv("TZDIR", "/nonexistent", 1);
	ck_assert_int_eq(
		tools_current_time_at("Europe/Berlin", T_JULY, &res, &err),
		TOOL_ERROR);
	/* UTC needs no tz database */
	o = time_at("UTC", T_JULY);
	json_object_put(o);
	unsetenv("TZDIR");
	buf_release(&res);
	buf_release(&err);
}
END_TEST

START_TEST(test_time_now)
{
	struct run r;
	time_t now = time(NULL);

	run(&r, "get_current_time", NULL);
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert_str_eq(get_str(r.json, "timezone"), "UTC");
	ck_assert(get_int(r.json, "unix") >= (int64_t)now &&
		  get_int(r.json, "unix") <= (int64_t)now + 5);
	run_release(&r);

	run(&r, "get_current_time", "{\"timezone\":\"Asia/Tokyo\"}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert_str_eq(get_str(r.json, "timezone"), "Asia/Tokyo");
	ck_assert_str_eq(get_str(r.json, "utc_offset"), "+09:00");
	ck_assert(strstr(get_str(r.json, "iso8601"), "+09:00") != NULL);
	run_release(&r);
}
END_TEST

/* --- write_todos ---------------------------------------------------------*/

START_TEST(test_todos_ok)
{
	struct run r;
	struct json_object *todos, *counts, *item;

	run(&r, "write_todos",
	    "{\"todos\":["
	    "{\"content\":\"Run the tests\",\"activeForm\":\"Running the "
	    "tests\",\"status\":\"completed\"},"
	    "{\"content\":\"Fix \\\"the\\\" bug \xc3\xa9\",\"activeForm\":"
	    "\"Fixing the bug\",\"status\":\"in_progress\"},"
	    "{\"content\":\"Ship\",\"activeForm\":\"Shipping\","
	    "\"status\":\"pending\"},"
	    "{\"status\":\"pending\",\"activeForm\":\"Writing docs\","
	    "\"content\":\"Write docs\"}]}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert_int_eq(get_int(r.json, "total"), 4);
	counts = get(r.json, "counts");
	ck_assert_int_eq(get_int(counts, "pending"), 2);
	ck_assert_int_eq(get_int(counts, "in_progress"), 1);
	ck_assert_int_eq(get_int(counts, "completed"), 1);
	ck_assert_ptr_null(get(r.json, "note"));
	todos = get(r.json, "todos");
	ck_assert_uint_eq(json_object_array_length(todos), 4);
	item = json_object_array_get_idx(todos, 1);
	ck_assert_str_eq(get_str(item, "content"), "Fix \"the\" bug \xc3\xa9");
	ck_assert_str_eq(get_str(item, "activeForm"), "Fixing the bug");
	ck_assert_str_eq(get_str(item, "status"), "in_progress");
	item = json_object_array_get_idx(todos, 3);
	ck_assert_str_eq(get_str(item, "content"), "Write docs");
	run_release(&r);

	/* an empty list clears it */
	run(&r, "write_todos", "{\"todos\":[]}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert_int_eq(get_int(r.json, "total"), 0);
	ck_assert_int_eq(get_int(get(r.json, "counts"), "pending"), 0);
	run_release(&r);

	/* two in progress: accepted, with a hint */
	run(&r, "write_todos",
	    "{\"todos\":[{\"content\":\"A\",\"activeForm\":\"Aing\","
	    "\"status\":\"in_progress\"},{\"content\":\"B\",\"activeForm\":"
	    "\"Bing\",\"status\":\"in_progress\"}]}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert(strstr(get_str(r.json, "note"), "2 items are in_progress"));
	run_release(&r);
}
END_TEST

START_TEST(test_todos_invalid)
{
	struct buf args = BUF_INIT;
	char *longtext;
	int i;

	expect_error("write_todos",
		     "{\"todos\":[{\"content\":\"A\",\"activeForm\":\"Aing\","
		     "\"status\":\"pending\"},{\"content\":\"B\","
		     "\"activeForm\":\"Bing\",\"status\":\"done\"}]}",
		     "arguments.todos[1].status: must be one of: pending, "
		     "in_progress, completed");
	expect_error("write_todos",
		     "{\"todos\":[{\"content\":\"A\",\"status\":\"pending\"}]}",
		     "arguments.todos[0].activeForm: is required");
	expect_error("write_todos",
		     "{\"todos\":[{\"content\":\"A\",\"activeForm\":\"A\","
		     "\"status\":\"pending\",\"priority\":1}]}",
		     "arguments.todos[0]: unknown key 'priority'");
	expect_error("write_todos", "{\"todos\":\"A, B\"}",
		     "arguments.todos: must be an array");
	expect_error("write_todos", "{\"todos\":[\"A\"]}",
		     "arguments.todos[0]: must be an object");
	expect_error("write_todos",
		     "{\"todos\":[{\"content\":\"\",\"activeForm\":\"A\","
		     "\"status\":\"pending\"}]}",
		     "arguments.todos[0].content: must be at least 1");
	expect_error("write_todos",
		     "{\"todos\":[{\"content\":\"A\",\"activeForm\":\"A\","
		     "\"status\":\"pending\"},{\"content\":\" \\n\\t \","
		     "\"activeForm\":\"A\",\"status\":\"pending\"}]}",
		     "todos[1].content must not be blank.");
	expect_error("write_todos",
		     "{\"todos\":[{\"content\":\"A\\u0000B\",\"activeForm\":"
		     "\"A\",\"status\":\"pending\"}]}",
		     "todos[0].content is not valid UTF-8 text");

	longtext = repeat("x", TOOLS_TODO_TEXT_MAX + 1);
	buf_addf(&args,
		 "{\"todos\":[{\"content\":\"A\",\"activeForm\":\"%s\","
		 "\"status\":\"pending\"}]}",
		 longtext);
	expect_error("write_todos", args.data,
		     "todos[0].activeForm is longer than 1024 bytes");
	free(longtext);

	buf_reset(&args);
	buf_adds(&args, "{\"todos\":[");
	for (i = 0; i < 101; i++)
		buf_addf(&args,
			 "%s{\"content\":\"T%d\",\"activeForm\":\"T\","
			 "\"status\":\"pending\"}",
			 i ? "," : "", i);
	buf_adds(&args, "]}");
	expect_error("write_todos", args.data,
		     "arguments.todos: must have at most 100 items");
	buf_release(&args);
}
END_TEST

/* --- calculate -----------------------------------------------------------*/

static double calc(const char *op, const char *a, const char *b)
{
	struct buf args = BUF_INIT;
	struct run r;
	double v;

	buf_addf(&args, "{\"operation\":\"%s\",\"a\":%s,\"b\":%s}", op, a, b);
	run(&r, "calculate", args.data);
	ck_assert_msg(r.st == TOOL_OK, "%s: %s", args.data, r.error.data);
	ck_assert_str_eq(get_str(r.json, "operation"), op);
	v = json_object_get_double(get(r.json, "result"));
	run_release(&r);
	buf_release(&args);
	return v;
}

START_TEST(test_calculate)
{
	struct run r;

	ck_assert_double_eq(calc("add", "2", "3"), 5);
	ck_assert_double_eq(calc("subtract", "2", "3.5"), -1.5);
	ck_assert_double_eq(calc("multiply", "-4", "2.5"), -10);
	ck_assert_double_eq(calc("divide", "1", "4"), 0.25);
	ck_assert_double_eq(calc("divide", "1", "3"), 1.0 / 3);
	ck_assert_double_eq(calc("add", "0.1", "0.2"), 0.1 + 0.2);
	ck_assert_double_eq(calc("multiply", "1e200", "1e100"), 1e300);

	run(&r, "calculate", "{\"operation\":\"add\",\"a\":0.1,\"b\":0.2}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert_str_eq(r.result.data,
			 "{\"operation\":\"add\",\"a\":0.1,\"b\":0.2,"
			 "\"result\":0.30000000000000004}");
	run_release(&r);
	run(&r, "calculate", "{\"operation\":\"multiply\",\"a\":6,\"b\":7}");
	ck_assert_str_eq(r.result.data,
			 "{\"operation\":\"multiply\",\"a\":6,\"b\":7,"
			 "\"result\":42}");
	run_release(&r);
}
END_TEST

START_TEST(test_calculate_errors)
{
	expect_error("calculate", "{\"operation\":\"divide\",\"a\":1,\"b\":0}",
		     "Division by zero");
	expect_error("calculate",
		     "{\"operation\":\"divide\",\"a\":0,\"b\":-0.0}",
		     "Division by zero");
	expect_error("calculate",
		     "{\"operation\":\"multiply\",\"a\":1e308,\"b\":10}",
		     "overflows");
	expect_error("calculate", "{\"operation\":\"add\",\"a\":1e999,\"b\":1}",
		     "finite");
}
END_TEST

/* --- get_weather ---------------------------------------------------------*/

START_TEST(test_weather)
{
	static const char *const cities[] = {
		"Paris",  "Tokyo", "New York", "Lagos",   "Lima",
		"Oslo",   "Cairo", "Sydney",   "Quito",   "Hanoi",
		"Berlin", "Rome",  "Madrid",   "Nairobi", "Reykjavik",
	};
	struct run a, b;
	size_t i;
	int seen[8] = {0}, kinds = 0;

	run(&a, "get_weather", "{\"city\":\"Paris\"}");
	run(&b, "get_weather", "{\"city\":\"Paris\"}");
	ck_assert_int_eq(a.st, TOOL_OK);
	ck_assert_str_eq(a.result.data, b.result.data);
	ck_assert_str_eq(get_str(a.json, "city"), "Paris");
	ck_assert(get_bool(a.json, "simulated"));
	run_release(&b);
	/* case and surrounding blanks do not change the weather */
	run(&b, "get_weather", "{\"city\":\"  pARIS\\n\"}");
	ck_assert_int_eq(b.st, TOOL_OK);
	ck_assert_str_eq(get_str(b.json, "city"), "pARIS");
	ck_assert_int_eq(get_int(a.json, "temperature_c"),
			 get_int(b.json, "temperature_c"));
	ck_assert_str_eq(get_str(a.json, "conditions"),
			 get_str(b.json, "conditions"));
	ck_assert_int_eq(get_int(a.json, "humidity_percent"),
			 get_int(b.json, "humidity_percent"));
	ck_assert_str_eq(get_str(a.json, "wind_direction"),
			 get_str(b.json, "wind_direction"));
	run_release(&a);
	run_release(&b);

	for (i = 0; i < sizeof(cities) / sizeof(cities[0]); i++) {
		static const char *const conds[] = {
			"sunny", "partly cloudy", "cloudy", "light rain",
			"rain",  "thunderstorms", "fog",    "snow"};
		char args[128];
		int64_t t;
		const char *cond;
		size_t k;

		snprintf(args, sizeof(args), "{\"city\":\"%s\"}", cities[i]);
		run(&a, "get_weather", args);
		ck_assert_int_eq(a.st, TOOL_OK);
		t = get_int(a.json, "temperature_c");
		cond = get_str(a.json, "conditions");
		ck_assert(t >= -9 && t <= 35);
		if (!strcmp(cond, "snow"))
			ck_assert(t <= 0);
		ck_assert(get_int(a.json, "humidity_percent") >= 30 &&
			  get_int(a.json, "humidity_percent") <= 95);
		ck_assert(get_int(a.json, "wind_kph") >= 0 &&
			  get_int(a.json, "wind_kph") <= 45);
		ck_assert(strstr(get_str(a.json, "summary"), cities[i]));
		for (k = 0; k < 8; k++)
			if (!strcmp(cond, conds[k]) && !seen[k]++)
				kinds++;
		run_release(&a);
	}
	ck_assert_int_ge(kinds, 3);
}
END_TEST

START_TEST(test_weather_errors)
{
	char *longcity = repeat("x", 129);
	struct buf args = BUF_INIT;

	expect_error("get_weather", "{}", "arguments.city: is required");
	expect_error("get_weather", "{\"city\":\"   \"}",
		     "city must not be blank");
	expect_error("get_weather", "{\"city\":\"Par\\u0001is\"}",
		     "control characters");
	buf_addf(&args, "{\"city\":\"%s\"}", longcity);
	expect_error("get_weather", args.data,
		     "arguments.city: must be at most 128 characters");
	buf_release(&args);
	free(longcity);
}
END_TEST

/* --- database tools (EVR_TEST_DATABASE_URL) ------------------------------*/

static struct db tdb;
static char org_a[33], org_b[33], ses_a[33], ses_b[33];

static void sql_one(const char *sql, int n, const char *const *p, char *out,
		    size_t outlen)
{
	PGresult *res = db_exec(&tdb, sql, n, p);
	const char *v;

	ck_assert_msg(res != NULL, "sql failed: %s", sql);
	v = db_val(res, 0, 0);
	if (out) {
		ck_assert_ptr_nonnull(v);
		snprintf(out, outlen, "%s", v);
	}
	PQclear(res);
}

static const char sql_new_org[] =
	"WITH o AS (INSERT INTO organizations (name) VALUES ('test_tools') "
	"RETURNING id) SELECT replace(id::text, '-', '') FROM o";
static const char sql_seed[] = "SELECT evr_seed_org($1::uuid)";
static const char sql_new_session[] =
	"SELECT substr(evr_session_create($1::uuid, NULL, NULL, NULL, "
	"'First title', '{x,y}', NULL, NULL, NULL)->>'id', 5)";
/* Check skips the teardown of a failed case: its rows are swept later. */
static const char sql_drop_stale[] =
	"DELETE FROM organizations WHERE name = 'test_tools' "
	"AND created_at < now() - interval '10 minutes'";
static const char sql_drop_orgs[] =
	"DELETE FROM organizations WHERE id IN ($1::uuid, $2::uuid)";

static void db_setup(void)
{
	const char *url = getenv("EVR_TEST_DATABASE_URL");
	const char *p[1];

	ck_assert_int_eq(db_connect(&tdb, url, 1), 0);
	sql_one(sql_drop_stale, 0, NULL, NULL, 0);
	sql_one(sql_new_org, 0, NULL, org_a, sizeof(org_a));
	sql_one(sql_new_org, 0, NULL, org_b, sizeof(org_b));
	p[0] = org_a;
	sql_one(sql_seed, 1, p, NULL, 0);
	sql_one(sql_new_session, 1, p, ses_a, sizeof(ses_a));
	p[0] = org_b;
	sql_one(sql_seed, 1, p, NULL, 0);
	sql_one(sql_new_session, 1, p, ses_b, sizeof(ses_b));
}

static void db_teardown(void)
{
	const char *p[2] = {org_a, org_b};

	sql_one(sql_drop_orgs, 2, p, NULL, 0);
	db_close(&tdb);
}

static struct tool_ctx ctx_of(const char *org, const char *session)
{
	struct tool_ctx c = {&tdb, org, session, NULL, NULL, NULL, NULL};
	return c;
}

static const char sql_title_of[] =
	"SELECT title FROM sessions WHERE id = $1::uuid";

START_TEST(test_db_session_info)
{
	struct tool_ctx a = ctx_of(org_a, ses_a);
	struct tool_ctx cross = ctx_of(org_b, ses_a);
	struct json_object *tags;
	char id[64];
	struct run r;

	run_ctx(&r, &a, "get_session_info", "{}");
	ck_assert_msg(r.st == TOOL_OK, "%s", r.error.data);
	snprintf(id, sizeof(id), "ses_%s", ses_a);
	ck_assert_str_eq(get_str(r.json, "id"), id);
	ck_assert_str_eq(get_str(r.json, "title"), "First title");
	ck_assert_str_eq(get_str(r.json, "status"), "idle");
	ck_assert(!strncmp(get_str(r.json, "harness_id"), "hns_", 4));
	ck_assert(json_object_is_type(get(r.json, "agent_id"), json_type_null));
	ck_assert(json_object_object_get_ex(r.json, "model_id", NULL));
	ck_assert_uint_eq(strlen(get_str(r.json, "created_at")), 24);
	tags = get(r.json, "tags");
	ck_assert_uint_eq(json_object_array_length(tags), 2);
	ck_assert_str_eq(
		json_object_get_string(json_object_array_get_idx(tags, 0)),
		"x");
	run_release(&r);

	/* another organization's session does not exist */
	expect_error_ctx(&cross, "get_session_info", "{}",
			 "This session no longer exists.");
}
END_TEST

START_TEST(test_db_session_title)
{
	struct tool_ctx a = ctx_of(org_a, ses_a);
	struct tool_ctx cross = ctx_of(org_b, ses_a);
	const char *p[1] = {ses_a};
	char title[600], *s;
	struct buf args = BUF_INIT;
	struct run r;

	run_ctx(&r, &a, "write_session_title",
		"{\"title\":\"  Trip \\n\\tplanning \xc3\xa9  \\n\"}");
	ck_assert_msg(r.st == TOOL_OK, "%s", r.error.data);
	ck_assert_str_eq(get_str(r.json, "title"), "Trip planning \xc3\xa9");
	run_release(&r);
	sql_one(sql_title_of, 1, p, title, sizeof(title));
	ck_assert_str_eq(title, "Trip planning \xc3\xa9");

	expect_error_ctx(&cross, "write_session_title",
			 "{\"title\":\"Hijack\"}",
			 "This session no longer exists.");
	sql_one(sql_title_of, 1, p, title, sizeof(title));
	ck_assert_str_eq(title, "Trip planning \xc3\xa9");

	expect_error_ctx(&a, "write_session_title", "{\"title\":\" \\n \"}",
			 "title must not be blank");
	expect_error_ctx(&a, "write_session_title", "{\"title\":\"a\\u0000b\"}",
			 "not valid UTF-8");
	/* 300 characters pass the schema, 600 bytes do not pass the tool */
	s = repeat("\xc3\xa9", 300);
	buf_addf(&args, "{\"title\":\"%s\"}", s);
	expect_error_ctx(&a, "write_session_title", args.data,
			 "longer than 512 bytes");
	free(s);
	/* exactly 512 bytes is fine */
	s = repeat("\xc3\xa9", 256);
	buf_reset(&args);
	buf_addf(&args, "{\"title\":\"%s\"}", s);
	run_ctx(&r, &a, "write_session_title", args.data);
	ck_assert_msg(r.st == TOOL_OK, "%s", r.error.data);
	run_release(&r);
	sql_one(sql_title_of, 1, p, title, sizeof(title));
	ck_assert_str_eq(title, s);
	free(s);
	buf_release(&args);
}
END_TEST

START_TEST(test_db_kv_basic)
{
	struct tool_ctx a = ctx_of(org_a, ses_a);
	struct tool_ctx b = ctx_of(org_b, ses_b);
	struct run r;

	run_ctx(&r, &a, "kv_store", "{\"operation\":\"list\"}");
	ck_assert_msg(r.st == TOOL_OK, "%s", r.error.data);
	ck_assert_str_eq(r.result.data,
			 "{\"operation\":\"list\",\"keys\":[],\"count\":0}");
	run_release(&r);

	run_ctx(&r, &a, "kv_store",
		"{\"operation\":\"set\",\"key\":\"user.lang\",\"value\":"
		"\"fr \\\"quoted\\\" \xc3\xa9\"}");
	ck_assert_msg(r.st == TOOL_OK, "%s", r.error.data);
	ck_assert(get_bool(r.json, "stored"));
	run_release(&r);
	run_ctx(&r, &a, "kv_store",
		"{\"operation\":\"set\",\"key\":\"b\",\"value\":\"{\\\"n\\\":1}"
		"\"}");
	ck_assert_int_eq(r.st, TOOL_OK);
	run_release(&r);

	run_ctx(&r, &a, "kv_store",
		"{\"operation\":\"get\",\"key\":\"user.lang\"}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert(get_bool(r.json, "found"));
	ck_assert_str_eq(get_str(r.json, "value"), "fr \"quoted\" \xc3\xa9");
	run_release(&r);

	/* replace */
	run_ctx(&r, &a, "kv_store",
		"{\"operation\":\"set\",\"key\":\"user.lang\",\"value\":"
		"\"de\"}");
	ck_assert_int_eq(r.st, TOOL_OK);
	run_release(&r);
	run_ctx(&r, &a, "kv_store",
		"{\"operation\":\"get\",\"key\":\"user.lang\"}");
	ck_assert_str_eq(get_str(r.json, "value"), "de");
	run_release(&r);

	run_ctx(&r, &a, "kv_store",
		"{\"operation\":\"list\",\"key\":\"ignored\"}");
	ck_assert_str_eq(
		r.result.data,
		"{\"operation\":\"list\",\"keys\":[\"b\",\"user.lang\"],"
		"\"count\":2}");
	run_release(&r);

	/* another session (of another organization) sees none of it */
	run_ctx(&r, &b, "kv_store",
		"{\"operation\":\"get\",\"key\":\"user.lang\"}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert(!get_bool(r.json, "found"));
	ck_assert(json_object_is_type(get(r.json, "value"), json_type_null));
	run_release(&r);

	run_ctx(&r, &a, "kv_store", "{\"operation\":\"delete\",\"key\":\"b\"}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert(get_bool(r.json, "deleted"));
	run_release(&r);
	run_ctx(&r, &a, "kv_store", "{\"operation\":\"delete\",\"key\":\"b\"}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert(!get_bool(r.json, "deleted"));
	run_release(&r);
	run_ctx(&r, &a, "kv_store", "{\"operation\":\"get\",\"key\":\"b\"}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert(!get_bool(r.json, "found"));
	run_release(&r);
}
END_TEST

START_TEST(test_db_kv_scoping)
{
	struct tool_ctx a = ctx_of(org_a, ses_a);
	struct tool_ctx cross = ctx_of(org_b, ses_a);
	struct run r;

	run_ctx(&r, &a, "kv_store",
		"{\"operation\":\"set\",\"key\":\"secret\",\"value\":\"s\"}");
	ck_assert_int_eq(r.st, TOOL_OK);
	run_release(&r);

	/* org B naming org A's session: nothing is read or written */
	expect_error_ctx(
		&cross, "kv_store",
		"{\"operation\":\"set\",\"key\":\"k\",\"value\":\"v\"}",
		"This session no longer exists.");
	expect_error_ctx(&cross, "kv_store",
			 "{\"operation\":\"get\",\"key\":\"secret\"}",
			 "This session no longer exists.");
	run_ctx(&r, &cross, "kv_store",
		"{\"operation\":\"delete\",\"key\":\"secret\"}");
	ck_assert_int_eq(r.st, TOOL_OK);
	ck_assert(!get_bool(r.json, "deleted"));
	run_release(&r);
	run_ctx(&r, &cross, "kv_store", "{\"operation\":\"list\"}");
	ck_assert_int_eq(get_int(r.json, "count"), 0);
	run_release(&r);

	run_ctx(&r, &a, "kv_store",
		"{\"operation\":\"get\",\"key\":\"secret\"}");
	ck_assert(get_bool(r.json, "found"));
	run_release(&r);
}
END_TEST

static const char sql_fill[] =
	"INSERT INTO session_kv (session_id, key, value) "
	"SELECT $1::uuid, 'k' || i, to_jsonb(i) FROM generate_series(1, 999) i";
static const char sql_count[] =
	"SELECT count(*) FROM session_kv WHERE session_id = $1::uuid";
static const char sql_delete_session[] =
	"SELECT evr_session_delete($1::uuid, $2::uuid)";

START_TEST(test_db_kv_limits)
{
	struct tool_ctx a = ctx_of(org_a, ses_a);
	const char *p[2] = {ses_a, org_a};
	char count[16], *s;
	struct buf args = BUF_INIT;
	struct run r;

	expect_error_ctx(&a, "kv_store", "{\"operation\":\"get\"}",
			 "key is required for operation \"get\"");
	expect_error_ctx(&a, "kv_store",
			 "{\"operation\":\"set\",\"key\":\"k\"}",
			 "value is required for operation \"set\"");
	expect_error_ctx(
		&a, "kv_store",
		"{\"operation\":\"set\",\"key\":\"a\\nb\",\"value\":\"v\"}",
		"without control characters");
	expect_error_ctx(&a, "kv_store",
			 "{\"operation\":\"set\",\"key\":\"k\",\"value\":"
			 "\"a\\u0000b\"}",
			 "without NUL");
	expect_error_ctx(&a, "kv_store",
			 "{\"operation\":\"set\",\"key\":\"\",\"value\":\"v\"}",
			 "arguments.key: must be at least 1 characters");
	expect_error_ctx(&a, "kv_store",
			 "{\"operation\":\"set\",\"key\":\"k\",\"value\":5}",
			 "arguments.value: must be a string");

	/* 200 characters pass the schema, 400 bytes do not pass the tool */
	s = repeat("\xc3\xa9", 200);
	buf_addf(&args, "{\"operation\":\"get\",\"key\":\"%s\"}", s);
	expect_error_ctx(&a, "kv_store", args.data,
			 "key must be 1 to 256 bytes long");
	free(s);
	/* 256 bytes is fine */
	s = repeat("k", 256);
	buf_reset(&args);
	buf_addf(&args,
		 "{\"operation\":\"set\",\"key\":\"%s\",\"value\":\"v\"}", s);
	run_ctx(&r, &a, "kv_store", args.data);
	ck_assert_msg(r.st == TOOL_OK, "%s", r.error.data);
	run_release(&r);
	free(s);

	/* values: 64 KiB exactly, then 40,000 characters in 80,000 bytes */
	s = repeat("v", TOOLS_KV_VALUE_MAX);
	buf_reset(&args);
	buf_addf(&args,
		 "{\"operation\":\"set\",\"key\":\"big\",\"value\":\"%s\"}", s);
	run_ctx(&r, &a, "kv_store", args.data);
	ck_assert_msg(r.st == TOOL_OK, "%s", r.error.data);
	run_release(&r);
	free(s);
	run_ctx(&r, &a, "kv_store", "{\"operation\":\"get\",\"key\":\"big\"}");
	ck_assert_uint_eq(strlen(get_str(r.json, "value")), TOOLS_KV_VALUE_MAX);
	run_release(&r);
	s = repeat("\xc3\xa9", 40000);
	buf_reset(&args);
	buf_addf(&args,
		 "{\"operation\":\"set\",\"key\":\"big\",\"value\":\"%s\"}", s);
	expect_error_ctx(&a, "kv_store", args.data,
			 "value is longer than 65536 bytes");
	free(s);

	/* 1000 keys at most: 2 stored + 998 more = 1000 */
	sql_one("DELETE FROM session_kv WHERE session_id = $1::uuid", 1, p,
		NULL, 0);
	sql_one(sql_fill, 1, p, NULL, 0);
	run_ctx(&r, &a, "kv_store",
		"{\"operation\":\"set\",\"key\":\"last\",\"value\":\"v\"}");
	ck_assert_msg(r.st == TOOL_OK, "%s", r.error.data);
	run_release(&r);
	expect_error_ctx(&a, "kv_store",
			 "{\"operation\":\"set\",\"key\":\"one-more\","
			 "\"value\":\"v\"}",
			 "already holds 1000 keys");
	/* replacing an existing key is still allowed when full */
	run_ctx(&r, &a, "kv_store",
		"{\"operation\":\"set\",\"key\":\"k1\",\"value\":\"new\"}");
	ck_assert_msg(r.st == TOOL_OK, "%s", r.error.data);
	run_release(&r);
	run_ctx(&r, &a, "kv_store", "{\"operation\":\"list\"}");
	ck_assert_int_eq(get_int(r.json, "count"), 1000);
	run_release(&r);
	/* values of other JSON types (written by other means) come back as
	 * JSON */
	run_ctx(&r, &a, "kv_store", "{\"operation\":\"get\",\"key\":\"k7\"}");
	ck_assert_int_eq(get_int(r.json, "value"), 7);
	run_release(&r);

	/* the store goes with its session */
	sql_one(sql_delete_session, 2, p, NULL, 0);
	sql_one(sql_count, 1, p, count, sizeof(count));
	ck_assert_str_eq(count, "0");
	expect_error_ctx(
		&a, "kv_store",
		"{\"operation\":\"set\",\"key\":\"k\",\"value\":\"v\"}",
		"This session no longer exists.");
	expect_error_ctx(&a, "get_session_info", "{}",
			 "This session no longer exists.");
	expect_error_ctx(&a, "write_session_title", "{\"title\":\"T\"}",
			 "This session no longer exists.");
	buf_release(&args);
}
END_TEST

/* ------------------------------------------------------------------------*/

static Suite *tools_suite(void)
{
	Suite *s = suite_create("tools");
	TCase *tc = tcase_create("core");
	TCase *db;

	tcase_add_test(tc, test_capability_of);
	tcase_add_test(tc, test_table_matches_catalog);
	tcase_add_test(tc, test_unknown);
	tcase_add_test(tc, test_schema_errors);
	tcase_add_test(tc, test_no_database);
	tcase_add_test(tc, test_text_ok);
	tcase_add_test(tc, test_add_number);
	tcase_add_test(tc, test_time_zones);
	tcase_add_test(tc, test_time_invalid);
	tcase_add_test(tc, test_time_restores_tz);
	tcase_add_test(tc, test_time_tzdir);
	tcase_add_test(tc, test_time_now);
	tcase_add_test(tc, test_todos_ok);
	tcase_add_test(tc, test_todos_invalid);
	tcase_add_test(tc, test_calculate);
	tcase_add_test(tc, test_calculate_errors);
	tcase_add_test(tc, test_weather);
	tcase_add_test(tc, test_weather_errors);
	suite_add_tcase(s, tc);

	if (getenv("EVR_TEST_DATABASE_URL")) {
		db = tcase_create("database");
		/* checked: each case gets its own connection and rows, also
		 * under CK_FORK=yes */
		tcase_add_checked_fixture(db, db_setup, db_teardown);
		tcase_set_timeout(db, 30);
		tcase_add_test(db, test_db_session_info);
		tcase_add_test(db, test_db_session_title);
		tcase_add_test(db, test_db_kv_basic);
		tcase_add_test(db, test_db_kv_scoping);
		tcase_add_test(db, test_db_kv_limits);
		suite_add_tcase(s, db);
	} else {
		fprintf(stderr, "test_tools: EVR_TEST_DATABASE_URL not set, "
				"database cases skipped\n");
	}
	return s;
}

int main(void)
{
	return check_run(tools_suite());
}
