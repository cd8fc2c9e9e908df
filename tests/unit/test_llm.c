/* Unit tests of fcgi/runner/llm: the SSE framing, the OpenAI and
 * Anthropic stream parsers fed at every split point, the request bodies
 * both drivers build, provider error text, and the llmsim planner. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "llm.h"
#include "llmsim.h"
#include "sse_parse.h"
#include "check_run.h"

/* --- recorded streams ----------------------------------------------- */

#define OA_HEAD                                                                \
	"data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\","  \
	"\"created\":1730000000,\"model\":\"gpt-4o-mini-2024-07-18\","         \
	"\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":"

static const char oa_text[] = OA_HEAD
	"[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
	"\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],"
	"\"usage\":null}\n\n"
	": keep-alive\n\n" OA_HEAD
	"[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,"
	"\"finish_reason\":null}],\"usage\":null}\n\n" OA_HEAD
	"[{\"index\":0,\"delta\":{\"content\":\" w\xc3\xb6rld \xe2\x98\x80\"},"
	"\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n" OA_HEAD
	"[{\"index\":0,\"delta\":{},\"logprobs\":null,"
	"\"finish_reason\":\"stop\"}],\"usage\":null}\n\n" OA_HEAD
	"[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,"
	"\"total_tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n"
	"data: [DONE]\n\n";

static const char oa_text_log[] = "text:Hello\n"
				  "text: w\xc3\xb6rld \xe2\x98\x80\n"
				  "usage:12,3\n"
				  "finish:0 stop:stop\n";

#define OA_TC(i, rest)                                                         \
	OA_HEAD "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":" #i      \
		"," rest "}]},\"finish_reason\":null}]}\n\n"

static const char oa_tools[] = OA_HEAD
	"[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"
	"\"tool_calls\":[{\"index\":0,\"id\":\"call_abc\",\"type\":\"function\","
	"\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},"
	"\"finish_reason\":null}]}\n\n" OA_TC(
		0, "\"function\":{\"arguments\":\"{\\\"loc\"}")
		OA_TC(0, "\"function\":{\"arguments\":\"ation\\\": \\\"Par\"}") OA_TC(
			1,
			"\"id\":\"call_def\",\"type\":\"function\",\"function\":"
			"{\"name\":\"get_time\",\"arguments\":\"\"}")
			OA_TC(0, "\"function\":{\"arguments\":\"is\\\"}\"}") OA_TC(
				1,
				"\"function\":{\"arguments\":\"{\\\"tz\\\":\"}")
				OA_TC(1,
				      "\"function\":{\"arguments\":\"\\\"CET\\\"}\"}")
					OA_TC(2,
					      "\"id\":\"call_ghi\",\"type\":\"function\",\"function\":"
					      "{\"name\":\"now\",\"arguments\":\"\"}")
						OA_HEAD
	"[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n" OA_HEAD
	"[],\"usage\":{\"prompt_tokens\":80,\"completion_tokens\":41,"
	"\"total_tokens\":121}}\n\n"
	"data: [DONE]\n\n";

static const char oa_tools_log[] =
	"tool:call_abc|get_weather|{\"location\": \"Paris\"}\n"
	"tool:call_def|get_time|{\"tz\":\"CET\"}\n"
	"tool:call_ghi|now|{}\n"
	"usage:80,41\n"
	"finish:0 stop:tool_calls\n";

static const char oa_error[] = OA_HEAD
	"[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n"
	"data: {\"error\":{\"message\":\"The server had an error while processing "
	"your request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n" OA_HEAD
	"[{\"index\":0,\"delta\":{\"content\":\"ignored\"},\"finish_reason\":null}]}\n\n";

static const char oa_error_log[] =
	"text:Hi\n"
	"error:server_error|The server had an error while processing your "
	"request.|1\n"
	"finish:-1 stop:-\n";

#define AN_EV(name, json) "event: " name "\ndata: " json "\n\n"

static const char an_full[] = AN_EV(
	"message_start",
	"{\"type\":\"message_start\",\"message\":{\"id\":"
	"\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":"
	"\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\","
	"\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
	"\"input_tokens\":472,\"cache_creation_input_tokens\":0,"
	"\"cache_read_input_tokens\":8,\"output_tokens\":2}}}") AN_EV("content_block_start",
								      "{\"type\":\"content_block_start\",\"index\":0,"
								      "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\","
								      "\"signature\":\"\"}}")
	AN_EV("ping", "{\"type\": \"ping\"}") AN_EV(
		"content_block_delta",
		"{\"type\":\"content_block_delta\",\"index\":0,"
		"\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"The user wants "
		"the weather.\"}}") AN_EV("content_block_delta",
					  "{\"type\":\"content_block_delta\",\"index\":0,"
					  "\"delta\":{\"type\":\"signature_delta\",\"signature\":"
					  "\"EqQBCgIYAhIM1gbcDa9GJwZA2b3h\"}}")
		AN_EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}") AN_EV(
			"content_block_start",
			"{\"type\":\"content_block_start\",\"index\":1,"
			"\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
			AN_EV("content_block_delta",
			      "{\"type\":\"content_block_delta\",\"index\":1,"
			      "\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check \"}}") ": a comment\r\n\r\n" AN_EV("content_block_delta",
															     "{\"type\":\"content_block_delta\",\"index\":1,"
															     "\"delta\":{\"type\":\"text_delta\",\"text\":\"the weather \xe2\x98\x80.\"}}")
				AN_EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}") AN_EV(
					"content_block_start",
					"{\"type\":\"content_block_start\",\"index\":2,"
					"\"content_block\":{\"type\":\"tool_use\",\"id\":"
					"\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\","
					"\"input\":{}}}") AN_EV("content_block_delta",
								"{\"type\":\"content_block_delta\",\"index\":2,"
								"\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}")
					AN_EV("content_block_delta",
					      "{\"type\":\"content_block_delta\",\"index\":2,"
					      "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":"
					      "\"{\\\"location\\\": \\\"San Fra\"}}")
						AN_EV("content_block_delta",
						      "{\"type\":\"content_block_delta\",\"index\":2,"
						      "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":"
						      "\"ncisco, CA\\\"}\"}}") AN_EV("content_block_stop",
										     "{\"type\":\"content_block_stop\",\"index\":2}")
							AN_EV("content_block_start",
							      "{\"type\":\"content_block_start\",\"index\":3,"
							      "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_02\","
							      "\"name\":\"now\",\"input\":{}}}")
								AN_EV("content_block_stop",
								      "{\"type\":\"content_block_stop\",\"index\":3}")
									AN_EV("message_delta",
									      "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
									      "\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}")
										AN_EV("message_stop",
										      "{\"type\":\"message_stop\"}");

