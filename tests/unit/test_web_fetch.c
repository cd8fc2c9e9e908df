/* Unit tests of fetch_url's pieces that need no network: HTML reduced to
 * text, text cleaning, and the validation of a call before any transfer. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "tools_internal.h"
#include "check_run.h"

static char *reduce(const char *html)
{
	struct buf b = BUF_INIT;
	html_to_text(html, strlen(html), &b);
	return buf_detach(&b, NULL);
}

#define CHECK_TEXT(html, want)                                                 \
	do {                                                                   \
		char *got_ = reduce(html);                                     \
		ck_assert_str_eq(got_, want);                                  \
		free(got_);                                                    \
	} while (0)

START_TEST(html_is_reduced_to_text)
{
	CHECK_TEXT(
		"<!DOCTYPE html><html><head><title>Hello</title>"
		"<script>var x = '<p>no</p>';</script>"
		"<style>p { color: red }</style></head>"
		"<body><h1>Main  title</h1><p>First   paragraph\n with"
		" <b>bold</b> text.</p><!-- hidden <p>comment</p> -->"
		"<ul><li>one</li><li>two</li></ul></body></html>",
		"Hello\n\nMain title\n\nFirst paragraph with bold text.\n\none\n\ntwo");
	CHECK_TEXT("a &amp; b &lt;c&gt; &quot;d&quot; &#39;e&#39; &#x41;&#66; "
		   "&nbsp;x&mdash;y &unknown; & z",
		   "a & b <c> \"d\" 'e' AB x\xe2\x80\x94y &unknown; & z");
	CHECK_TEXT("1 < 2 and 3 > 2", "1 < 2 and 3 > 2");
	CHECK_TEXT("<SCRIPT type=x>alert(1)</SCRIPT >after", "after");
	CHECK_TEXT(
		"<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>",
		"a b\n\nc");
	CHECK_TEXT("text<br>next<br/>last", "text\nnext\nlast");
}
END_TEST

START_TEST(malformed_html_never_fails)
{
	CHECK_TEXT("before <!-- never closed", "before");
	CHECK_TEXT("before <b unterminated", "before");
	CHECK_TEXT("<script>never closed", "");
	CHECK_TEXT("x&#0;y&#xD800;z&#99999999;",
		   "x\xef\xbf\xbdy\xef\xbf\xbdz\xef\xbf\xbd");
	CHECK_TEXT("bad \xff\xfe utf8 \xc3",
		   "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd");
	CHECK_TEXT("ctl\x01\x02"
		   "chars\x7f",
		   "ctlchars");
	CHECK_TEXT("", "");
}
END_TEST

START_TEST(text_is_cleaned)
{
	struct buf b = BUF_INIT;
	text_clean("ok\n\tline\r\x00x\xc0\xafy", 15, &b);
	ck_assert_uint_eq(b.len, strlen(b.data));
	ck_assert_str_eq(b.data, "ok\n\tlinex\xef\xbf\xbd\xef\xbf\xbdy");
	buf_release(&b);
}
END_TEST

START_TEST(calls_are_checked_before_any_transfer)
{
	static const char *const bad[] = {
		"{\"url\":\"ftp://example.com/x\"}",
		"{\"url\":\"file:///etc/passwd\"}",
		"{\"url\":\"gopher://127.0.0.1:6379/_\"}",
		"{\"url\":\"not a url\"}",
		"{\"url\":42}",
		"{}",
		"{\"url\":\"http://example.com\",\"max_bytes\":0}",
		"{\"url\":\"http://example.com\",\"other\":1}",
	};
	size_t i;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_object *a = json_tokener_parse(bad[i]);
		struct json_object *cfg = json_object_new_object();
		struct buf err = BUF_INIT;
		ck_assert_msg(web_fetch_new(a, cfg, &err) == NULL, "%s",
			      bad[i]);
		ck_assert_msg(err.len > 0, "%s: no error", bad[i]);
		buf_release(&err);
		json_object_put(a);
		json_object_put(cfg);
	}
}
END_TEST

/* Loopback in its spellings: refused before any socket is opened (port 9
 * has no listener, so anything but the guard would fail differently). */
START_TEST(refused_address_is_a_tool_error)
{
	static const char *const urls[] = {
		"http://127.0.0.1:9/x",     "http://2130706433:9/",
		"http://0177.0.0.1:9/",     "http://0x7f.1:9/",
		"http://[::1]:9/",          "http://[::ffff:127.0.0.1]:9/",
		"http://localhost:9/",      "http://0.0.0.0:9/",
		"https://169.254.169.254/", "http://10.255.255.1/",
	};
	size_t i;
	for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		struct json_object *a = json_object_new_object();
		struct json_object *cfg =
			json_tokener_parse("{\"timeout_s\":5}");
		struct buf err = BUF_INIT, res = BUF_INIT;
		struct web_fetch *f;
		CURLcode rc;

		json_object_object_add(a, "url",
				       json_object_new_string(urls[i]));
		f = web_fetch_new(a, cfg, &err);
		ck_assert_ptr_nonnull(f);
		rc = curl_easy_perform(web_fetch_easy(f));
		ck_assert_int_eq(web_fetch_done(f, rc, &res, &err), TOOL_ERROR);
		ck_assert_msg(strstr(err.data, "address guard refused"),
			      "%s: %s", urls[i], err.data);
		web_fetch_free(f);
		buf_release(&err);
		buf_release(&res);
		json_object_put(a);
		json_object_put(cfg);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("web_fetch");
	TCase *tc = tcase_create("web_fetch");

	tcase_add_test(tc, html_is_reduced_to_text);
	tcase_add_test(tc, malformed_html_never_fails);
	tcase_add_test(tc, text_is_cleaned);
	tcase_add_test(tc, calls_are_checked_before_any_transfer);
	tcase_add_test(tc, refused_address_is_a_tool_error);
	suite_add_tcase(s, tc);
	return check_run(s);
}
