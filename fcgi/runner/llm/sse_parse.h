/*
 * sse_parse: an incremental parser of the text/event-stream format
 * (WHATWG HTML "Server-sent events") for the provider drivers. Bytes may
 * arrive split anywhere, including inside a CRLF or a UTF-8 sequence;
 * each complete event is delivered once with its `event` name ("" if
 * none) and its data lines joined by "\n". Comments and `id:`/`retry:`
 * fields are ignored. A line longer than SSE_MAX_LINE is an error.
 */
#ifndef EVR_SSE_PARSE_H
#define EVR_SSE_PARSE_H

#include <stddef.h>

#include "buf.h"

#define SSE_MAX_LINE (4 * 1024 * 1024)

typedef int (*sse_event_fn)(void *ctx, const char *event, const char *data,
			    size_t len);

struct sse_parser {
	struct buf line, event, data;
	int has_data;
	int last_cr;
	sse_event_fn fn;
	void *ctx;
};

void sse_parser_init(struct sse_parser *p, sse_event_fn fn, void *ctx);
void sse_parser_release(struct sse_parser *p);
/* 0, or -1 if fn returned nonzero or a line was too long. */
int sse_parser_feed(struct sse_parser *p, const char *data, size_t n);
/* End of input: dispatch a pending event if the stream ended without a
 * blank line. */
int sse_parser_end(struct sse_parser *p);

#endif