static const char an_full_log[] =
	"usage:480,2\n"
	"think:The user wants the weather.\n"
	"text:Let me check \n"
	"text:the weather \xe2\x98\x80.\n"
	"tool:toolu_01T1x1fJ34qAmk2tNTrN7Up6|get_weather|{\"location\": \"San "
	"Francisco, CA\"}\n"
	"tool:toolu_02|now|{}\n"
	"usage:480,89\n"
	"finish:0 stop:tool_use sig:EqQBCgIYAhIM1gbcDa9GJwZA2b3h\n";

static const char an_error[] = AN_EV(
	"message_start",
	"{\"type\":\"message_start\",\"message\":{\"id\":\"m\","
	"\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}")
	AN_EV("content_block_start",
	      "{\"type\":\"content_block_start\",\"index\":0,"
	      "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
		AN_EV("content_block_delta",
		      "{\"type\":\"content_block_delta\",\"index\":0,"
		      "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}")
			AN_EV("error",
			      "{\"type\": \"error\", \"error\": {\"type\": "
			      "\"overloaded_error\", \"message\": \"Overloaded\"}}");

static const char an_error_log[] = "usage:10,1\n"
				   "text:Hel\n"
				   "error:overloaded_error|Overloaded|1\n"
				   "finish:-1 stop:-\n";

/* --- a sink that writes down every call ----------------------------- */

static void rec_text(void *ctx, const char *s, size_t n)
{
	buf_adds(ctx, "text:");
	buf_add(ctx, s, n);
	buf_addch(ctx, '\n');
}

static void rec_thinking(void *ctx, const char *s, size_t n)
{
	buf_adds(ctx, "think:");
	buf_add(ctx, s, n);
	buf_addch(ctx, '\n');
}

static void rec_tool(void *ctx, const char *id, const char *name,
		     const char *args)
{
	buf_addf(ctx, "tool:%s|%s|%s\n", id, name, args);
}

static void rec_usage(void *ctx, long in, long out)
{
	buf_addf(ctx, "usage:%ld,%ld\n", in, out);
}

static void rec_error(void *ctx, const char *code, const char *msg, int retry)
{
	buf_addf(ctx, "error:%s|%s|%d\n", code, msg, retry);
}

/* Feed s[0..n) in pieces (at `split` if step is 0, else `step` bytes at
 * a time) and return the log: sink calls, then the outcome. */
static char *run(enum llm_kind kind, const char *s, size_t n, size_t split,
		 size_t step)
{
	struct buf log = BUF_INIT;
	struct llm_sink sink = {&log,     rec_text,  rec_thinking,
				rec_tool, rec_usage, rec_error};
	struct llm_parser *p;
	size_t off = 0, len;
	int rc = 0, first = 1;

	buf_init(&log, 0);
	p = llm_parser_new(kind, &sink);
	while ((off < n || first) && !rc) {
		len = step ? step : first ? split : n - off;
		if (len > n - off)
			len = n - off;
		rc = llm_parser_feed(p, s + off, len);
		off += len;
		first = 0;
	}
	if (rc) {
		buf_adds(&log, "feed:-1\n");
		ck_assert_ptr_nonnull(llm_parser_error(p));
	}
	rc = llm_parser_finish(p);
	buf_addf(&log, "finish:%d stop:%s", rc,
		 llm_parser_stop_reason(p) ? llm_parser_stop_reason(p) : "-");
	if (llm_parser_thinking_signature(p))
		buf_addf(&log, " sig:%s", llm_parser_thinking_signature(p));
	buf_addch(&log, '\n');
	if (rc)
		ck_assert_ptr_nonnull(llm_parser_error(p));
	llm_parser_free(p);
	return buf_detach(&log, NULL);
}

/* The stream with its line ends turned to CRLF (crlf=1) or CR (2). */
static char *line_ends(const char *s, int crlf)
{
	struct buf b = BUF_INIT;
	const char *start = s;
	for (; *s; s++) {
		if (*s == '\n' && (s == start || s[-1] != '\r'))
			buf_adds(&b, crlf == 1 ? "\r\n" : "\r");
		else if (*s == '\n')
			buf_addch(&b, '\n');
		else
			buf_addch(&b, *s);
	}
	return buf_detach(&b, NULL);
}

/* Every two-piece split and byte-by-byte feeding give the same log as
 * one piece, and that log is `want`; with LF, CRLF and CR line ends. */
static void check_splits(enum llm_kind kind, const char *s, const char *want)
{
	int form;
	for (form = 0; form < 3; form++) {
		char *in = form ? line_ends(s, form) : xstrdup(s);
		size_t i, n = strlen(in);
		char *whole = run(kind, in, n, n, 0), *got;
		ck_assert_str_eq(whole, want);
		for (i = 0; i <= n; i++) {
			got = run(kind, in, n, i, 0);
			if (strcmp(got, whole))
				ck_abort_msg(
					"form %d, split at %zu:\n%s\nwant:\n%s",
					form, i, got, whole);
			free(got);
		}
		got = run(kind, in, n, 0, 1);
		ck_assert_str_eq(got, whole);
		free(got);
		free(whole);
		free(in);
	}
}

START_TEST(openai_text_any_split)
{
	check_splits(LLM_OPENAI, oa_text, oa_text_log);
}
END_TEST

START_TEST(openai_parallel_tools_any_split)
{
	check_splits(LLM_OPENAI, oa_tools, oa_tools_log);
}
END_TEST

START_TEST(openai_stream_error)
{
	check_splits(LLM_OPENAI, oa_error, oa_error_log);
}
END_TEST

START_TEST(anthropic_full_any_split)
{
	check_splits(LLM_ANTHROPIC, an_full, an_full_log);
}
END_TEST

START_TEST(anthropic_error_event)
{
	check_splits(LLM_ANTHROPIC, an_error, an_error_log);
}
END_TEST

/* A stream cut anywhere before its end marker fails at finish, after
 * sink calls that are a prefix of the whole stream's: in particular a
 * tool call is never emitted with arguments that may be incomplete. */
static void check_cuts(enum llm_kind kind, const char *s, const char *full,
		       const char *marker)
{
	size_t i, end = (size_t)(strstr(s, marker) - s);
	for (i = 0; i < end; i++) {
		char *got = run(kind, s, i, i, 0);
		char *fin = strstr(got, "finish:");
		if (!fin || strncmp(fin, "finish:-1", 9) ||
		    strncmp(got, full, (size_t)(fin - got)) ||
		    (kind == LLM_OPENAI && strstr(got, "tool:")))
			ck_abort_msg("cut at %zu:\n%s", i, got);
		free(got);
	}
}

START_TEST(cut_streams_fail)
{
	check_cuts(LLM_OPENAI, oa_tools, oa_tools_log,
		   "{\"index\":0,\"delta\":{},\"finish");
	check_cuts(LLM_OPENAI, oa_text, oa_text_log,
		   "{\"index\":0,\"delta\":{},\"logprobs");
	check_cuts(LLM_ANTHROPIC, an_full, an_full_log, "event: message_delta");
}
END_TEST

START_TEST(openai_edge_cases)
{
	char *got;
	/* [DONE] without a newline, no usage, no id from a local server */
	static const char local[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":"
		"\"hmm\",\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"ls\","
		"\"arguments\":\"{}\"}}]}}]}\n\ndata: [DONE]";
	static const char refusal[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"No.\"},"
		"\"finish_reason\":\"stop\"}]}\n\n"
		"data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\"}}]}\n\n";
	static const char noname[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
		"[{\"index\":0,\"id\":\"c\"}]},\"finish_reason\":\"tool_calls\"}]}\n\n";

	got = run(LLM_OPENAI, local, sizeof(local) - 1, 0, 0);
	ck_assert_ptr_nonnull(strstr(got, "think:hmm\ntool:call_"));
	ck_assert_ptr_nonnull(strstr(got, "|ls|{}\nfinish:0 stop:-"));
	free(got);
	got = run(LLM_OPENAI, refusal, sizeof(refusal) - 1, 0, 0);
	ck_assert_str_eq(got, "text:No.\nfinish:0 stop:stop\n");
	free(got);
	got = run(LLM_OPENAI, noname, sizeof(noname) - 1, 0, 0);
	ck_assert_str_eq(got, "feed:-1\nfinish:-1 stop:tool_calls\n");
	free(got);
}
END_TEST

START_TEST(openai_compatible_servers)
{
	/* every call numbered 0 but with its own id; calls without an
	 * index; all from servers that copy the API loosely */
	static const char same_index[] =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":["
		"{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\","
		"\"arguments\":\"{\\\"x\\\":1}\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":["
		"{\"index\":0,\"id\":\"b\",\"function\":{\"name\":\"g\","
		"\"arguments\":\"{}\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{},"
		"\"finish_reason\":\"tool_calls\"}]}\n\n";
	static const char no_index[] =
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"a\","
		"\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\"\"}}]}}]}"
		"\n\n"
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":"
		"{\"arguments\":\":2}\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"b\","
		"\"function\":{\"name\":\"g\"}}]}}]}\n\n"
		"data: [DONE]\n\n";
	char *got;

	got = run(LLM_OPENAI, same_index, sizeof(same_index) - 1, 7, 0);
	ck_assert_str_eq(got, "tool:a|f|{\"x\":1}\ntool:b|g|{}\n"
			      "finish:0 stop:tool_calls\n");
	free(got);
	got = run(LLM_OPENAI, no_index, sizeof(no_index) - 1, 7, 0);
	ck_assert_str_eq(got, "tool:a|f|{\"x\":2}\ntool:b|g|{}\n"
			      "finish:0 stop:-\n");
	free(got);
}
END_TEST

START_TEST(anthropic_edge_cases)
{
	/* input given whole at the start; a block type and an event type
	 * from a later API version; no message_stop after the stop */
	static const char whole_input[] = AN_EV(
		"content_block_start",
		"{\"type\":\"content_block_start\","
		"\"index\":0,\"content_block\":{\"type\":\"tool_use\","
		"\"id\":\"t1\",\"name\":\"f\",\"input\":{\"a\":[1,2]}}}")
		AN_EV("content_block_stop",
		      "{\"type\":\"content_block_stop\","
		      "\"index\":0}") AN_EV("content_block_start",
					    "{\"type\":\"content_block_start\","
					    "\"index\":1,\"content_block\":{\"type\":\"hologram\"}}")
			AN_EV("content_block_delta",
			      "{\"type\":\"content_block_delta\","
			      "\"index\":1,\"delta\":{\"type\":\"hologram_delta\"}}")
				AN_EV("future_event",
				      "{\"type\":\"future_event\"}")
					AN_EV("message_delta",
					      "{\"type\":\"message_delta\",\"delta\":"
					      "{\"stop_reason\":\"tool_use\"},\"usage\":{\"input_tokens\":"
					      "5,\"output_tokens\":9}}");
	/* two thinking blocks: one signature cannot cover both */
	static const char two_thoughts[] = AN_EV(
		"content_block_start",
		"{\"type\":\"content_block_start\","
		"\"index\":0,\"content_block\":{\"type\":\"thinking\","
		"\"thinking\":\"a\",\"signature\":\"s1\"}}")
		AN_EV("content_block_stop", "{\"type\":\"content_block_stop\","
					    "\"index\":0}")
			AN_EV("content_block_start",
			      "{\"type\":\"content_block_start\","
			      "\"index\":1,\"content_block\":{\"type\":\"thinking\","
			      "\"thinking\":\"b\",\"signature\":\"s2\"}}")
				AN_EV("content_block_stop",
				      "{\"type\":\"content_block_stop\","
				      "\"index\":1}")
					AN_EV("message_stop",
					      "{\"type\":\"message_stop\"}");
	struct llm_sink none = {0};
	struct llm_parser *p;
	char *got;

	got = run(LLM_ANTHROPIC, whole_input, sizeof(whole_input) - 1, 9, 0);
	ck_assert_str_eq(got, "tool:t1|f|{\"a\":[1,2]}\nusage:5,9\n"
			      "finish:0 stop:tool_use\n");
	free(got);
	got = run(LLM_ANTHROPIC, two_thoughts, sizeof(two_thoughts) - 1, 9, 0);
	ck_assert_str_eq(got, "think:a\nthink:b\nfinish:0 stop:-\n");
	free(got);

	/* a sink without callbacks; the error's words reach finish */
	p = llm_parser_new(LLM_ANTHROPIC, &none);
	ck_assert_int_eq(llm_parser_feed(p, an_full, sizeof(an_full) - 1), 0);
	ck_assert_int_eq(llm_parser_finish(p), 0);
	llm_parser_free(p);
	p = llm_parser_new(LLM_ANTHROPIC, &none);
	ck_assert_int_eq(llm_parser_feed(p, an_error, sizeof(an_error) - 1), 0);
	ck_assert_ptr_null(llm_parser_error(p));
	ck_assert_int_eq(llm_parser_finish(p), -1);
	ck_assert_str_eq(llm_parser_error(p), "provider error in the stream: "
					      "overloaded_error: Overloaded");
	llm_parser_free(p);
}
END_TEST

START_TEST(malformed_chunks_fail)
{
	static const char *const oa[] = {
		"data: {not json\n\n", "data: [1,2]\n\n",
		"data: {\"choices\":[]}\n\ndata: {\"a\":1}}\n\n",
		"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\n",
		NULL};
	static const char *const an[] = {
		"event: message_start\ndata: {\"type\":\n\n",
		"data: \"str\"\n\n",
		"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
		"{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}\n\n",
		"data: {\"type\":\"content_block_start\",\"index\":0,"
		"\"content_block\":{\"type\":\"tool_use\"}}\n\n",
		"data: {\"type\":\"content_block_start\",\"index\":0}\n\n",
		NULL};
	size_t i;
	for (i = 0; oa[i]; i++) {
		char *got = run(LLM_OPENAI, oa[i], strlen(oa[i]), 3, 0);
		ck_assert_msg(strstr(got, "feed:-1\nfinish:-1"), "%s", got);
		free(got);
	}
	for (i = 0; an[i]; i++) {
		char *got = run(LLM_ANTHROPIC, an[i], strlen(an[i]), 5, 0);
		ck_assert_msg(strstr(got, "feed:-1\nfinish:-1"), "%s", got);
		free(got);
	}
}
END_TEST

START_TEST(parser_error_messages)
{
	struct llm_sink sink = {0};
	struct llm_parser *p = llm_parser_new(LLM_OPENAI, &sink);
	ck_assert_ptr_null(llm_parser_error(p));
	ck_assert_int_eq(llm_parser_feed(p, "data: nope\n\n", 12), -1);
	ck_assert_ptr_nonnull(strstr(llm_parser_error(p), "malformed chunk"));
	ck_assert_int_eq(llm_parser_feed(p, "data: [DONE]\n\n", 14), -1);
	ck_assert_int_eq(llm_parser_finish(p), -1);
	llm_parser_free(p);

	p = llm_parser_new(LLM_ANTHROPIC, &sink);
	ck_assert_int_eq(llm_parser_feed(p, "event: ping\n", 12), 0);
	ck_assert_int_eq(llm_parser_finish(p), -1);
	ck_assert_ptr_nonnull(strstr(llm_parser_error(p), "cut short"));
	llm_parser_free(p);
}
END_TEST

/* --- sse_parse ------------------------------------------------------ */

static int sse_rec(void *ctx, const char *event, const char *data, size_t len)
{
	buf_addf(ctx, "[%s|%.*s]", event, (int)len, data);
	return 0;
}

static char *sse_run(const char *s, size_t n, size_t split, int *rc)
{
	struct buf log = BUF_INIT;
	struct sse_parser p;
	sse_parser_init(&p, sse_rec, &log);
	*rc = sse_parser_feed(&p, s, split);
	if (!*rc)
		*rc = sse_parser_feed(&p, s + split, n - split);
	if (!*rc)
		*rc = sse_parser_end(&p);
	sse_parser_release(&p);
	return buf_detach(&log, NULL);
}

START_TEST(sse_framing)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"data: a\n\n", "[|a]"},
		{"data: a\r\n\r\n", "[|a]"},
		{"data: a\r\rdata: b\r\r", "[|a][|b]"},
		{"event: x\ndata: 1\ndata:2\ndata:  3\n\n", "[x|1\n2\n 3]"},
		{": comment\ndata: a\n: again\n\n", "[|a]"},
		{"event: e\n\ndata: after\n\n", "[|after]"},
		{"data\n\n", "[|]"},
		{"data:\n\ndata: x\n\n", "[|][|x]"},
		{"id: 7\nretry: 10\nfoo: bar\ndata: v\n\n", "[|v]"},
		{"data: no blank line at the end",
		 "[|no blank line at the end]"},
		{"data: a\n\nevent: only\n", "[|a]"},
		{"data: x\r\n\r\ndata: y\n\rdata: z\r\n\n", "[|x][|y][|z]"},
		{"data: a:b: c\n\n", "[|a:b: c]"},
		{"\n\n\ndata: a\n\n\n", "[|a]"},
	};
	size_t i, k;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = strlen(cases[i].in);
		for (k = 0; k <= n; k++) {
			int rc;
			char *got = sse_run(cases[i].in, n, k, &rc);
			ck_assert_int_eq(rc, 0);
			if (strcmp(got, cases[i].want))
				ck_abort_msg("case %zu split %zu: %s", i, k,
					     got);
			free(got);
		}
	}
}
END_TEST

static int sse_stop(void *ctx, const char *event, const char *data, size_t len)
{
	(void)ctx;
	(void)event;
	return len == 4 && !memcmp(data, "stop", 4);
}

START_TEST(sse_limits)
{
	struct sse_parser p;
	char *big = xmalloc(SSE_MAX_LINE + 2);
	memset(big, 'x', SSE_MAX_LINE + 1);
	big[SSE_MAX_LINE + 1] = '\n';

	sse_parser_init(&p, sse_stop, NULL);
	ck_assert_int_eq(sse_parser_feed(&p, "data: go\n\n", 10), 0);
	ck_assert_int_eq(sse_parser_feed(&p, "data: stop\n\n", 12), -1);
	sse_parser_release(&p);

	sse_parser_init(&p, sse_stop, NULL);
	ck_assert_int_eq(sse_parser_feed(&p, big, SSE_MAX_LINE / 2), 0);
	ck_assert_int_eq(sse_parser_feed(&p, big, SSE_MAX_LINE / 2 + 2), -1);
	sse_parser_release(&p);

	/* many data lines make one event too large as well */
	sse_parser_init(&p, sse_stop, NULL);
	memcpy(big, "data:", 5);
	big[SSE_MAX_LINE / 2] = '\n';
	ck_assert_int_eq(sse_parser_feed(&p, big, SSE_MAX_LINE / 2 + 1), 0);
	ck_assert_int_eq(sse_parser_feed(&p, big, SSE_MAX_LINE / 2 + 1), 0);
	ck_assert_int_eq(sse_parser_feed(&p, big, SSE_MAX_LINE / 2 + 1), -1);
	sse_parser_release(&p);
	free(big);
}
END_TEST

/* --- request bodies ------------------------------------------------- */

static const char history[] =
	"[{\"role\":\"system\",\"content\":\"You are terse.\"},"
	" {\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is "
	"this?\"},{\"type\":\"image\",\"media_type\":\"image/png\",\"data\":"
	"\"iVBORw0KGgo=\"}]},"
	" {\"role\":\"assistant\",\"content\":\"Checking.\",\"thinking\":\"hmm\","
	"  \"thinking_signature\":\"sig1\",\"tool_calls\":["
	"  {\"id\":\"call_1\",\"name\":\"get_weather\",\"arguments\":"
	"\"{\\\"city\\\":\\\"Paris\\\"}\"},"
	"  {\"id\":\"call_2\",\"name\":\"now\",\"arguments\":\"\"}]},"
	" {\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":"
	"\"{\\\"temp\\\":21}\"},"
	" {\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":"
	"\"{\\\"error\\\":\\\"cancelled\\\"}\",\"is_error\":true},"
	" {\"role\":\"user\",\"content\":\"Thanks\"},"
	" {\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":"
	"\"call_3\",\"name\":\"now\",\"arguments\":\"{}\"}]},"
	" {\"role\":\"tool\",\"tool_call_id\":\"call_3\",\"content\":\"noon\"}]";

static const char tools[] =
	"[{\"name\":\"get_weather\",\"description\":\"Weather for a city\","
	"\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"
	"\"string\"}},\"required\":[\"city\"]}},{\"name\":\"now\"}]";

static const char oa_body[] =
	"{\"model\":\"gpt-4o\",\"messages\":["
	"{\"role\":\"system\",\"content\":\"You are terse.\"},"
	"{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is "
	"this?\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
	"\"data:image/png;base64,iVBORw0KGgo=\"}}]},"
	"{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
	"{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
	"\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
	"{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"now\","
	"\"arguments\":\"{}\"}}]},"
	"{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":"
	"\"{\\\"temp\\\":21}\"},"
	"{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":"
	"\"{\\\"error\\\":\\\"cancelled\\\"}\"},"
	"{\"role\":\"user\",\"content\":\"Thanks\"},"
	"{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
	"\"call_3\",\"type\":\"function\",\"function\":{\"name\":\"now\","
	"\"arguments\":\"{}\"}}]},"
	"{\"role\":\"tool\",\"tool_call_id\":\"call_3\",\"content\":\"noon\"}],"
	"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
	"\"description\":\"Weather for a city\",\"parameters\":{\"type\":"
	"\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":"
	"[\"city\"]}}},{\"type\":\"function\",\"function\":{\"name\":\"now\","
	"\"parameters\":{\"type\":\"object\",\"properties\":{}}}}],"
	"\"stream\":true,\"stream_options\":{\"include_usage\":true},"
	"\"max_completion_tokens\":500,\"temperature\":0.5,"
	"\"reasoning_effort\":\"low\"}";

static const char an_body[] =
	"{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,"
	"\"system\":\"You are terse.\",\"messages\":["
	"{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is "
	"this?\"},{\"type\":\"image\",\"source\":{\"type\":\"base64\","
	"\"media_type\":\"image/png\",\"data\":\"iVBORw0KGgo=\"}}]},"
	"{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
	"\"Checking.\"},{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":"
	"\"get_weather\",\"input\":{\"city\":\"Paris\"}},{\"type\":\"tool_use\","
	"\"id\":\"call_2\",\"name\":\"now\",\"input\":{}}]},"
	"{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
	"\"call_1\",\"content\":\"{\\\"temp\\\":21}\"},{\"type\":\"tool_result\","
	"\"tool_use_id\":\"call_2\",\"content\":\"{\\\"error\\\":\\\"cancelled\\\"}\","
	"\"is_error\":true},{\"type\":\"text\",\"text\":\"Thanks\"}]},"
	"{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":"
	"\"call_3\",\"name\":\"now\",\"input\":{}}]},"
	"{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
	"\"call_3\",\"content\":\"noon\"}]}],"
	"\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather for a "
	"city\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":"
	"{\"type\":\"string\"}},\"required\":[\"city\"]}},{\"name\":\"now\","
	"\"input_schema\":{\"type\":\"object\",\"properties\":{}}}],"
	"\"stream\":true,\"temperature\":0.5}";

struct built {
	int rc;
	struct buf url, body, err;
	struct curl_slist *headers;
};

static void build(struct llm_request *r, struct built *b)
{
	buf_init(&b->url, 0);
	buf_init(&b->body, 0);
	buf_init(&b->err, 0);
	b->rc = llm_build(r, &b->url, &b->headers, &b->body, &b->err);
}

static void built_release(struct built *b)
{
	buf_release(&b->url);
	buf_release(&b->body);
	buf_release(&b->err);
	curl_slist_free_all(b->headers);
}

static int has_header(struct curl_slist *h, const char *line)
{
	for (; h; h = h->next)
		if (!strcmp(h->data, line))
			return 1;
	return 0;
}

static void assert_json(const char *got, const char *want)
{
	struct json_object *g = json_tokener_parse(got);
	struct json_object *w = json_tokener_parse(want);
	ck_assert_ptr_nonnull(w);
	if (!g || !json_object_equal(g, w))
		ck_abort_msg("got:\n%s\nwant:\n%s", got,
			     json_object_to_json_string(w));
	json_object_put(g);
	json_object_put(w);
}

START_TEST(openai_request)
{
	struct json_object *msgs = json_tokener_parse(history);
	struct json_object *tl = json_tokener_parse(tools);
	struct llm_request r = {LLM_OPENAI, NULL, "sk-test", "gpt-4o", msgs, tl,
				500,        0.5,  1,         "low",    0};
	struct built b;

	build(&r, &b);
	ck_assert_int_eq(b.rc, 0);
	ck_assert_str_eq(b.url.data,
			 "https://api.openai.com/v1/chat/completions");
	ck_assert(has_header(b.headers, "Authorization: Bearer sk-test"));
	ck_assert(has_header(b.headers, "Content-Type: application/json"));
	assert_json(b.body.data, oa_body);
	built_release(&b);

	/* a compatible server: max_tokens, no key, no tools, all-text
	 * parts collapse to a string */
	json_object_put(msgs);
	msgs = json_tokener_parse("[{\"role\":\"user\",\"content\":[{\"type\":"
				  "\"text\",\"text\":\"a\"},{\"type\":\"text\","
				  "\"text\":\"b\"}]}]");
	r = (struct llm_request){LLM_OPENAI, "http://127.0.0.1:11434/v1/",
				 NULL,       "llama3",
				 msgs,       NULL,
				 64,         0,
				 0,          "none",
				 0};
	build(&r, &b);
	ck_assert_int_eq(b.rc, 0);
	ck_assert_str_eq(b.url.data,
			 "http://127.0.0.1:11434/v1/chat/completions");
	ck_assert(!has_header(b.headers, "Authorization: Bearer "));
	assert_json(
		b.body.data,
		"{\"model\":\"llama3\",\"messages\":[{\"role\":\"user\","
		"\"content\":\"a\\nb\"}],\"stream\":true,\"stream_options\":"
		"{\"include_usage\":true},\"max_tokens\":64}");
	built_release(&b);
	json_object_put(msgs);
	json_object_put(tl);
}
END_TEST

START_TEST(anthropic_request)
{
	struct json_object *msgs = json_tokener_parse(history);
	struct json_object *tl = json_tokener_parse(tools);
	struct llm_request r = {LLM_ANTHROPIC,
				"https://api.anthropic.com",
				"sk-ant",
				"claude-sonnet-4-5",
				msgs,
				tl,
				0,
				0.5,
				1,
				NULL,
				0};
	struct built b;

	build(&r, &b);
	ck_assert_int_eq(b.rc, 0);
	ck_assert_str_eq(b.url.data, "https://api.anthropic.com/v1/messages");
	ck_assert(has_header(b.headers, "x-api-key: sk-ant"));
	ck_assert(has_header(b.headers, "anthropic-version: 2023-06-01"));
	assert_json(b.body.data, an_body);
	built_release(&b);

	/* thinking on, but the open tool loop (call_3) has no signed
	 * thinking block: the step goes without thinking */
	r.reasoning_effort = "high";
	r.base_url = "http://127.0.0.1:9/v1";
	build(&r, &b);
	ck_assert_int_eq(b.rc, 0);
	ck_assert_str_eq(b.url.data, "http://127.0.0.1:9/v1/messages");
	ck_assert_ptr_null(strstr(b.body.data, "\"thinking\""));
	ck_assert_ptr_nonnull(strstr(b.body.data, "\"temperature\":0.5"));
	built_release(&b);
	json_object_put(msgs);

	/* the loop's call comes with its signature: thinking is on, the
	 * block is replayed, the temperature dropped, max_tokens raised */
	msgs = json_tokener_parse(
		"[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
		"\"thinking\":\"t\",\"thinking_signature\":\"s\",\"tool_calls\":"
		"[{\"id\":\"c\",\"name\":\"now\",\"arguments\":\"{}\"}]},"
		"{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"\"}]");
	r.messages = msgs;
	r.tools = NULL;
	r.max_tokens = 1000;
	build(&r, &b);
	ck_assert_int_eq(b.rc, 0);
	assert_json(b.body.data,
		    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":17384,"
		    "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
		    "\"text\",\"text\":\"hi\"}]},{\"role\":\"assistant\","
		    "\"content\":[{\"type\":\"thinking\",\"thinking\":\"t\","
		    "\"signature\":\"s\"},{\"type\":\"tool_use\",\"id\":\"c\","
		    "\"name\":\"now\",\"input\":{}}]},{\"role\":\"user\","
		    "\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
		    "\"c\"}]}],\"stream\":true,\"thinking\":{\"type\":"
		    "\"enabled\",\"budget_tokens\":16384}}");
	built_release(&b);
	json_object_put(msgs);
	json_object_put(tl);
}
END_TEST

START_TEST(build_errors)
{
	static const char *const bad[] = {
		"[{\"content\":\"no role\"}]",
		"[{\"role\":\"robot\",\"content\":\"x\"}]",
		"[{\"role\":\"user\",\"content\":[{\"type\":\"audio\"}]}]",
		"[{\"role\":\"user\",\"content\":[{\"type\":\"image\"}]}]",
		"[{\"role\":\"tool\",\"content\":\"x\"}]",
		"[{\"role\":\"assistant\",\"tool_calls\":[{\"name\":\"x\"}]}]",
		NULL};
	enum llm_kind kinds[] = {LLM_OPENAI, LLM_ANTHROPIC};
	size_t i, k;
	struct built b;

	for (i = 0; bad[i]; i++) {
		for (k = 0; k < 2; k++) {
			struct json_object *m = json_tokener_parse(bad[i]);
			struct llm_request r = {
				.kind = kinds[k], .model = "m", .messages = m};
			build(&r, &b);
			ck_assert_msg(b.rc == -1 && b.err.len, "%s", bad[i]);
			built_release(&b);
			json_object_put(m);
		}
	}
	/* a key is a header value: no header lines smuggled through it */
	for (i = 0; i < 4; i++) {
		static const char *const keys[] = {"sk\r\nX-Injected: 1",
						   "sk\n", "sk\x7f", "sk\x1b"};
		for (k = 0; k < 2; k++) {
			struct json_object *m = json_tokener_parse("[]");
			struct llm_request r = {.kind = kinds[k],
						.model = "m",
						.messages = m,
						.api_key = keys[i]};
			build(&r, &b);
			ck_assert_int_eq(b.rc, -1);
			ck_assert_ptr_nonnull(strstr(b.err.data, "api_key"));
			built_release(&b);
			json_object_put(m);
		}
	}
	{
		struct json_object *m = json_tokener_parse("[]");
		struct llm_request r = {
			.kind = LLM_SIM, .model = "llmsim", .messages = m};
		build(&r, &b);
		ck_assert_int_eq(b.rc, -1);
		built_release(&b);
		json_object_put(m);
	}
	ck_assert_int_eq(llm_kind_from_type("openai_completions"), LLM_OPENAI);
	ck_assert_int_eq(llm_kind_from_type("anthropic"), LLM_ANTHROPIC);
	ck_assert_int_eq(llm_kind_from_type("llmsim"), LLM_SIM);
	ck_assert_int_eq(llm_kind_from_type("gemini"), -1);
	ck_assert_int_eq(llm_kind_from_type(NULL), -1);
}
END_TEST

START_TEST(http_errors)
{
	static const struct {
		enum llm_kind kind;
		long status;
		const char *body, *want;
	} cases[] = {
		{LLM_OPENAI, 429,
		 "{\"error\":{\"message\":\"Rate limit reached for gpt-4o\","
		 "\"type\":\"tokens\",\"param\":null,\"code\":"
		 "\"rate_limit_exceeded\"}}",
		 "rate limited (429): Rate limit reached for gpt-4o"},
		{LLM_ANTHROPIC, 529,
		 "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
		 "\"message\":\"Overloaded\"}}",
		 "overloaded (529): Overloaded"},
		{LLM_OPENAI, 401,
		 "{\"error\":{\"message\":\"Incorrect API key pro",
		 "authentication failed (401): Incorrect API key pro"},
		{LLM_OPENAI, 502, "<html><body>Bad Gateway</body></html>",
		 "bad gateway (502)"},
		{LLM_OPENAI, 503, "\n upstream connect error\nreset reason",
		 "service unavailable (503): upstream connect error"},
		{LLM_ANTHROPIC, 500, "", "provider error (500)"},
		{LLM_OPENAI, 418, "{\"error\":\"teapot\"}",
		 "request refused (418): teapot"},
	};
	size_t i;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf out = BUF_INIT;
		llm_http_error(cases[i].kind, cases[i].status, cases[i].body,
			       strlen(cases[i].body), &out);
		ck_assert_str_eq(out.data, cases[i].want);
		buf_release(&out);
	}
}
END_TEST

