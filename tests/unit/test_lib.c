/* Unit tests of fcgi/lib: buffers, arena, JSON parsing and field access,
 * ids, crypto, config, query strings, auth header forms. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "auth.h"
#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "evq.h"
#include "http.h"
#include "ids.h"
#include "json.h"
#include "rx.h"
#include "status.h"
#include "strmap.h"
#include "utf8.h"
#include "check_run.h"

START_TEST(buf_grows_and_formats)
{
	struct buf b = BUF_INIT;
	int i;
	ck_assert_str_eq(b.data, "");
	for (i = 0; i < 1000; i++)
		buf_addf(&b, "%d,", i);
	ck_assert_uint_eq(b.len, strlen(b.data));
	ck_assert(strncmp(b.data, "0,1,2,", 6) == 0);
	ck_assert(strstr(b.data, "999,") != NULL);
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	buf_add_json_str(&b, "a\"b\\c\n\x01", 7);
	ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
	size_t len;
	char *s = buf_detach(&b, &len);
	ck_assert_uint_eq(len, strlen(s));
	free(s);
	ck_assert_uint_eq(b.len, 0);
	buf_add_be16(&b, 0xFFFFu);
	buf_add_be16(&b, 0x0102u);
	buf_add_be32(&b, 0x0A0B0C0Dul);
	ck_assert_uint_eq(b.len, 8);
	ck_assert_int_eq(memcmp(b.data, "\377\377\1\2\n\v\f\r", 8), 0);
	buf_release(&b);
}
END_TEST

START_TEST(arena_allocates_and_resets)
{
	struct arena a = ARENA_INIT;
	char *big, *s;
	int i;
	for (i = 0; i < 2000; i++) {
		s = arena_printf(&a, "item-%d", i);
		ck_assert_str_eq(s, arena_printf(&a, "item-%d", i));
	}
	big = arena_alloc(&a, 100000);
	memset(big, 'x', 100000);
	s = arena_strndup(&a, "hello world", 5);
	ck_assert_str_eq(s, "hello");
	arena_reset(&a);
	s = arena_strdup(&a, "again");
	ck_assert_str_eq(s, "again");
	arena_release(&a);
}
END_TEST

static char *nested(int depth)
{
	char *s = malloc((size_t)depth * 2 + 1);
	int i;
	for (i = 0; i < depth; i++) {
		s[i] = '[';
		s[2 * depth - 1 - i] = ']';
	}
	s[2 * depth] = '\0';
	return s;
}

START_TEST(json_depth_limit_is_32)
{
	struct apierr e;
	char *ok = nested(32), *bad = nested(33);
	struct json_object *o = jx_parse(ok, strlen(ok), &e);
	ck_assert_ptr_nonnull(o);
	json_object_put(o);
	o = jx_parse(bad, strlen(bad), &e);
	ck_assert_ptr_null(o);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.code, "invalid_json");
	ck_assert_ptr_nonnull(strstr(e.msg, "nesting"));
	free(ok);
	free(bad);
}
END_TEST

START_TEST(utf8_cut_and_clean)
{
	static const char e9[] = "a\xc3\xa9\xc3\xa9"; /* "aéé", 5 bytes */
	struct buf b = BUF_INIT;

	ck_assert_uint_eq(utf8_cut(e9, 5, 10), 5);
	ck_assert_uint_eq(utf8_cut(e9, 5, 5), 5);
	ck_assert_uint_eq(utf8_cut(e9, 5, 4), 3); /* not inside the second é */
	ck_assert_uint_eq(utf8_cut(e9, 5, 2), 1);
	ck_assert_uint_eq(utf8_cut("\xf0\x9f\x98\x80", 4, 3), 0);
	buf_init(&b, 0);
	ck_assert_uint_eq(utf8_clean(&b,
				     "a\0b\xff"
				     "c\xed\xa0\x80\xc3",
				     9),
			  6);
	ck_assert_uint_eq(b.len, 3 + 6 * 3);
	ck_assert(utf8_valid(b.data, b.len, 0));
	ck_assert_int_eq(memcmp(b.data,
				"a\xef\xbf\xbd"
				"b",
				5),
			 0);
	buf_reset(&b);
	ck_assert_uint_eq(utf8_clean(&b, e9, 5), 0);
	ck_assert_str_eq(b.data, e9);
	buf_release(&b);
}
END_TEST

