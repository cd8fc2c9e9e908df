/*
 * Unit tests of the session file system's pure parts: the path
 * normalizer, base64, content encoding, media types, and how the router
 * hands file paths to the handlers (decoded once, then normalized).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "fs.h"
#include "check_run.h"

static int norm(const char *in, char *out)
{
	struct apierr e;
	return fs_path_normalize(in, strlen(in), out, "path", &e);
}

static void ok(const char *in, const char *want)
{
	char out[FS_PATH_MAX + 1];
	ck_assert_msg(norm(in, out) == 0, "refused: %s", in);
	ck_assert_str_eq(out, want);
}

static void bad(const char *in)
{
	char out[FS_PATH_MAX + 1];
	struct apierr e;
	ck_assert_msg(fs_path_normalize(in, strlen(in), out, "path", &e) != 0,
		      "accepted: %s", in);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.code, "invalid_path");
	ck_assert(strstr(e.msg, "path") != NULL);
}

START_TEST(paths_normalized)
{
	ok("", "/");
	ok("/", "/");
	ok("a", "/a");
	ok("/a", "/a");
	ok("a/", "/a");
	ok("/reports/q1.md", "/reports/q1.md");
	ok("__init__.py", "/__init__.py");
	ok("_config.yml", "/_config.yml");
	ok("a/_/b", "/a/_/b"); /* only the first segment is reserved */
	ok("__", "/__");
	ok("...", "/...");
	ok("a..b/.c", "/a..b/.c");
	ok("%2e%2e", "/%2e%2e"); /* decoded once by the router, never again */
	ok("d\xc3\xa9j\xc3\xa0 vu.txt", "/d\xc3\xa9j\xc3\xa0 vu.txt");
}
END_TEST

START_TEST(paths_refused)
{
	bad("..");
	bad("../x");
	bad("/../x");
	bad("a/../../x");
	bad("a/..");
	bad(".");
	bad("./a");
	bad("a/./b");
	bad("//");
	bad("//a");
	bad("a//b");
	bad("a//");
	bad("_");
	bad("_/x");
	bad("/_/x");
	bad("/_");
	bad("a\tb");
	bad("a\nb");
	bad("a\x7f");
	bad("\xff\xfe");
	bad("\xc0\xaf"); /* overlong "/" */
}
END_TEST

START_TEST(paths_nul_and_lengths)
{
	char out[FS_PATH_MAX + 1], in[4096];
	struct apierr e;

	ck_assert_int_ne(fs_path_normalize("a\0b", 3, out, "path", &e), 0);
	/* a segment of 255 bytes is fine, 256 is not */
	memset(in, 'x', 255);
	in[255] = '\0';
	ck_assert_int_eq(norm(in, out), 0);
	memset(in, 'x', 256);
	in[256] = '\0';
	ck_assert_int_ne(norm(in, out), 0);
	/* the normalized path: 1024 bytes fine, 1025 not */
	memset(in, 'y', sizeof(in));
	for (size_t i = 100; i < sizeof(in); i += 101)
		in[i] = '/';
	in[1023] = '\0'; /* "/" + 1023 bytes = 1024 */
	ck_assert_int_eq(norm(in, out), 0);
	ck_assert_uint_eq(strlen(out), 1024);
	in[1023] = 'z';
	in[1024] = '\0';
	ck_assert_int_ne(norm(in, out), 0);
}
END_TEST

START_TEST(base64_and_content)
{
	struct buf b = BUF_INIT;
	ck_assert_int_eq(fs_base64_decode("aGVsbG8=", 8, &b), 0);
	ck_assert_str_eq(b.data, "hello");
	buf_reset(&b);
	ck_assert_int_eq(fs_base64_decode("aGVsbG8", 7, &b), 0); /* no pad */
	ck_assert_str_eq(b.data, "hello");
	buf_reset(&b);
	ck_assert_int_eq(fs_base64_decode("aGVs\nbG8h", 9, &b), 0);
	ck_assert_str_eq(b.data, "hello!");
	buf_reset(&b);
	ck_assert_int_eq(fs_base64_decode("", 0, &b), 0);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_ne(fs_base64_decode("a", 1, &b), 0);
	ck_assert_int_ne(fs_base64_decode("aGV*", 4, &b), 0);
	ck_assert_int_ne(fs_base64_decode("aG=Vs", 5, &b), 0);

	buf_reset(&b);
	fs_add_content(&b, "h\xc3\xa9", 3);
	ck_assert_str_eq(b.data,
			 ",\"content\":\"h\xc3\xa9\",\"encoding\":\"text\"");
	buf_reset(&b);
	fs_add_content(&b, "\x00\xff", 2);
	ck_assert_str_eq(b.data,
			 ",\"content\":\"AP8=\",\"encoding\":\"base64\"");
	buf_release(&b);
}
END_TEST

