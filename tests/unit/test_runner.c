/*
 * Unit tests of the runner's in-memory state: the history cache (what a
 * runner keeps of each session's conversation between turns); what the
 * act phase does with a call (turn_call_disposition: run, the client's,
 * ask first); and of the sandbox's host side (its directories, and its
 * refusal to run as root).
 */
#include <check.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "runner.h"
#include "sandbox.h"
#include "turn_int.h"
#include "check_run.h"

/* The fresh events of a turn: one event of an earlier turn (seq), then
 * one of the claimed turn ("cur"), which the cache must not keep. */
static struct json_object *fresh(long long seq)
{
	struct json_object *a = json_object_new_array(), *e;
	e = json_object_new_object();
	json_object_object_add(e, "seq", json_object_new_int64(seq));
	json_object_object_add(e, "turn_id", json_object_new_string("trn_old"));
	json_object_array_add(a, e);
	e = json_object_new_object();
	json_object_object_add(e, "seq", json_object_new_int64(seq + 1));
	json_object_object_add(e, "turn_id", json_object_new_string("trn_cur"));
	json_object_array_add(a, e);
	return a;
}

/* Sessions are 32 hex digits, as the runner gets them from the database */
#define SES_A "0190a1b2c3d47e8f9a0b1c2d3e4f5a6a"
#define SES_B "0190a1b2c3d47e8f9a0b1c2d3e4f5a6b"
#define SES_C "0190a1b2c3d47e8f9a0b1c2d3e4f5a6c"
#define SES_D "0190a1b2c3d47e8f9a0b1c2d3e4f5a6d"

static void merge(const char *session, long long seq, size_t expect_len)
{
	struct json_object *f = fresh(seq);
	struct json_object *out =
		history_cache_merge(session, "cur", f, NULL, NULL);
	ck_assert_uint_eq(json_object_array_length(out), expect_len);
	json_object_put(out);
	json_object_put(f);
}

START_TEST(history_cache_keeps_earlier_turns_lru)
{
	config_set("history_cache_sessions", "2");
	ck_assert_int_eq(history_cache_after(SES_A), 0);
	merge(SES_A, 1, 2);
	ck_assert_int_eq(history_cache_after(SES_A),
			 1); /* not the current turn */
	merge(SES_A, 2, 3);  /* cached one + fresh two */
	ck_assert_int_eq(history_cache_after(SES_A), 2);
	merge(SES_B, 5, 2);
	merge(SES_A, 3, 4); /* a is now the most recently used */
	merge(SES_C, 7, 2); /* full: b goes, not a */
	ck_assert_int_eq(history_cache_after(SES_B), 0);
	ck_assert_int_eq(history_cache_after(SES_A), 3);
	ck_assert_int_eq(history_cache_after(SES_C), 7);
	merge(SES_B, 9, 2); /* and now a goes */
	ck_assert_int_eq(history_cache_after(SES_A), 0);
	ck_assert_int_eq(history_cache_after(SES_C), 7);
	history_cache_free();
	ck_assert_int_eq(history_cache_after(SES_C), 0);
	config_set("history_cache_sessions", "0"); /* off: nothing kept */
	merge(SES_D, 1, 2);
	ck_assert_int_eq(history_cache_after(SES_D), 0);
	history_cache_free();
	config_free();
}
END_TEST

/* An input.message of an earlier turn: text only, or with an image part */
static struct json_object *input(long long seq, int image)
{
	struct json_object *a = json_object_new_array();
	char doc[256];
	snprintf(
		doc, sizeof(doc),
		"{\"seq\":%lld,\"type\":\"input.message\",\"turn_id\":\"trn_old\","
		"\"data\":{\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"hi\"}%s]}}}",
		seq,
		image ? ",{\"type\":\"image_file\",\"image_id\":\"img_x\"}"
		      : "");
	json_object_array_add(a, json_tokener_parse(doc));
	return a;
}

static size_t merge_plain(const char *session, struct json_object *f)
{
	size_t plain = 99;
	json_object_put(history_cache_merge(session, "cur", f, &plain, NULL));
	json_object_put(f);
	return plain;
}

/* A turn skips the cached events when it looks for image parts, unless
 * one of them has one: *plain is the cached count, or 0. */