START_TEST(json_text_pg_cannot_store)
{
	static const struct {
		const char *in, *path; /* path NULL: accepted */
	} cases[] = {
		{"{\"a\":\"x\\u0041\\ud83d\\ude00\"}", NULL},
		{"{\"a\":\"\\\\u0000\"}", NULL}, /* an escaped backslash */
		{"{\"metadata\":{\"x\":\"a\\u0000b\"}}", "metadata.x:"},
		{"{\"tags\":[\"a\",\"\\ud800\"]}", "tags[1]:"},
		{"{\"m\":{\"k\\udc00\":1}}", "m (a key):"},
		{"{\"a\":[{\"b\":[0,\"\\ud83dx\"]}]}", "a[0].b[1]:"},
		{"[\"\\u0000\"]", "[0]:"},
	};
	struct apierr e;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = jx_check_text(cases[i].in, strlen(cases[i].in), NULL, 0,
				      &e);
		if (!cases[i].path) {
			ck_assert_msg(r == 0, "refused: %s", cases[i].in);
			continue;
		}
		ck_assert_msg(r == -1, "accepted: %s", cases[i].in);
		ck_assert_int_eq(e.status, 400);
		ck_assert_msg(
			!strncmp(e.msg, cases[i].path, strlen(cases[i].path)),
			"%s: %s", cases[i].in, e.msg);
	}
	/* a field stored as bytes is exempt, only at the top */
	ck_assert_int_eq(jx_check_text("{\"content\":\"\\u0000\"}", 18,
				       "content", 0, &e),
			 0);
	ck_assert_int_eq(jx_check_text("{\"x\":{\"content\":\"\\u0000\"}}", 24,
				       "content", 0, &e),
			 -1);
}
END_TEST

START_TEST(json_storable_fixes_in_place)
{
	struct apierr e;
	struct json_object *o = json_object_new_object(), *deep;
	const char *s;
	char *d = nested(40);

	json_object_object_add(o, "t",
			       json_object_new_string_len("a\0b\xff", 4));
	json_object_object_add(o, "k\xfe", json_object_new_int(1));
	deep = jx_parse_depth(d, strlen(d), 64, &e);
	ck_assert_ptr_nonnull(deep);
	json_object_object_add(o, "deep", deep);
	ck_assert_int_eq(jx_storable(&o, 10), 3);
	s = jx_str(o);
	ck_assert(utf8_valid(s, strlen(s), 0));
	ck_assert_ptr_null(strstr(s, "\\u0000"));
	ck_assert_str_eq(jx_gets(o, "t"), "a\xef\xbf\xbd"
					  "b\xef\xbf\xbd");
	ck_assert_ptr_nonnull(jx_get(o, "k\xef\xbf\xbd"));
	json_object_put(o);
	/* what it leaves is readable again with that bound */
	o = jx_parse_depth(d, strlen(d), 64, &e);
	jx_storable(&o, 10);
	deep = jx_parse_depth(jx_str(o), strlen(jx_str(o)), 10, &e);
	ck_assert_ptr_nonnull(deep);
	json_object_put(deep);
	json_object_put(o);
	free(d);
}
END_TEST

START_TEST(json_rejects_bad_input)
{
	static const char *bad[] = {
		"{\"a\":1",
		"{\"a\":1}x",
		"{'a':1}",
		"[1,]",
		"{\"a\":01}",
		"\"\xff\xfe\"",
		"{\"a\":\"\xc3\x28\"}",
		"",
		"   ",
		"nul",
	};
	struct apierr e;
	size_t i;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_object *o = jx_parse(bad[i], strlen(bad[i]), &e);
		ck_assert_msg(o == NULL, "accepted: %s", bad[i]);
		ck_assert_int_eq(e.status, 400);
	}
	struct json_object *o = jx_parse("{\"a\":\"\xc3\xa9\"}  \n", 13, &e);
	ck_assert_ptr_nonnull(o);
	json_object_put(o);
}
END_TEST