/* --- llmsim --------------------------------------------------------- */

/* Plan for a one-message conversation (plus `extra` messages after it)
 * and describe it: "kind/delay:text" per step, then the stop reason. */
static char *plan(const char *model, const char *user, const char *extra,
		  long max_tokens, struct llmsim_plan *pl)
{
	struct buf b = BUF_INIT, log = BUF_INIT;
	struct json_object *m;
	struct llm_request r = {.kind = LLM_SIM, .model = model};
	size_t i;

	buf_adds(&b, "[{\"role\":\"user\",\"content\":");
	buf_add_json_str(&b, user, strlen(user));
	buf_addf(&b, "}%s]", extra ? extra : "");
	m = json_tokener_parse(b.data);
	ck_assert_ptr_nonnull(m);
	r.messages = m;
	r.max_tokens = max_tokens;
	ck_assert_int_eq(llmsim_plan(&r, pl), 0);
	for (i = 0; i < pl->n; i++) {
		struct llmsim_step *s = &pl->steps[i];
		static const char *const kinds[] = {"T", "H", "C", "E"};
		buf_addf(&log, "%s/%ld:", kinds[s->kind], s->delay_ms);
		if (s->kind == SIM_TOOL_CALL)
			buf_addf(&log, "%s %s", s->name, s->args);
		else if (s->kind == SIM_ERROR)
			buf_addf(&log, "%s %d %s", s->name, s->retryable,
				 s->text);
		else
			buf_adds(&log, s->text);
		buf_addch(&log, '|');
	}
	buf_adds(&log, pl->stop_reason);
	json_object_put(m);
	buf_release(&b);
	return buf_detach(&log, NULL);
}

