/* Unit tests of the multipart/form-data parser (fcgi/lib/multipart.c) and
 * the image magic-byte check (fcgi/lib/imagetype.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imagetype.h"
#include "multipart.h"
#include "check_run.h"

static int parse(const char *body, size_t len, struct mp_part *parts,
		 struct apierr *e)
{
	return multipart_parse("XyZ", body, len, parts, MP_MAX_PARTS, e);
}

START_TEST(boundary_from_content_type)
{
	char b[71];
	struct apierr e;
	ck_assert_int_eq(
		multipart_boundary("multipart/form-data; boundary=abc", b, &e),
		0);
	ck_assert_str_eq(b, "abc");
	ck_assert_int_eq(
		multipart_boundary(
			"Multipart/Form-Data;charset=x; BOUNDARY=\"a b:c\"", b,
			&e),
		0);
	ck_assert_str_eq(b, "a b:c");
	ck_assert_int_eq(
		multipart_boundary(
			"multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
			b, &e),
		0);
	ck_assert_int_eq(multipart_boundary("application/json", b, &e), -1);
	ck_assert_int_eq(e.status, 415);
	ck_assert_int_eq(multipart_boundary(NULL, b, &e), -1);
	ck_assert_int_eq(e.status, 415);
	ck_assert_int_eq(
		multipart_boundary("multipart/form-dataX; boundary=a", b, &e),
		-1);
	ck_assert_int_eq(e.status, 415);
	/* missing, empty, too long, bad characters */
	ck_assert_int_eq(multipart_boundary("multipart/form-data", b, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_int_eq(
		multipart_boundary("multipart/form-data; boundary=", b, &e),
		-1);
	ck_assert_int_eq(
		multipart_boundary("multipart/form-data; boundary=\"\"", b, &e),
		-1);
	ck_assert_int_eq(multipart_boundary(
				 "multipart/form-data; boundary=\"open", b, &e),
			 -1);
	ck_assert_int_eq(
		multipart_boundary("multipart/form-data; boundary=a\"b", b, &e),
		-1);
	ck_assert_int_eq(
		multipart_boundary(
			"multipart/form-data; boundary="
			"12345678901234567890123456789012345678901234567890123456789012345678901",
			b, &e),
		-1);
	ck_assert_int_eq(
		multipart_boundary(
			"multipart/form-data; boundary="
			"1234567890123456789012345678901234567890123456789012345678901234567890",
			b, &e),
		0);
}
END_TEST

START_TEST(parts_and_fields)
{
	static const char body[] =
		"--XyZ\r\n"
		"Content-Disposition: form-data; name=\"file\"; filename=\"dir/a \\\"q\\\".png\"\r\n"
		"content-type: image/png\r\n"
		"\r\n"
		"\x89PNG\r\n\x1a\n\r\n--XyYnot-a-delimiter\r\n"
		"\r\n--XyZ\r\n"
		"Content-Disposition: form-data; name=session_id\r\n"
		"\r\n"
		"ses_1\r\n"
		"--XyZ--\r\n"
		"epilogue";
	struct mp_part p[MP_MAX_PARTS];
	struct apierr e;
	int n = parse(body, sizeof(body) - 1, p, &e);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(p[0].name, "file");
	ck_assert_str_eq(p[0].filename, "dir/a \"q\".png");
	ck_assert_int_eq(p[0].has_filename, 1);
	ck_assert_str_eq(p[0].content_type, "image/png");
	ck_assert_uint_eq(p[0].len, 8 + 2 + 20 + 2);
	ck_assert(!memcmp(p[0].data,
			  "\x89PNG\r\n\x1a\n\r\n--XyYnot-a-delimiter\r\n", 32));
	ck_assert_str_eq(p[1].name, "session_id");
	ck_assert_int_eq(p[1].has_filename, 0);
	ck_assert_uint_eq(p[1].len, 5);
	ck_assert(!memcmp(p[1].data, "ses_1", 5));
}
END_TEST

START_TEST(preamble_empty_parts_and_bare_lf)
{
	static const char body[] =
		"preamble text\r\n--XyZ\r\n\r\nno headers\r\n--XyZ\n"
		"Content-Disposition: form-data; name=\"x\"\n\nlf\r\n--XyZ--";
	struct mp_part p[MP_MAX_PARTS];
	struct apierr e;
	ck_assert_int_eq(parse(body, sizeof(body) - 1, p, &e), 2);
	ck_assert_str_eq(p[0].name, "");
	ck_assert_uint_eq(p[0].len, 10);
	ck_assert_str_eq(p[1].name, "x");
	ck_assert_uint_eq(p[1].len, 2);
	/* a body that is only the closing delimiter has no parts */
	ck_assert_int_eq(parse("--XyZ--\r\n", 9, p, &e), 0);
}
END_TEST

START_TEST(malformed_bodies_are_400)
{
	static const char *const bad[] = {
		"",
		"no delimiter at all",
		"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ndata",
		"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ndata\r\n--XyZ",
		"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n",
		"--XyZ\r\nContent-Disposition: attachment; name=\"file\"\r\n\r\nx\r\n--XyZ--",
		"--XyZ\r\nContent-Disposition: form-data; name=\"unterminated\r\n\r\nx\r\n--XyZ--",
		"--XyZ\r\nno colon here\r\n\r\nx\r\n--XyZ--",
		"--XyZgarbage\r\n\r\nx\r\n--XyZ--",
	};
	struct mp_part p[MP_MAX_PARTS];
	struct apierr e;
	size_t i;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(bad[i], strlen(bad[i]), p, &e) == -1, "%zu",
			      i);
		ck_assert_int_eq(e.status, 400);
	}
}
END_TEST