START_TEST(json_typed_getters)
{
	struct apierr e;
	const char *body = "{\"s\":\"abc\",\"n\":5,\"f\":1.5,\"b\":true,"
			   "\"o\":{},\"a\":[1,2,3],\"z\":null,\"i\":2.0}";
	struct json_object *o = jx_parse(body, strlen(body), &e), *v = NULL;
	const char *s = NULL;
	int64_t n = 0;
	double d = 0;
	int b = 0;

	ck_assert_int_eq(jx_get_str(o, "s", 3, &s, &e), 1);
	ck_assert_str_eq(s, "abc");
	ck_assert_int_eq(jx_get_str(o, "s", 2, &s, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msg, "s: longer than 2 bytes"));
	ck_assert_int_eq(jx_get_str(o, "n", 0, &s, &e), -1);
	ck_assert_str_eq(e.msg, "n: must be a string");
	ck_assert_int_eq(jx_get_str(o, "missing", 0, &s, &e), 0);
	ck_assert_int_eq(jx_get_str(o, "z", 0, &s, &e), 0);
	ck_assert_int_eq(jx_get_int(o, "n", 1, 10, &n, &e), 1);
	ck_assert_int_eq(n, 5);
	ck_assert_int_eq(jx_get_int(o, "i", 1, 10, &n, &e), 1);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(jx_get_int(o, "n", 6, 10, &n, &e), -1);
	ck_assert_int_eq(jx_get_int(o, "f", 0, 10, &n, &e), -1);
	ck_assert_str_eq(e.msg, "f: must be an integer");
	ck_assert_int_eq(jx_get_double(o, "f", 0, 2, &d, &e), 1);
	ck_assert(d == 1.5);
	ck_assert_int_eq(jx_get_bool(o, "b", &b, &e), 1);
	ck_assert_int_eq(b, 1);
	ck_assert_int_eq(jx_get_bool(o, "s", &b, &e), -1);
	ck_assert_int_eq(jx_get_obj(o, "o", &v, &e), 1);
	ck_assert_int_eq(jx_get_obj(o, "a", &v, &e), -1);
	ck_assert_int_eq(jx_get_array(o, "a", 3, &v, &e), 1);
	ck_assert_int_eq(jx_get_array(o, "a", 2, &v, &e), -1);
	ck_assert_str_eq(e.msg, "a: at most 2 items");
	json_object_put(o);
}
END_TEST

START_TEST(ids_parse_and_new)
{
	char hex[33], id[IDS_MAX_LEN], id2[IDS_MAX_LEN];
	ck_assert(
		ids_parse("ses_0193b5a00007000800000000000000ab", "ses", hex));
	ck_assert_str_eq(hex, "0193b5a00007000800000000000000ab");
	ck_assert(
		!ids_parse("ses_0193B5A00007000800000000000000ab", "ses", hex));
	ck_assert(
		!ids_parse("ses_0193b5a0000700080000000000000ab", "ses", hex));
	ck_assert(!ids_parse("ses_0193b5a00007000800000000000000abc", "ses",
			     hex));
	ck_assert(
		!ids_parse("agt_0193b5a00007000800000000000000ab", "ses", hex));
	ck_assert(
		!ids_parse("ses-0193b5a00007000800000000000000ab", "ses", hex));
	ck_assert(!ids_parse("session_0193b5a00007000800000000000000ab", "ses",
			     hex));
	ck_assert(!ids_parse("", "ses", hex));
	ck_assert(ids_has_prefix("agt_x", "agt"));
	ck_assert(!ids_has_prefix("agtx", "agt"));
	ids_new("evt", id, sizeof(id));
	ids_new("evt", id2, sizeof(id2));
	ck_assert(ids_parse(id, "evt", hex));
	ck_assert_str_ne(id, id2);
	ck_assert_int_eq(hex[12], '7');             /* version nibble */
	ck_assert(strchr("89ab", hex[16]) != NULL); /* variant */
	ck_assert(strcmp(id, id2) <= 0 ||
		  strncmp(id, id2, 4 + 12) == 0); /* time-ordered */
}
END_TEST

