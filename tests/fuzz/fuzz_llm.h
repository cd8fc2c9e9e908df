/*
 * The body shared by the stream parser fuzz targets: the first two bytes
 * of the input pick a split point, the rest is a response stream fed to
 * the parser of kind FUZZ_KIND whole and then in two pieces. Beyond not
 * crashing, both runs must make the same sink calls with the same
 * results, which is the parser's promise of "any byte split". Tool call
 * ids are left out of the comparison: a missing one is generated.
 */
#ifndef EVR_FUZZ_LLM_H
#define EVR_FUZZ_LLM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void fz_text(void *ctx, const char *s, size_t n)
{
	buf_adds(ctx, "T");
	buf_add(ctx, s, n);
	buf_addch(ctx, '\n');
}

static void fz_thinking(void *ctx, const char *s, size_t n)
{
	buf_adds(ctx, "H");
	buf_add(ctx, s, n);
	buf_addch(ctx, '\n');
}

static void fz_tool(void *ctx, const char *id, const char *name,
		    const char *args)
{
	if (!*id || !args || !*args)
		abort(); /* the sink contract: an id, and "{}" if empty */
	buf_addf(ctx, "C%s|%s\n", name, args);
}

static void fz_usage(void *ctx, long in, long out)
{
	buf_addf(ctx, "U%ld,%ld\n", in, out);
}

static void fz_error(void *ctx, const char *code, const char *msg, int r)
{
	buf_addf(ctx, "E%s|%s|%d\n", code, msg, r);
}

static char *fz_run(const char *s, size_t n, size_t split)
{
	struct buf log = BUF_INIT;
	struct llm_sink sink = {&log,    fz_text,  fz_thinking,
				fz_tool, fz_usage, fz_error};
	struct llm_parser *p;
	int rc;

	buf_init(&log, 0);
	p = llm_parser_new(FUZZ_KIND, &sink);
	rc = llm_parser_feed(p, s, split);
	if (!rc)
		rc = llm_parser_feed(p, s + split, n - split);
	buf_addf(&log, "feed %d finish %d stop %s", rc, llm_parser_finish(p),
		 llm_parser_stop_reason(p) ? llm_parser_stop_reason(p) : "-");
	if (rc && !llm_parser_error(p))
		abort(); /* a failure always says why */
	llm_parser_free(p);
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
	whole = fz_run(s, n, n);
	two = fz_run(s, n, split);
	if (strcmp(whole, two))
		abort();
	free(whole);
	free(two);
	return 0;
}

#endif
