/* Unit tests of everruns-sse's FastCGI record code (fcgi/sse/fcgi_proto.c):
 * a request as nginx sends it, fed whole and split at every byte, in
 * three pieces; long (4-byte) lengths; malformed and oversized input;
 * the writer's records parsed back. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fcgi_proto.h"
#include "check_run.h"

static void rec(struct buf *b, int type, unsigned id, const void *c, size_t len,
		size_t pad)
{
	unsigned char h[8] = {1,
			      (unsigned char)type,
			      (unsigned char)(id >> 8),
			      (unsigned char)id,
			      (unsigned char)(len >> 8),
			      (unsigned char)len,
			      (unsigned char)pad,
			      0};
	static const char zeros[256];
	buf_add(b, h, 8);
	buf_add(b, c, len);
	buf_add(b, zeros, pad);
}

static void nv(struct buf *b, const char *k, const char *v)
{
	size_t lens[2] = {strlen(k), strlen(v)}, i;
	for (i = 0; i < 2; i++) {
		if (lens[i] < 128) {
			buf_addch(b, (char)lens[i]);
		} else {
			unsigned char l[4] = {
				(unsigned char)(0x80 | lens[i] >> 24),
				(unsigned char)(lens[i] >> 16),
				(unsigned char)(lens[i] >> 8),
				(unsigned char)lens[i]};
			buf_add(b, l, 4);
		}
	}
	buf_adds(b, k);
	buf_adds(b, v);
}

/* A recorded request: BEGIN, params over two records (one split inside
 * a pair), the empty PARAMS, an empty STDIN; padding on some. */
static void request(struct buf *b, const char *long_value)
{
	static const unsigned char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};
	struct buf p = BUF_INIT;
	size_t half;

	nv(&p, "REQUEST_METHOD", "GET");
	nv(&p, "REQUEST_URI", "/api/v1/sessions/ses_x/sse?types=a");
	nv(&p, "HTTP_LAST_EVENT_ID", long_value);
	nv(&p, "EMPTY", "");
	half = p.len / 2;
	rec(b, FCGI_BEGIN_REQUEST, 1, begin, 8, 0);
	rec(b, FCGI_PARAMS, 1, p.data, half, 3);
	rec(b, FCGI_PARAMS, 1, p.data + half, p.len - half, 0);
	rec(b, FCGI_PARAMS, 1, "", 0, 0);
	rec(b, FCGI_STDIN, 1, "", 0, 0);
	buf_release(&p);
}

static void check_ready(struct fcgi_parser *fp, const char *long_value)
{
	ck_assert_int_eq(fp->state, FCGI_READY);
	ck_assert_uint_eq(fp->request_id, 1);
	ck_assert_str_eq(fcgi_param(fp, "REQUEST_METHOD"), "GET");
	ck_assert_str_eq(fcgi_param(fp, "REQUEST_URI"),
			 "/api/v1/sessions/ses_x/sse?types=a");
	ck_assert_str_eq(fcgi_param(fp, "HTTP_LAST_EVENT_ID"), long_value);
	ck_assert_str_eq(fcgi_param(fp, "EMPTY"), "");
	ck_assert_ptr_null(fcgi_param(fp, "NOPE"));
	ck_assert_int_eq(fp->stdin_done, 1);
	ck_assert_int_eq(fp->aborted, 0);
}