START_TEST(history_cache_knows_sessions_without_images)
{
	config_set("history_cache_sessions", "10");
	ck_assert_uint_eq(merge_plain(SES_A, input(1, 0)),
			  0); /* nothing cached */
	ck_assert_uint_eq(merge_plain(SES_A, input(2, 0)), 1);
	ck_assert_uint_eq(merge_plain(SES_A, input(3, 0)), 2);
	ck_assert_uint_eq(merge_plain(SES_B, input(1, 1)), 0);
	ck_assert_uint_eq(merge_plain(SES_B, input(2, 0)),
			  0); /* an image: all */
	ck_assert_uint_eq(merge_plain(SES_A, input(4, 1)), 3);
	ck_assert_uint_eq(merge_plain(SES_A, input(5, 0)),
			  0); /* now it has one */
	history_cache_free();
	config_free();
}
END_TEST

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* A sandbox's directory is removed whatever the command left in it
 * (unreadable directories, links out), never following a link; its use
 * is counted without following links either. */
/* The layers' tools and approval modes, and the approvals in the log. */
static const char layers_cfg[] =
	"{\"attempt_base\": 4, \"waited_ms\": 5000,"
	" \"harness\": {\"approval\": \"all\", \"tools\": ["
	"  {\"type\": \"builtin\", \"name\": \"stat_file\", \"policy\": \"auto\"},"
	"  {\"type\": \"client_side\", \"name\": \"pick\", \"description\": \"d\","
	"   \"parameters\": {\"type\": \"object\"}}]},"
	" \"agent\": {\"approval\": null, \"tools\": ["
	"  {\"type\": \"client_side\", \"name\": \"locate\", \"description\": \"d\","
	"   \"parameters\": {\"type\": \"object\"}, \"display_name\": \"Where\"},"
	"  {\"type\": \"client_side\", \"name\": \"careful\", \"description\": \"d\","
	"   \"parameters\": {\"type\": \"object\"},"
	"   \"policy\": \"requires_approval\"}]},"
	" \"session\": {\"approval\": \"writes\", \"tools\": ["
	"  {\"type\": \"builtin\", \"name\": \"get_current_time\","
	"   \"policy\": \"requires_approval\"}]},"
	" \"events\": ["
	"  {\"type\": \"tool.approval_resolved\", \"turn_id\": \"trn_cur\","
	"   \"data\": {\"tool_call_id\": \"c_ok\", \"approved\": true}},"
	"  {\"type\": \"tool.approval_resolved\", \"turn_id\": \"trn_cur\","
	"   \"data\": {\"tool_call_id\": \"c_no\", \"approved\": false}}]}";

START_TEST(call_disposition_follows_policies_modes_and_the_log)
{
	static const char *const offered[] = {"write_file",       "stat_file",
					      "get_current_time", "fetch_url",
					      "server__search",   NULL};
	struct turn t;
	struct json_object *call;
	int i;

	memset(&t, 0, sizeof(t));
	snprintf(t.id, sizeof(t.id), "cur");
	t.cfg = json_tokener_parse(layers_cfg);
	ck_assert_ptr_nonnull(t.cfg);
	t.tools = json_object_new_array();
	for (i = 0; offered[i]; i++) {
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "name",
				       json_object_new_string(offered[i]));
		json_object_array_add(t.tools, d);
	}
	t.started_ms = 1000;
	turn_wait_load(&t);
	/* the client-side tools joined the model's: 5 + pick, locate, careful
	 */
	ck_assert_uint_eq(json_object_array_length(t.tools), 8);
	ck_assert_int_eq(t.attempt_base, 4);
	ck_assert_int_eq(t.started_ms, 6000);
	/* session "writes" overrides the harness's "all" */
	ck_assert_int_eq(turn_call_disposition(&t, "write_file", "c1"),
			 CALL_APPROVAL);
	ck_assert_int_eq(turn_call_disposition(&t, "fetch_url", "c1"),
			 CALL_APPROVAL);
	ck_assert_int_eq(turn_call_disposition(&t, "server__search", "c1"),
			 CALL_APPROVAL); /* an MCP tool reaches out */
	ck_assert_int_eq(turn_call_disposition(&t, "stat_file", "c1"),
			 CALL_RUN);
	/* a policy wins over the mode */
	ck_assert_int_eq(turn_call_disposition(&t, "get_current_time", "c1"),
			 CALL_APPROVAL);
	/* approved in the log: runs; denied: asked again only if no result
	 * (the API wrote its tool.completed, so it is never asked) */
	ck_assert_int_eq(turn_call_disposition(&t, "write_file", "c_ok"),
			 CALL_RUN);
	ck_assert_int_eq(turn_call_disposition(&t, "write_file", "c_no"),
			 CALL_APPROVAL);
	/* client-side tools: the client's, after an approval if they ask */
	ck_assert_int_eq(turn_call_disposition(&t, "locate", "c1"),
			 CALL_CLIENT);
	ck_assert_int_eq(turn_call_disposition(&t, "careful", "c1"),
			 CALL_APPROVAL);
	ck_assert_int_eq(turn_call_disposition(&t, "careful", "c_ok"),
			 CALL_CLIENT);
	/* a tool nobody offered is the model's error, not a question */
	ck_assert_int_eq(turn_call_disposition(&t, "no_such_tool", "c1"),
			 CALL_RUN);
	/* set aside for the wait, with what the request event carries */
	call = json_object_new_object();
	json_object_object_add(call, "id", json_object_new_string("c2"));
	json_object_object_add(call, "name", json_object_new_string("locate"));
	json_object_object_add(call, "arguments",
			       json_object_new_string("{\"a\": 1}"));
	ck_assert(!turn_wait_wanted(&t));
	ck_assert_int_eq(turn_wait_defer(&t, call), 1);
	ck_assert(turn_wait_wanted(&t));
	ck_assert_str_eq(
		json_object_to_json_string_ext(
			json_object_array_get_idx(t.waits, 0),
			JSON_C_TO_STRING_PLAIN),
		"{\"id\":\"c2\",\"name\":\"locate\",\"arguments\":{\"a\":1},"
		"\"kind\":\"client\",\"display_name\":\"Where\"}");
	json_object_put(call);
	turn_wait_free(&t);
	json_object_put(t.tools);
	json_object_put(t.cfg);
}
END_TEST

