/*
 * libFuzzer target: the SSE framing. The first two bytes pick a split
 * point; the events must be the same whether the rest is fed whole or
 * in two pieces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sse_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
	/* a data of "stop" ends the stream, to reach the error path */
	buf_addf(ctx, "[%s|", event);
	buf_add(ctx, data, len);
	buf_adds(ctx, "]");
	return len == 4 && !memcmp(data, "stop", 4);
}

static char *run(const char *s, size_t n, size_t split)
{
	struct buf log = BUF_INIT;
	struct sse_parser p;
	int rc;

	sse_parser_init(&p, on_event, &log);
	rc = sse_parser_feed(&p, s, split);
	if (!rc)
		rc = sse_parser_feed(&p, s + split, n - split);
	if (!rc)
		rc = sse_parser_end(&p);
	buf_addf(&log, "rc %d", rc);
	sse_parser_release(&p);
	return buf_detach(&log, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	const char *s = (const char *)d + 2;
	size_t split;
	char *whole, *two;

	if (n < 2)
		return 0;
	split = ((size_t)d[0] << 8 | d[1]) % (n - 1);
	n -= 2;
	whole = run(s, n, n);
	two = run(s, n, split);
	if (strcmp(whole, two))
		abort();
	free(whole);
	free(two);
	return 0;
}