START_TEST(crypto_hash_and_seal)
{
	unsigned char key[CRYPTO_KEY_LEN], other[CRYPTO_KEY_LEN];
	struct buf sealed = BUF_INIT, plain = BUF_INIT;
	char h[65];

	crypto_sha256_hex("abc", 3, h);
	ck_assert_str_eq(
		h,
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	crypto_random(key, sizeof(key));
	crypto_random(other, sizeof(other));
	ck_assert_int_eq(crypto_seal(key, "sk-secret", 9, &sealed), 0);
	ck_assert(strncmp(sealed.data, "v1:", 3) == 0);
	ck_assert_ptr_null(strstr(sealed.data, "sk-secret"));
	ck_assert_int_eq(crypto_open(key, sealed.data, &plain), 0);
	ck_assert_str_eq(plain.data, "sk-secret");
	buf_reset(&plain);
	ck_assert_int_eq(crypto_open(other, sealed.data, &plain), -1);
	sealed.data[10] = sealed.data[10] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(crypto_open(key, sealed.data, &plain), -1);
	ck_assert_int_eq(crypto_open(key, "v1:", &plain), -1);
	ck_assert_int_eq(crypto_open(key, "garbage", &plain), -1);
	buf_release(&sealed);
	buf_release(&plain);
}
END_TEST

START_TEST(status_files)
{
	char dir[] = "/tmp/evr-status-XXXXXX";
	struct buf b = BUF_INIT;
	const char *text = "pid 12\nstreams 3\nupdated_at 99\n";

	ck_assert_ptr_nonnull(mkdtemp(dir));
	setenv("EVERRUNS_RUN_DIR", dir, 1);
	ck_assert_str_eq(status_dir(), dir);
	ck_assert_int_eq(status_write("x.status", text, strlen(text)), 0);
	ck_assert_int_eq(status_read("x.status", &b), 0);
	ck_assert_str_eq(b.data, text);
	ck_assert_int_eq(status_value(b.data, "streams", -1), 3);
	ck_assert_int_eq(status_value(b.data, "updated_at", -1), 99);
	ck_assert_int_eq(status_value(b.data, "stream", -1), -1);
	ck_assert_int_eq(status_value(b.data, "nope", -1), -1);
	ck_assert_int_eq(status_read("missing", &b), -1);
	buf_release(&b);
	unlink(strcat(strcpy((char[64]){0}, dir), "/x.status"));
	rmdir(dir);
	setenv("EVERRUNS_RUN_DIR", "/nonexistent/dir", 1);
	ck_assert_int_eq(status_write("x.status", "a", 1), -1);
	unsetenv("EVERRUNS_RUN_DIR");
}
END_TEST

START_TEST(config_file_and_env)
{
	ck_assert_int_eq(config_parse("# comment\n a = 1 \nname=x y\n\n"), 0);
	ck_assert_str_eq(config_get("a", "d"), "1");
	ck_assert_str_eq(config_get("name", "d"), "x y");
	ck_assert_str_eq(config_get("nope", "d"), "d");
	ck_assert_int_eq(config_long("a", 7), 1);
	ck_assert_int_eq(config_long("name", 7), 7);
	setenv("EVERRUNS_A", "42", 1);
	ck_assert_int_eq(config_long("a", 7), 42);
	unsetenv("EVERRUNS_A");
	ck_assert_int_eq(config_parse("just words\n"), -1);
	config_free();
}
END_TEST

/* Defaults come from the table; check-config finds unknown keys, values
 * of the wrong type and values out of bounds. */
START_TEST(config_table)
{
	static const char *const env[] = {
		"EVERRUNS_HOUSEKEEPING_S",     "EVERRUNS_DB_POOL",
		"EVERRUNS_SSE_CYCLE_S",        "EVERRUNS_LEASE_S",
		"EVERRUNS_SSE_DB_CONNECTIONS", "EVERRUNS_API_THREADS"};
	struct buf out = BUF_INIT;
	size_t i;

	/* the test stack's overrides (tests/run exports some) */
	for (i = 0; i < sizeof(env) / sizeof(env[0]); i++)
		unsetenv(env[i]);
	ck_assert_int_eq(config_int("housekeeping_s"), 60);
	ck_assert(config_num("housekeeping_s") == 60.0);
	ck_assert_str_eq(config_str("db_pool"), "session");
	ck_assert_int_eq(config_check(&out), 0);
	ck_assert_int_eq(config_parse("sse_cycle_s = 120\nlease_s = 0.5\n"
				      "db_pool = transaction\n"),
			 0);
	ck_assert_int_eq(config_int("sse_cycle_s"), 120);
	ck_assert(config_num("lease_s") == 0.5);
	ck_assert_int_eq(config_check(&out), 0);
	ck_assert_int_eq(
		config_parse("sse_cycle_s = soon\nsse_db_connections = 17\n"
			     "db_pool = pooled\nlease_sec = 3\n"),
		0);
	ck_assert_int_eq(config_int("sse_cycle_s"), 300); /* the default */
	setenv("EVERRUNS_API_THREADS", "0", 1);
	ck_assert_int_eq(config_check(&out), 5);
	unsetenv("EVERRUNS_API_THREADS");
	ck_assert_ptr_nonnull(strstr(out.data, "lease_sec: unknown key"));
	ck_assert_ptr_nonnull(
		strstr(out.data, "sse_cycle_s: 'soon' is not an integer"));
	ck_assert_ptr_nonnull(strstr(
		out.data, "sse_db_connections: 17 is out of bounds (1..16)"));
	ck_assert_ptr_nonnull(
		strstr(out.data, "db_pool: 'pooled' is not one of"));
	ck_assert_ptr_nonnull(
		strstr(out.data, "api_threads: 0 is out of bounds"));
	buf_release(&out);
	config_free();
}
END_TEST

/* conf/everruns.conf.example documents exactly the keys of the table (a
 * `key = value` line each), with the table's default for every number. */
START_TEST(config_example)
{
	char path[4096], line[4096];
	const char *src = getenv("EVR_SRCDIR");
	unsigned char seen[512] = {0};
	size_t i;
	FILE *f;

	ck_assert(config_nkeys <= sizeof(seen));
	snprintf(path, sizeof(path), "%s/conf/everruns.conf.example",
		 src ? src : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot read %s", path);
	while (fgets(line, sizeof(line), f)) {
		char key[128], val[1024] = "";
		const struct config_key *k;
		if (line[0] == '#' ||
		    sscanf(line, "%127[a-z_0-9] = %1023[^\n]", key, val) < 1 ||
		    !strchr(line, '='))
			continue;
		k = config_key_find(key);
		ck_assert_msg(k != NULL, "%s: %s is not in config_keys.c", path,
			      key);
		seen[k - config_keys] = 1;
		if (k->type == CONFIG_LONG || k->type == CONFIG_DOUBLE)
			ck_assert_msg(strtod(val, NULL) == strtod(k->def, NULL),
				      "%s: %s = %s, the table says %s", path,
				      key, val, k->def);
	}
	fclose(f);
	for (i = 0; i < config_nkeys; i++)
		ck_assert_msg(seen[i], "%s is missing from %s",
			      config_keys[i].name, path);
}
END_TEST

START_TEST(query_strings)
{
	struct arena a = ARENA_INIT;
	struct req rq;
	struct apierr e;
	const char *vals[4];
	long off, lim;

	req_init(&rq, &a);
	rq.query =
		"tags=a&tags=b%20c&search=x+y&limit=5&offset=10&bad=%zz&flag";
	req_parse_query(&rq);
	ck_assert_uint_eq(req_query_all(&rq, "tags", vals, 4), 2);
	ck_assert_str_eq(vals[1], "b c");
	ck_assert_str_eq(req_query(&rq, "search"), "x y");
	ck_assert_str_eq(req_query(&rq, "flag"), "");
	ck_assert_str_eq(req_query(&rq, "bad"), "%zz");
	ck_assert_int_eq(req_page(&rq, &off, &lim, &e), 0);
	ck_assert_int_eq(off, 10);
	ck_assert_int_eq(lim, 5);

	static const char *badq[] = {"limit=0",   "limit=101", "limit=abc",
				     "offset=-1", "limit=",    "limit=5x"};
	for (size_t i = 0; i < sizeof(badq) / sizeof(badq[0]); i++) {
		req_release(&rq);
		req_init(&rq, &a);
		rq.query = badq[i];
		req_parse_query(&rq);
		ck_assert_msg(req_page(&rq, &off, &lim, &e) == -1, "%s",
			      badq[i]);
		ck_assert_int_eq(e.status, 400);
	}
	size_t n;
	ck_assert_ptr_null(http_decode(&a, "%4", 2, 0, NULL));
	ck_assert_str_eq(http_decode(&a, "a%2Fb+c", 7, 0, &n), "a/b+c");
	ck_assert_uint_eq(n, 5);
	req_release(&rq);
	arena_release(&a);
}
END_TEST

/* Cursors: a delta's id round-trips; since_id, after_sequence and limit
 * as evq_parse reads them. */
START_TEST(evq_cursors)
{
	struct arena a = ARENA_INIT;
	struct req rq;
	struct apierr e;
	struct evq q;
	char id[EVQ_DELTA_ID_MAX];
	long long c, m;
	size_t off;

	evq_delta_id(id, 12, 5, 4096);
	ck_assert_str_eq(id, "dlt_12_5_4096");
	ck_assert_int_eq(evq_delta_id_parse(id, &c, &m, &off), 1);
	ck_assert(c == 12 && m == 5 && off == 4096);
	ck_assert_int_eq(evq_delta_id_parse("dlt_4_0_0", &c, &m, &off), 1);
	ck_assert(c == 4 && m == 0 && off == 0); /* no message */
	static const char *bad[] = {
		"dlt_",       "dlt_1_2",
		"dlt_1_2_",   "dlt_1_2_3x",
		"dlt_1_0_3",  "dlt_1_2_3",
		"dlt_-1_1_0", "dlt_99999999999999999999_1_0",
		"evt_1_1_0",  "dlt_5_5_99999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!evq_delta_id_parse(bad[i], &c, &m, &off), "%s",
			      bad[i]);

	static const struct {
		const char *query, *header;
		int ok, delta, newest;
		long long after;
	} cases[] = {
		{"since_id=dlt_7_3_10", NULL, 1, 1, 0, 7},
		{"", "dlt_9_9_0", 1, 1, 0, 9},
		{"since_id=dlt_7_9_10", NULL, 0, 0, 0, 0}, /* m > c */
		{"after_sequence=4", NULL, 1, 0, 0, 4},
		{"since_sequence=2&after_sequence=4", NULL, 1, 0, 0, 2},
		{"limit=5", NULL, 1, 0, 1, 0},
		{"limit=5&after_sequence=0", NULL, 1, 0, 0, 0},
		{"types=tool.output.delta,llm.generation&exclude=tool.progress",
		 NULL, 1, 0, 0, 0},
		{"types=no.such", NULL, 0, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		req_init(&rq, &a);
		rq.query = cases[i].query;
		req_parse_query(&rq);
		evq_init(&q);
		int r = evq_parse(&rq, cases[i].header, 0, &q, &e);
		ck_assert_msg((r == 0) == cases[i].ok, "%s", cases[i].query);
		if (r == 0) {
			ck_assert_int_eq(q.delta_cursor, cases[i].delta);
			ck_assert_int_eq(q.newest, cases[i].newest);
			ck_assert_msg(q.after == cases[i].after, "%s",
				      cases[i].query);
		} else {
			ck_assert_int_eq(e.status, 400);
		}
		evq_release(&q);
		req_release(&rq);
	}
	arena_release(&a);
}
END_TEST

START_TEST(auth_header_forms)
{
	char key[AUTH_KEY_LEN + 1], hash[65], h[128];
	auth_new_key(key, hash);
	ck_assert_uint_eq(strlen(key), AUTH_KEY_LEN);
	snprintf(h, sizeof(h), "Bearer %s", key);
	ck_assert_str_eq(auth_key_from_header(h), key);
	snprintf(h, sizeof(h), "ApiKey %s", key);
	ck_assert_str_eq(auth_key_from_header(h), key);
	ck_assert_str_eq(auth_key_from_header(key), key);
	snprintf(h, sizeof(h), "Basic %s", key);
	ck_assert_ptr_null(auth_key_from_header(h));
	ck_assert_ptr_null(auth_key_from_header("Bearer evr_123"));
	ck_assert_ptr_null(auth_key_from_header(NULL));
	snprintf(h, sizeof(h), "Bearer %sx", key);
	ck_assert_ptr_null(auth_key_from_header(h));
	char again[65];
	crypto_sha256_hex(key, AUTH_KEY_LEN, again);
	ck_assert_str_eq(again, hash);
}
END_TEST

START_TEST(error_bodies)
{
	struct arena a = ARENA_INIT;
	struct req rq;
	struct buf head = BUF_INIT;
	req_init(&rq, &a);
	res_error(&rq, 404, "not_found", "Session \"x\" not found");
	ck_assert_str_eq(
		rq.res_body.data,
		"{\"error\":\"Session \\\"x\\\" not found\",\"code\":\"not_found\","
		"\"status\":404,\"title\":\"Not Found\","
		"\"detail\":\"Session \\\"x\\\" not found\"}");
	res_head(&rq, &head);
	ck_assert_ptr_nonnull(strstr(head.data, "Status: 404 Not Found\r\n"));
	ck_assert_ptr_nonnull(
		strstr(head.data, "Content-Type: application/json\r\n"));
	buf_release(&head);
	req_release(&rq);
	arena_release(&a);
}
END_TEST

static void count_one(const char *key, void *val, void *ctx)
{
	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(val);
	(*(int *)ctx)++;
}

START_TEST(strmap_put_get_del)
{
	int count;
	struct strmap m = STRMAP_INIT;
	char k[32];
	static int vals[5000];
	int i;

	ck_assert_ptr_null(strmap_get(&m, "nothing"));
	ck_assert_ptr_null(strmap_del(&m, "nothing"));
	for (i = 0; i < 5000; i++) { /* grows through several doublings */
		snprintf(k, sizeof(k), "ses-%d", i);
		strmap_put(&m, k, &vals[i]);
	}
	ck_assert_uint_eq(m.n, 5000);
	for (i = 0; i < 5000; i++) {
		snprintf(k, sizeof(k), "ses-%d", i);
		ck_assert_ptr_eq(strmap_get(&m, k), &vals[i]);
	}
	strmap_put(&m, "ses-7", &vals[8]); /* replace */
	ck_assert_ptr_eq(strmap_get(&m, "ses-7"), &vals[8]);
	ck_assert_uint_eq(m.n, 5000);
	for (i = 0; i < 5000; i += 2) {
		snprintf(k, sizeof(k), "ses-%d", i);
		ck_assert_ptr_nonnull(strmap_del(&m, k));
	}
	ck_assert_uint_eq(m.n, 2500);
	ck_assert_ptr_null(strmap_get(&m, "ses-0"));
	ck_assert_ptr_eq(strmap_get(&m, "ses-1"), &vals[1]);
	ck_assert_ptr_null(strmap_get(&m, "ses-"));
	count = 0;
	strmap_each(&m, count_one, &count);
	ck_assert_int_eq(count, 2500);
	strmap_release(&m);
	ck_assert_ptr_null(strmap_get(&m, "ses-1"));
}
END_TEST

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(rx_is_bounded_and_takes_ere)
{
	static const char *const runaway[] = {
		"^(a*)*\\1\\1b$",   "(*NO_START_OPT)^(a*)*\\1\\1b$",
		"^(a+)+$",          "^(a|a)*$",
		"((a*)*)*\\2\\1!b", "(a|aa)*c",
		"(a*)\\1*\\1*[bc]", "(a*)\\1*\\1*[bc]"};
	char line[70001];
	struct apierr e;
	struct rx *r;
	size_t i;
	double t;

	/* POSIX ERE as sent before, and GNU's word edges */
	ck_assert_ptr_nonnull(
		r = rx_compile("^fo+[[:digit:]]{2,3}(x|y)$", "pattern", &e));
	ck_assert_int_eq(rx_match(r, "foo12y", 6, &e), 1);
	ck_assert_int_eq(rx_match(r, "foo1y", 5, &e), 0);
	rx_free(r);
	ck_assert_ptr_nonnull(r = rx_compile("\\<cat\\>", "pattern", &e));
	ck_assert_int_eq(rx_match(r, "a cat sat", 9, &e), 1);
	ck_assert_int_eq(rx_match(r, "concatenate", 11, &e), 0);
	rx_free(r);
	ck_assert_ptr_null(rx_compile("a(b", "pattern", &e));
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.code, "validation_error");

	/* runaways end with a 422 naming the limit, fast, on 300 and on
	 * 65,536 bytes */
	for (i = 0; i < sizeof(runaway) / sizeof(*runaway); i++) {
		size_t n = i & 1 ? 65536 : 300;
		memset(line, 'a', n);
		line[n] = '!';
		ck_assert_ptr_nonnull(
			r = rx_compile(runaway[i], "pattern", &e));
		t = mono_s();
		int m = rx_match(r, line, n + 1, &e);
		t = mono_s() - t;
		ck_assert_msg(m == -1 || m == 0, "%s: %d", runaway[i], m);
		if (m == -1) {
			ck_assert_int_eq(e.status, 422);
			ck_assert_str_eq(e.code, "regex_limit");
			ck_assert_ptr_nonnull(strstr(e.msg, "regex_"));
		}
		ck_assert_msg(t < 2.0, "%s took %.3f s", runaway[i], t);
		rx_free(r);
	}
	memset(line, 'a', 300);
	line[300] = '!';
	ck_assert_ptr_nonnull(
		r = rx_compile("(*NO_START_OPT)^(a*)*\\1\\1b$", "pattern", &e));
	ck_assert_int_eq(rx_match(r, line, 301, &e), -1);
	/* the step limit, or the clock on a slow machine */
	ck_assert(strstr(e.msg, "regex_match_limit") ||
		  strstr(e.msg, "regex_time_ms"));
	rx_free(r);

	/* a back reference compared across the line at every step: the
	 * step limit is not reached, the clock is */
	memset(line, 'a', 1000);
	line[1000] = '!';
	ck_assert_ptr_nonnull(
		r = rx_compile("(a*)\\1*\\1*[bc]", "pattern", &e));
	t = mono_s();
	ck_assert_int_eq(rx_match(r, line, 1001, &e), -1);
	t = mono_s() - t;
	ck_assert_ptr_nonnull(strstr(e.msg, "regex_time_ms (200 ms)"));
	ck_assert_msg(t < 0.5, "took %.3f s", t);
	rx_free(r);

	/* compile memory is bounded too */
	config_set("regex_memory_kb", "256");
	e.status = 0;
	r = rx_compile("(((((a{1,1000}){1,1000}){1,1000}){1,1000}){1,1000})",
		       "pattern", &e);
	ck_assert_ptr_null(r);
	ck_assert_int_ge(e.status, 400);
	config_set("regex_memory_kb", "8192");
}
END_TEST

/* PostgreSQL array literals: quotes and backslashes escaped, runs between
 * them copied whole, NULL unquoted */
START_TEST(db_array_literals)
{
	struct buf b = BUF_INIT;
	db_array_end(&b);
	ck_assert_str_eq(b.data, "{}");
	buf_reset(&b);
	db_array_add(&b, "plain");
	db_array_add(&b, NULL);
	db_array_add(&b, "");
	db_array_add(&b, "{\"a\":\"b\\\\c\"}");
	db_array_add(&b, "\\\"");
	db_array_end(&b);
	ck_assert_str_eq(b.data, "{\"plain\",NULL,\"\","
				 "\"{\\\"a\\\":\\\"b\\\\\\\\c\\\"}\","
				 "\"\\\\\\\"\"}");
	buf_release(&b);
}
END_TEST

/* Binary arrays: array_recv's header (1 dimension, flags, element type,
 * length, lower bound 1), then each element as length and bytes, -1 for
 * NULL; uuids from their 32 hex digits, anything else as NULL */
START_TEST(db_barray_layout)
{
	static const unsigned char want[] = {
		0,    0,    0,    1,    0,    0,    0,    0,    0,
		0,    0x0b, 0x86, 0,    0,    0,    4,    0,    0,
		0,    1,    0,    0,    0,    16,   0x01, 0x23, 0x45,
		0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67,
		0x89, 0xab, 0xcd, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	struct db_barray a;
	memset(&a, 0, sizeof(a));
	db_barray_begin(&a, DB_OID_UUID);
	ck_assert_int_eq(db_barray_uuid(&a, "0123456789abcdef0123456789ABCDEF"),
			 0);
	ck_assert_int_eq(
		db_barray_uuid(&a, "01234567-89ab-cdef-0123-456789abcdef"), -1);
	ck_assert_int_eq(db_barray_uuid(&a, NULL), 0);
	ck_assert_int_eq(db_barray_uuid(&a, "0123456789abcdef0123456789abcdeg"),
			 -1);
	db_barray_end(&a);
	ck_assert_uint_eq(a.b.len, sizeof(want));
	ck_assert_int_eq(memcmp(a.b.data, want, sizeof(want)), 0);

	db_barray_begin(&a, DB_OID_JSONB); /* used again: starts over */
	db_barray_jsonb(&a, "{}");
	db_barray_int8(&a,
		       -2); /* any element type: the bytes are the caller's */
	db_barray_end(&a);
	ck_assert_uint_eq(a.b.len, 20 + 4 + 3 + 4 + 8);
	ck_assert_int_eq(memcmp(a.b.data + 20, "\0\0\0\3\1{}", 7), 0);
	ck_assert_int_eq(memcmp(a.b.data + 27,
				"\0\0\0\10\377\377\377\377\377\377\377\376",
				12),
			 0);
	ck_assert_int_eq((unsigned char)a.b.data[15], 2);
	db_barray_release(&a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lib");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, buf_grows_and_formats);
	tcase_add_test(tc, arena_allocates_and_resets);
	tcase_add_test(tc, json_depth_limit_is_32);
	tcase_add_test(tc, json_rejects_bad_input);
	tcase_add_test(tc, utf8_cut_and_clean);
	tcase_add_test(tc, json_text_pg_cannot_store);
	tcase_add_test(tc, json_storable_fixes_in_place);
	tcase_add_test(tc, json_typed_getters);
	tcase_add_test(tc, ids_parse_and_new);
	tcase_add_test(tc, crypto_hash_and_seal);
	tcase_add_test(tc, config_file_and_env);
	tcase_add_test(tc, config_table);
	tcase_add_test(tc, config_example);
	tcase_add_test(tc, status_files);
	tcase_add_test(tc, query_strings);
	tcase_add_test(tc, evq_cursors);
	tcase_add_test(tc, auth_header_forms);
	tcase_add_test(tc, error_bodies);
	tcase_add_test(tc, strmap_put_get_del);
	tcase_add_test(tc, rx_is_bounded_and_takes_ere);
	tcase_add_test(tc, db_array_literals);
	tcase_add_test(tc, db_barray_layout);
	suite_add_tcase(s, tc);
	return check_run(s);
}