static void check_plan(const char *model, const char *user, const char *extra,
		       long max_tokens, const char *want)
{
	struct llmsim_plan pl;
	char *got = plan(model, user, extra, max_tokens, &pl);
	ck_assert_str_eq(got, want);
	ck_assert(pl.input_tokens > 0);
	free(got);
	llmsim_plan_free(&pl);
}

START_TEST(llmsim_directives)
{
	struct llmsim_plan pl;
	char *got;

	check_plan("llmsim", "hello  world", NULL, 0,
		   "T/10:You |T/10:said: |T/10:hello  |T/10:world|end_turn");
	check_plan("llmsim-instant", "hello world", NULL, 0,
		   "T/0:You said: hello world|end_turn");
	check_plan("llmsim", "#tokens 3\n#rate 0", NULL, 0,
		   "T/0:token1 token2 token3|end_turn");
	check_plan("llmsim", "#tokens 5\n#rate 2000", NULL, 0,
		   "T/1:token1 token2 |T/1:token3 token4 |T/1:token5|end_turn");
	check_plan("llmsim", "#rate 4\n#text Hi there", NULL, 0,
		   "T/250:Hi |T/250:there|end_turn");
	check_plan("llmsim-instant", "#think\n#text ok", NULL, 0,
		   "H/0:Let me think about this step by step.|T/0:ok|end_turn");
	check_plan("llmsim-instant", "#tokens 10", NULL, 3,
		   "T/0:token1 token2 token3 |max_tokens");
	check_plan("llmsim-instant", "#hashtag day\n#tokenz", NULL, 0,
		   "T/0:You said: #hashtag day\n#tokenz|end_turn");
	check_plan("llmsim-instant", "", NULL, 0,
		   "T/0:You said nothing.|end_turn");
	check_plan("llmsim", "#error rate_limit", NULL, 0,
		   "E/10:rate_limit 1 Rate limit reached (simulated)|error");
	check_plan("llmsim", "#error server", NULL, 0,
		   "E/10:server 1 Internal server error (simulated)|error");
	check_plan("llmsim", "#error bad_request", NULL, 0,
		   "E/10:bad_request 0 Bad request (simulated)|error");
	check_plan(
		"llmsim", "#tool x {oops", NULL, 0,
		"E/10:bad_request 0 llmsim: #tool x: the arguments are not a "
		"JSON object|error");

	/* two calls in one step, ids fresh each time */
	got = plan("llmsim",
		   "weather?\n#tool get_weather {\"city\":\"Paris\"}\n"
		   "#tool now",
		   NULL, 0, &pl);
	ck_assert_str_eq(got,
			 "C/10:get_weather {\"city\":\"Paris\"}|C/10:now {}|"
			 "tool_calls");
	ck_assert_int_eq(strncmp(pl.steps[0].id, "call_", 5), 0);
	ck_assert_str_ne(pl.steps[0].id, pl.steps[1].id);
	ck_assert(pl.output_tokens > 0);
	free(got);
	llmsim_plan_free(&pl);

	/* no messages at all */
	{
		struct llm_request r = {.kind = LLM_SIM, .model = "llmsim"};
		ck_assert_int_eq(llmsim_plan(&r, &pl), 0);
		ck_assert_uint_eq(pl.n, 3);
		ck_assert_str_eq(pl.steps[2].text, "nothing.");
		llmsim_plan_free(&pl);
	}

	/* with the results in the history: a summary */
	check_plan(
		"llmsim-instant", "#tool get_weather {}\n#tool now",
		",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\","
		"\"name\":\"get_weather\",\"arguments\":\"{}\"},{\"id\":\"c2\","
		"\"name\":\"now\",\"arguments\":\"{}\"}]},"
		"{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"21C\"},"
		"{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":{\"t\":1}}",
		0,
		"T/0:Tool results: get_weather: 21C; now: {\"t\":1}|end_turn");
}
END_TEST

/* Feed s whole to a parser with limits l: the name of the limit it went
 * past, or "-". */
static const char *too_large(enum llm_kind kind, const char *s,
			     const struct llm_limits *l, struct buf *log)
{
	struct llm_sink sink = {log,      rec_text,  rec_thinking,
				rec_tool, rec_usage, rec_error};
	struct llm_parser *p = llm_parser_new(kind, &sink);
	const char *why;
	int rc;

	llm_parser_set_limits(p, l);
	rc = llm_parser_feed(p, s, strlen(s));
	why = llm_parser_too_large(p);
	ck_assert_int_eq(rc, why ? -1 : 0);
	if (why)
		ck_assert_ptr_nonnull(strstr(llm_parser_error(p), why));
	llm_parser_free(p);
	return why ? why : "-";
}

START_TEST(output_limits)
{
	struct llm_limits big = llm_limits_config(), l;
	struct buf log = BUF_INIT;

	buf_init(&log, 0);
	ck_assert_uint_eq(big.response, 16u << 20);
	ck_assert_uint_eq(big.text, 2048u << 10);
	ck_assert_str_eq(too_large(LLM_OPENAI, oa_text, &big, &log), "-");
	/* "Hello" + " w\xc3\xb6rld \xe2\x98\x80" = 5 + 11 bytes */
	l = big;
	l.text = 16;
	ck_assert_str_eq(too_large(LLM_OPENAI, oa_text, &l, &log), "-");
	l.text = 15;
	buf_reset(&log);
	ck_assert_str_eq(too_large(LLM_OPENAI, oa_text, &l, &log),
			 "llm_max_text_kb");
	ck_assert_str_eq(log.data, "text:Hello\n"); /* nothing past it */
	l = big;
	l.response = strlen(oa_text) - 1;
	ck_assert_str_eq(too_large(LLM_OPENAI, oa_text, &l, &log),
			 "llm_max_response_mb");
	l = big;
	l.tool_args = 20;
	ck_assert_str_eq(too_large(LLM_OPENAI, oa_tools, &l, &log),
			 "llm_max_tool_args_kb");
	l.tool_args = 64;
	ck_assert_str_eq(too_large(LLM_OPENAI, oa_tools, &l, &log), "-");
	l = big;
	l.tool_calls = 2; /* oa_tools has three */
	ck_assert_str_eq(too_large(LLM_OPENAI, oa_tools, &l, &log),
			 "llm_max_tool_calls");
	l.tool_calls = 3;
	ck_assert_str_eq(too_large(LLM_OPENAI, oa_tools, &l, &log), "-");
	l = big;
	l.thinking = 4;
	ck_assert_str_eq(too_large(LLM_ANTHROPIC, an_full, &l, &log),
			 "llm_max_thinking_kb");
	l = big;
	l.tool_args = 4;
	ck_assert_str_eq(too_large(LLM_ANTHROPIC, an_full, &l, &log),
			 "llm_max_tool_args_kb");
	buf_release(&log);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("llm");
	TCase *tc = tcase_create("llm");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, sse_framing);
	tcase_add_test(tc, sse_limits);
	tcase_add_test(tc, openai_text_any_split);
	tcase_add_test(tc, openai_parallel_tools_any_split);
	tcase_add_test(tc, openai_stream_error);
	tcase_add_test(tc, openai_edge_cases);
	tcase_add_test(tc, openai_compatible_servers);
	tcase_add_test(tc, anthropic_edge_cases);
	tcase_add_test(tc, anthropic_full_any_split);
	tcase_add_test(tc, anthropic_error_event);
	tcase_add_test(tc, cut_streams_fail);
	tcase_add_test(tc, malformed_chunks_fail);
	tcase_add_test(tc, parser_error_messages);
	tcase_add_test(tc, openai_request);
	tcase_add_test(tc, anthropic_request);
	tcase_add_test(tc, build_errors);
	tcase_add_test(tc, http_errors);
	tcase_add_test(tc, llmsim_directives);
	tcase_add_test(tc, output_limits);
	suite_add_tcase(s, tc);
	return check_run(s);
}