START_TEST(limits)
{
	char *body = malloc(MP_MAX_HEADER + 200);
	struct mp_part p[MP_MAX_PARTS];
	struct apierr e;
	size_t n;
	int i;
	/* headers just over the limit */
	n = (size_t)sprintf(body, "--XyZ\r\nX-Pad: ");
	memset(body + n, 'a', MP_MAX_HEADER);
	n += MP_MAX_HEADER;
	n += (size_t)sprintf(body + n, "\r\n\r\nx\r\n--XyZ--");
	ck_assert_int_eq(parse(body, n, p, &e), -1);
	ck_assert(strstr(e.msg, "headers larger") != NULL);
	/* ... and without an end */
	ck_assert_int_eq(parse(body, MP_MAX_HEADER + 20, p, &e), -1);
	ck_assert_int_eq(e.status, 400);
	free(body);
	/* one part too many */
	body = malloc(64 * (MP_MAX_PARTS + 2));
	n = 0;
	for (i = 0; i <= MP_MAX_PARTS; i++)
		n += (size_t)sprintf(body + n, "--XyZ\r\n\r\nv\r\n");
	n += (size_t)sprintf(body + n, "--XyZ--");
	ck_assert_int_eq(parse(body, n, p, &e), -1);
	ck_assert(strstr(e.msg, "more than") != NULL);
	free(body);
}
END_TEST

START_TEST(image_magic)
{
	ck_assert_str_eq(
		imagetype_sniff((const unsigned char *)"\x89PNG\r\n\x1a\n", 8),
		"image/png");
	ck_assert_ptr_null(
		imagetype_sniff((const unsigned char *)"\x89PNG\r\n\x1a", 7));
	ck_assert_str_eq(
		imagetype_sniff((const unsigned char *)"\xff\xd8\xff\xe0", 4),
		"image/jpeg");
	ck_assert_str_eq(imagetype_sniff((const unsigned char *)"GIF87a", 6),
			 "image/gif");
	ck_assert_str_eq(imagetype_sniff((const unsigned char *)"GIF89a..", 8),
			 "image/gif");
	ck_assert_ptr_null(imagetype_sniff((const unsigned char *)"GIF88a", 6));
	ck_assert_str_eq(
		imagetype_sniff((const unsigned char *)"RIFF\0\0\0\0WEBPVP8 ",
				16),
		"image/webp");
	ck_assert_ptr_null(
		imagetype_sniff((const unsigned char *)"RIFF\0\0\0\0WAVE", 12));
	ck_assert_ptr_null(imagetype_sniff((const unsigned char *)"<svg>", 5));
	ck_assert(imagetype_known("image/webp"));
	ck_assert(!imagetype_known("image/svg+xml"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("multipart");
	TCase *tc = tcase_create("multipart");

	tcase_add_test(tc, boundary_from_content_type);
	tcase_add_test(tc, parts_and_fields);
	tcase_add_test(tc, preamble_empty_parts_and_bare_lf);
	tcase_add_test(tc, malformed_bodies_are_400);
	tcase_add_test(tc, limits);
	tcase_add_test(tc, image_magic);
	suite_add_tcase(s, tc);
	return check_run(s);
}