START_TEST(media_types)
{
	ck_assert_str_eq(fs_media_type("/data.csv"), "text/csv; charset=utf-8");
	ck_assert_str_eq(fs_media_type("/a/b.PNG"), "image/png");
	ck_assert_str_eq(fs_media_type("/a.b/noext"),
			 "application/octet-stream");
	ck_assert_str_eq(fs_media_type("/x."), "application/octet-stream");
}
END_TEST

START_TEST(server_caps)
{
	const long long mib = 1024 * 1024;

	ck_assert_int_eq(fs_cap_file(), 25 * mib);
	ck_assert_int_eq(fs_cap_total(), 100 * mib);
	/* nginx's client_max_body_size for the file routes, as everrunsctl
	 * writes it: 25 MiB x 4/3 + 64 KiB */
	ck_assert_uint_eq(fs_body_max(),
			  (size_t)(25 * 1024 * 4 / 3 + 64) * 1024);
	config_set("fs_max_file_mb", "30");
	config_set("fs_session_max_mb", "7");
	ck_assert_int_eq(fs_cap_file(), 30 * mib);
	ck_assert_int_eq(fs_cap_total(), 7 * mib);
	config_set("fs_max_file_mb", "4096");
	ck_assert_int_eq(fs_cap_file(), FS_FILE_MB_MAX * mib);
	config_set("fs_max_file_mb", "0"); /* below its bounds: the least */
	ck_assert_int_eq(fs_cap_file(), 1 * mib);
	config_free();
}
END_TEST

/* The router decodes a {path*} capture once: encoded traversal reaches
 * the normalizer as plain "..", an encoded NUL never gets that far. */
START_TEST(router_hands_over_paths)
{
	static const char sid[] = "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b";
	struct arena a = ARENA_INIT;
	struct buf allow = BUF_INIT;
	struct req rq;
	const struct route *rt;
	char path[512], out[FS_PATH_MAX + 1];
	int badp;

	req_init(&rq, &a);
	rq.method = "GET";
	snprintf(path, sizeof(path), "/api/v1/sessions/%s/fs/%%2e%%2e/etc",
		 sid);
	rq.path = path;
	rt = router_match(&rq, &allow, &badp);
	ck_assert_ptr_nonnull(rt);
	ck_assert_str_eq(rq.cap[1], "../etc");
	ck_assert_int_ne(norm(rq.cap[1], out), 0);

	snprintf(path, sizeof(path), "/api/v1/sessions/%s/fs/..%%2fx", sid);
	rt = router_match(&rq, &allow, &badp);
	ck_assert_ptr_nonnull(rt);
	ck_assert_str_eq(rq.cap[1], "../x");
	ck_assert_int_ne(norm(rq.cap[1], out), 0);

	snprintf(path, sizeof(path), "/api/v1/sessions/%s/fs/a%%00b", sid);
	rt = router_match(&rq, &allow, &badp);
	ck_assert_ptr_null(rt);
	ck_assert_int_eq(badp, 2);

	/* the actions win over the catch-all; a GET of /fs/_/stat does not */
	rq.method = "POST";
	snprintf(path, sizeof(path), "/api/v1/sessions/%s/fs/_/stat", sid);
	rt = router_match(&rq, &allow, &badp);
	ck_assert_ptr_nonnull(rt);
	ck_assert_ptr_eq(rt->fn, h_fs_stat);
	rq.method = "GET";
	rt = router_match(&rq, &allow, &badp);
	ck_assert_ptr_eq(rt->fn, h_fs_get);
	ck_assert_int_ne(norm(rq.cap[1], out), 0);

	snprintf(path, sizeof(path),
		 "/api/v1/sessions/%s/fs/_/download/a/b.txt", sid);
	rt = router_match(&rq, &allow, &badp);
	ck_assert_ptr_eq(rt->fn, h_fs_download);
	ck_assert_str_eq(rq.cap[1], "a/b.txt");

	req_release(&rq);
	buf_release(&allow);
	arena_release(&a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fs");
	TCase *tc = tcase_create("core");

	suite_add_tcase(s, tc);
	tcase_add_test(tc, paths_normalized);
	tcase_add_test(tc, paths_refused);
	tcase_add_test(tc, paths_nul_and_lengths);
	tcase_add_test(tc, base64_and_content);
	tcase_add_test(tc, media_types);
	tcase_add_test(tc, server_caps);
	tcase_add_test(tc, router_hands_over_paths);
	return check_run(s);
}