START_TEST(sandbox_dir_usage_and_removal_never_follow_links)
{
	char dir[PATH_MAX], out[PATH_MAX], p[PATH_MAX + 64];
	struct buf err = BUF_INIT;
	struct stat st;
	long n;

	buf_init(&err, 0);
	snprintf(out, sizeof(out), "/tmp/evr-unit-out-%d", (int)getpid());
	ck_assert_int_eq(mkdir(out, 0700), 0);
	snprintf(p, sizeof(p), "%s/keep.txt", out);
	put(p, "outside");
	config_set("sandbox_dir", "/tmp");
	ck_assert_int_eq(sandbox_mkdir(dir, &err), 0);
	ck_assert_int_eq(strncmp(dir, "/tmp/evr-sbx-", 13), 0);
	snprintf(p, sizeof(p), "%s/a", dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/a/f.txt", dir);
	put(p, "0123456789");
	snprintf(p, sizeof(p), "%s/a/out", dir);
	ck_assert_int_eq(symlink(out, p), 0);
	snprintf(p, sizeof(p), "%s/a", dir);
	ck_assert_int_eq(chmod(p, 0), 0);
	ck_assert_int_gt(sandbox_usage(dir, 100, &n), 0);
	ck_assert_int_eq(n, 4); /* dir, a, f.txt, the link */
	sandbox_rmtree(dir);
	ck_assert_int_ne(lstat(dir, &st), 0);
	snprintf(p, sizeof(p), "%s/keep.txt", out);
	ck_assert_int_eq(stat(p, &st), 0);
	unlink(p);
	rmdir(out);
	buf_release(&err);
	config_free();
}
END_TEST

/* Run as root (as the unit tests may be), the sandbox refuses to start
 * anything, and says why. */
START_TEST(sandbox_refuses_root)
{
	struct sbx_limits l;
	struct sbx s;
	struct buf err = BUF_INIT;

	if (geteuid() != 0)
		return;
	buf_init(&err, 0);
	sandbox_init();
	ck_assert_ptr_nonnull(sandbox_unavailable());
	ck_assert_ptr_nonnull(strstr(sandbox_unavailable(), "runs as root"));
	sandbox_limits(&l);
	ck_assert_int_eq(sbx_spawn(&s, "/tmp", "true", &l, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.data, "root"));
	buf_release(&err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("runner");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, history_cache_keeps_earlier_turns_lru);
	tcase_add_test(tc, history_cache_knows_sessions_without_images);
	tcase_add_test(tc, call_disposition_follows_policies_modes_and_the_log);
	tcase_add_test(tc, sandbox_dir_usage_and_removal_never_follow_links);
	tcase_add_test(tc, sandbox_refuses_root);
	suite_add_tcase(s, tc);
	return check_run(s);
}