START_TEST(every_split_point)
{
	struct buf b = BUF_INIT;
	char longv[300];
	size_t i, j;

	memset(longv, 'v', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	request(&b, longv);
	for (i = 0; i <= b.len; i++) {
		for (j = i; j <= b.len; j += (i % 7) + 1) {
			struct fcgi_parser fp;
			fcgi_parser_init(&fp);
			ck_assert_int_eq(fcgi_feed(&fp, b.data, i), 0);
			ck_assert_int_eq(fcgi_feed(&fp, b.data + i, j - i), 0);
			ck_assert_int_eq(fcgi_feed(&fp, b.data + j, b.len - j),
					 0);
			check_ready(&fp, longv);
			fcgi_parser_release(&fp);
		}
	}
	buf_release(&b);
}
END_TEST

START_TEST(byte_by_byte_and_abort)
{
	struct buf b = BUF_INIT;
	struct fcgi_parser fp;
	size_t i;

	request(&b, "evt_1");
	rec(&b, FCGI_ABORT_REQUEST, 1, "", 0, 0);
	fcgi_parser_init(&fp);
	for (i = 0; i < b.len; i++)
		ck_assert_int_eq(fcgi_feed(&fp, b.data + i, 1), 0);
	ck_assert_int_eq(fp.aborted, 1);
	ck_assert_str_eq(fcgi_param(&fp, "HTTP_LAST_EVENT_ID"), "evt_1");
	fcgi_parser_release(&fp);
	buf_release(&b);
}
END_TEST

static int feed_all(const struct buf *b)
{
	struct fcgi_parser fp;
	int r;
	fcgi_parser_init(&fp);
	r = fcgi_feed(&fp, b->data, b->len);
	if (r == 0 && fp.state == FCGI_ERROR)
		r = -2;
	fcgi_parser_release(&fp);
	return r;
}

START_TEST(malformed_input)
{
	static const unsigned char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};
	static const unsigned char authorizer[8] = {0, 2, 0, 0, 0, 0, 0, 0};
	struct buf b = BUF_INIT, p = BUF_INIT;
	size_t i;

	/* wrong version */
	buf_add(&b, "\x02\x01\x00\x01\x00\x08\x00\x00", 8);
	ck_assert_int_eq(feed_all(&b), -1);
	/* PARAMS before BEGIN_REQUEST */
	buf_reset(&b);
	rec(&b, FCGI_PARAMS, 1,
	    "\x01\x01"
	    "ab",
	    4, 0);
	ck_assert_int_eq(feed_all(&b), -1);
	/* a role other than responder */
	buf_reset(&b);
	rec(&b, FCGI_BEGIN_REQUEST, 1, authorizer, 8, 0);
	ck_assert_int_eq(feed_all(&b), -1);
	/* two requests on one connection */
	buf_reset(&b);
	rec(&b, FCGI_BEGIN_REQUEST, 1, begin, 8, 0);
	rec(&b, FCGI_BEGIN_REQUEST, 2, begin, 8, 0);
	ck_assert_int_eq(feed_all(&b), -1);
	/* a pair longer than the parameter stream */
	buf_reset(&b);
	rec(&b, FCGI_BEGIN_REQUEST, 1, begin, 8, 0);
	rec(&b, FCGI_PARAMS, 1,
	    "\x05\x7f"
	    "abcde",
	    7, 0);
	rec(&b, FCGI_PARAMS, 1, "", 0, 0);
	ck_assert_int_eq(feed_all(&b), -1);
	/* a truncated 4-byte length */
	buf_reset(&b);
	rec(&b, FCGI_BEGIN_REQUEST, 1, begin, 8, 0);
	rec(&b, FCGI_PARAMS, 1, "\x80\x00", 2, 0);
	rec(&b, FCGI_PARAMS, 1, "", 0, 0);
	ck_assert_int_eq(feed_all(&b), -1);
	/* NUL inside a name */
	buf_reset(&b);
	rec(&b, FCGI_BEGIN_REQUEST, 1, begin, 8, 0);
	rec(&b, FCGI_PARAMS, 1,
	    "\x02\x01"
	    "a\0b",
	    5, 0);
	rec(&b, FCGI_PARAMS, 1, "", 0, 0);
	ck_assert_int_eq(feed_all(&b), -1);
	/* more than 64 KiB of parameters */
	buf_reset(&b);
	rec(&b, FCGI_BEGIN_REQUEST, 1, begin, 8, 0);
	for (i = 0; i < 300; i++)
		buf_addch(&p, 'x');
	for (i = 0; i < 300; i++)
		rec(&b, FCGI_PARAMS, 1, p.data, p.len, 0);
	ck_assert_int_eq(feed_all(&b), -1);
	/* management records (id 0) are ignored */
	buf_reset(&b);
	rec(&b, 9, 0, "\x00\x00", 2, 6);
	request(&b, "x");
	ck_assert_int_eq(feed_all(&b), 0);
	buf_release(&p);
	buf_release(&b);
}
END_TEST

START_TEST(writer_records)
{
	struct buf out = BUF_INIT;
	char *big = malloc(70000);
	size_t off = 0, got = 0;
	int nrec = 0, end = 0;

	memset(big, 'z', 70000);
	fcgi_put_stdout(&out, 7, big, 70000);
	fcgi_put_end(&out, 7, 0);
	while (off < out.len) {
		const unsigned char *h = (const unsigned char *)out.data + off;
		size_t clen = (size_t)(h[4] << 8 | h[5]), plen = h[6];
		ck_assert_int_eq(h[0], 1);
		ck_assert_int_eq(h[2] << 8 | h[3], 7);
		ck_assert_uint_eq((clen + plen) % 8, 0);
		if (h[1] == FCGI_STDOUT)
			got += clen;
		else if (h[1] == FCGI_END_REQUEST)
			end = 1;
		off += 8 + clen + plen;
		nrec++;
	}
	ck_assert_uint_eq(off, out.len);
	ck_assert_uint_eq(got, 70000);
	ck_assert_int_eq(nrec, 4); /* 65535 + rest, empty STDOUT, END */
	ck_assert_int_eq(end, 1);
	free(big);
	buf_release(&out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sse");
	TCase *tc = tcase_create("fcgi_proto");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, every_split_point);
	tcase_add_test(tc, byte_by_byte_and_abort);
	tcase_add_test(tc, malformed_input);
	tcase_add_test(tc, writer_records);
	suite_add_tcase(s, tc);
	return check_run(s);
}
