/*
 * Unit tests of the runner's in-memory state: the history cache (what a
 * runner keeps of each session's conversation between turns).
 */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "runner.h"
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
	struct json_object *out = history_cache_merge(session, "cur", f);
	ck_assert_uint_eq(json_object_array_length(out), expect_len);
	json_object_put(out);
	json_object_put(f);
}

START_TEST(history_cache_keeps_earlier_turns_lru)
{
	config_set("history_cache_sessions", "2");
	ck_assert_int_eq(history_cache_after(SES_A), 0);
	merge(SES_A, 1, 2);
	ck_assert_int_eq(history_cache_after(SES_A), 1); /* not the current turn */
	merge(SES_A, 2, 3);				/* cached one + fresh two */
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

int main(void)
{
	Suite *s = suite_create("runner");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, history_cache_keeps_earlier_turns_lru);
	suite_add_tcase(s, tc);
	return check_run(s);
}
