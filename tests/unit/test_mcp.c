/* Unit tests of the MCP client's protocol (fcgi/runner/mcp.c), no
 * network: request bodies, a response read from a JSON body or an SSE
 * stream split at every byte, the size cap, results for the model, and
 * tool names. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mcp.h"
#include "check_run.h"

START_TEST(requests_are_json_rpc)
{
	struct buf b = BUF_INIT;
	struct json_object *p = json_object_new_object(), *o;
	struct apierr e;

	json_object_object_add(p, "name", json_object_new_string("x\"y"));
	mcp_request(&b, 7, "tools/call", p);
	o = jx_parse(b.data, b.len, &e);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(jx_gets(o, "jsonrpc"), "2.0");
	ck_assert_int_eq(json_object_get_int(jx_get(o, "id")), 7);
	ck_assert_str_eq(jx_gets(jx_get(o, "params"), "name"), "x\"y");
	json_object_put(o);
	buf_reset(&b);
	mcp_request(&b, 0, "notifications/initialized", NULL);
	ck_assert_str_eq(b.data, "{\"jsonrpc\":\"2.0\",\"method\":"
				 "\"notifications/initialized\"}");
	json_object_put(p);
	buf_release(&b);
}
END_TEST

/* Feed body in pieces of `step` bytes; the result of the reading. */
static int read_all(struct mcp_reader *rd, const char *body, size_t step)
{
	size_t i, n = strlen(body);
	int r = 0;

	for (i = 0; i < n && r == 0; i += step)
		r = mcp_reader_feed(rd, body + i, i + step > n ? n - i : step);
	if (r < 0)
		return -1;
	return r == 1 ? 0 : mcp_reader_end(rd);
}

START_TEST(sse_response_found_in_any_split)
{
	static const char body[] =
		": hello\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\","
		"\"method\":\"notifications/progress\"}\r\n\r\nevent: other\n"
		"data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n"
		"data: not json\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\n"
		"data: \"result\":{\"x\":1}}\n\ndata: never read";
	size_t step;

	for (step = 1; step <= sizeof(body); step++) {
		struct mcp_reader rd;
		struct buf why = BUF_INIT;
		mcp_reader_init(&rd, 2, "text/event-stream; charset=utf-8",
				1 << 20);
		ck_assert_int_eq(read_all(&rd, body, step), 0);
		ck_assert_int_eq(json_object_get_int(jx_get(
					 mcp_result(rd.response, &why), "x")),
				 1);
		mcp_reader_release(&rd);
		buf_release(&why);
	}
}
END_TEST

