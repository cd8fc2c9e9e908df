/*
 * libFuzzer target: the MCP client's reading of a response (fcgi/runner/
 * mcp.c). The first byte picks JSON or SSE and the id wanted, the next
 * two a split point; the outcome (the response found, or the error) must
 * be the same whether the rest is fed whole or in two pieces, and a
 * tools/call result made of the response must map without a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static char *run(int sse, long id, const char *s, size_t n, size_t split)
{
	struct mcp_reader rd;
	struct buf out = BUF_INIT, text = BUF_INIT, err = BUF_INIT;
	struct json_object *res;
	int rc;

	mcp_reader_init(&rd, id, sse ? "text/event-stream" : "application/json",
			64 * 1024);
	rc = mcp_reader_feed(&rd, s, split);
	if (rc == 0)
		rc = mcp_reader_feed(&rd, s + split, n - split);
	if (rc == 0)
		rc = mcp_reader_end(&rd) == 0 ? 1 : -1;
	buf_addf(&out, "rc %d %s|", rc, rc < 0 ? rd.error : "");
	if (rc == 1) {
		res = mcp_result(rd.response, &err);
		if (res)
			buf_addf(&out, "%d|",
				 mcp_call_result(res, &text, &err));
		buf_add(&out, text.data ? text.data : "", text.len);
		buf_add(&out, err.data ? err.data : "", err.len);
	}
	mcp_reader_release(&rd);
	buf_release(&text);
	buf_release(&err);
	return buf_detach(&out, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	const char *s = (const char *)d + 3;
	size_t split;
	char *whole, *two;
	int sse;
	long id;

	if (n < 3)
		return 0;
	sse = d[0] & 1;
	id = (d[0] >> 1) & 7;
	split = ((size_t)d[1] << 8 | d[2]) % (n - 2);
	n -= 3;
	whole = run(sse, id, s, n, 0);
	two = run(sse, id, s, n, split);
	/* past the cap both fail; below it the answers are the same */
	if (strcmp(whole, two))
		abort();
	free(whole);
	free(two);
	return 0;
}