START_TEST(json_bodies_and_errors)
{
	static const struct {
		const char *ctype, *body;
		int ok;
	} cases[] = {
		{"application/json",
		 "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}", 1},
		{NULL, "[{\"method\":\"x\"},{\"id\":5,\"result\":{}}]", 1},
		{"application/json", "{\"id\":6,\"result\":{}}", 0},
		{"application/json", "{\"id\":5,\"result\":{}", 0},
		{"application/json", "\xff\xfe{}", 0},
		{"application/json", "", 0},
		{"text/event-stream", "data: {\"id\":5,\"result\":{}}", 1},
		{"text/event-stream", "data: {\"id\":5,\"resu", 0},
		{"text/event-stream", "event: message\n\n\n", 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mcp_reader rd;
		mcp_reader_init(&rd, 5, cases[i].ctype, 1 << 20);
		ck_assert_msg(read_all(&rd, cases[i].body, 3) ==
				      (cases[i].ok ? 0 : -1),
			      "case %zu", i);
		ck_assert_msg(cases[i].ok || rd.error[0], "case %zu", i);
		mcp_reader_release(&rd);
	}
}
END_TEST

START_TEST(bodies_past_the_cap_are_refused)
{
	struct mcp_reader rd;
	char chunk[1000];

	memset(chunk, ' ', sizeof(chunk));
	mcp_reader_init(&rd, 1, "application/json", 4096);
	ck_assert_int_eq(mcp_reader_feed(&rd, chunk, 1000), 0);
	ck_assert_int_eq(mcp_reader_feed(&rd, chunk, 1000), 0);
	ck_assert_int_eq(mcp_reader_feed(&rd, chunk, 1000), 0);
	ck_assert_int_eq(mcp_reader_feed(&rd, chunk, 1000), 0);
	ck_assert_int_eq(mcp_reader_feed(&rd, chunk, 1000), -1);
	ck_assert_ptr_nonnull(strstr(rd.error, "larger than 4 KiB"));
	mcp_reader_release(&rd);
}
END_TEST

static enum tool_status call(const char *result, struct buf *text,
			     struct buf *error)
{
	struct apierr e;
	struct json_object *o = jx_parse(result, strlen(result), &e);
	enum tool_status st;

	ck_assert_ptr_nonnull(o);
	buf_reset(text);
	buf_reset(error);
	st = mcp_call_result(o, text, error);
	json_object_put(o);
	return st;
}

START_TEST(call_results_for_the_model)
{
	struct buf text = BUF_INIT, error = BUF_INIT, why = BUF_INIT;
	struct json_object *resp;
	struct apierr e;
	static const char rpcerr[] =
		"{\"id\":1,\"error\":{\"code\":-32602,\"message\":\"bad\"}}";

	ck_assert_int_eq(
		call("{\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
		     "{\"type\":\"image\",\"mimeType\":\"image/png\","
		     "\"data\":\"AAAA\"},{\"type\":\"resource\","
		     "\"resource\":{\"uri\":\"x:1\",\"text\":\"r\"}}]}",
		     &text, &error),
		TOOL_OK);
	ck_assert_str_eq(text.data, "a\n[image image/png (not shown)]\nr");
	ck_assert_int_eq(call("{\"content\":[{\"type\":\"text\",\"text\":"
			      "\"nope\"}],\"isError\":true}",
			      &text, &error),
			 TOOL_ERROR);
	ck_assert_str_eq(error.data, "The tool reported an error: nope");
	ck_assert_int_eq(
		call("{\"content\":[],\"structuredContent\":{\"a\":1}}", &text,
		     &error),
		TOOL_OK);
	ck_assert_str_eq(text.data, "{\"a\":1}");
	ck_assert_int_eq(call("{\"content\":[1,null,{}]}", &text, &error),
			 TOOL_OK);
	resp = jx_parse(rpcerr, strlen(rpcerr), &e);
	ck_assert_ptr_null(mcp_result(resp, &why));
	ck_assert_str_eq(why.data,
			 "it answered with an error: bad (code -32602)");
	json_object_put(resp);
	buf_release(&text);
	buf_release(&error);
	buf_release(&why);
}
END_TEST

START_TEST(tool_names_are_namespaced_and_sanitised)
{
	char out[MCP_TOOL_NAME_MAX + 1], longname[200];
	struct json_object *t, *d;
	struct apierr e;
	static const char tool[] = "{\"name\":\"a.b c\",\"inputSchema\":7}";

	mcp_tool_name("my server", "get/sum", out);
	ck_assert_str_eq(out, "my_server__get_sum");
	mcp_tool_name("\xc3\xa9t\xc3\xa9", "x-y_z", out);
	ck_assert_str_eq(out, "__t____x-y_z");
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	mcp_tool_name("s", longname, out);
	ck_assert_uint_eq(strlen(out), MCP_TOOL_NAME_MAX);
	t = jx_parse(tool, strlen(tool), &e);
	d = mcp_tool_def("srv", t);
	ck_assert_str_eq(jx_gets(d, "name"), "srv__a_b_c");
	ck_assert_str_eq(jx_gets(jx_get(d, "parameters"), "type"), "object");
	json_object_put(d);
	json_object_put(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mcp");
	TCase *tc = tcase_create("mcp");

	tcase_add_test(tc, requests_are_json_rpc);
	tcase_add_test(tc, sse_response_found_in_any_split);
	tcase_add_test(tc, json_bodies_and_errors);
	tcase_add_test(tc, bodies_past_the_cap_are_refused);
	tcase_add_test(tc, call_results_for_the_model);
	tcase_add_test(tc, tool_names_are_namespaced_and_sanitised);
	suite_add_tcase(s, tc);
	return check_run(s);
}
