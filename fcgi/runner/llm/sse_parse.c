#include "sse_parse.h"

#include <string.h>

void sse_parser_init(struct sse_parser *p, sse_event_fn fn, void *ctx)
{
	buf_init(&p->line, 0);
	buf_init(&p->event, 0);
	buf_init(&p->data, 0);
	p->has_data = 0;
	p->last_cr = 0;
	p->fn = fn;
	p->ctx = ctx;
}

void sse_parser_release(struct sse_parser *p)
{
	buf_release(&p->line);
	buf_release(&p->event);
	buf_release(&p->data);
	p->has_data = 0;
	p->last_cr = 0;
}

/* A blank line ends an event. Per WHATWG an event with no data line is
 * not dispatched, but "data:" with an empty value is (as ""). */
static int dispatch(struct sse_parser *p)
{
	int rc = 0;
	if (p->has_data)
		rc = p->fn(p->ctx, p->event.data, p->data.data, p->data.len);
	buf_reset(&p->event);
	buf_reset(&p->data);
	p->has_data = 0;
	return rc ? -1 : 0;
}

static int process_line(struct sse_parser *p, const char *s, size_t n)
{
	const char *colon, *val;
	size_t flen, vlen;

	if (n == 0)
		return dispatch(p);
	if (s[0] == ':')
		return 0; /* comment, used as keep-alive */
	colon = memchr(s, ':', n);
	flen = colon ? (size_t)(colon - s) : n;
	val = colon ? colon + 1 : s + n;
	vlen = (size_t)(s + n - val);
	if (vlen && *val == ' ') {
		val++;
		vlen--;
	}
	if (flen == 4 && !memcmp(s, "data", 4)) {
		/* the joined data of one event is bounded like a line, so a
		 * stream of data lines without a blank one cannot grow
		 * memory without limit */
		if (p->data.len + vlen + 1 > SSE_MAX_LINE)
			return -1;
		if (p->has_data)
			buf_addch(&p->data, '\n');
		buf_add(&p->data, val, vlen);
		p->has_data = 1;
	} else if (flen == 5 && !memcmp(s, "event", 5)) {
		buf_reset(&p->event);
		buf_add(&p->event, val, vlen);
	}
	/* id, retry and unknown fields: ignored (no reconnection here) */
	return 0;
}

/* End of one line whose tail is s[0..n): complete it from the pending
 * partial line if there is one, to avoid copying in the common case. */
static int end_line(struct sse_parser *p, const char *s, size_t n)
{
	int rc;
	if (!p->line.len)
		return process_line(p, s, n);
	if (p->line.len + n > SSE_MAX_LINE)
		return -1;
	buf_add(&p->line, s, n);
	rc = process_line(p, p->line.data, p->line.len);
	buf_reset(&p->line);
	return rc;
}

int sse_parser_feed(struct sse_parser *p, const char *data, size_t n)
{
	const char *s = data, *end = data + n;

	while (s < end) {
		const char *e = s;
		if (p->last_cr) {
			/* the LF of a CRLF split across two feeds */
			p->last_cr = 0;
			if (*s == '\n') {
				s++;
				continue;
			}
		}
		while (e < end && *e != '\n' && *e != '\r')
			e++;
		if (e == end) {
			if (p->line.len + (size_t)(end - s) > SSE_MAX_LINE)
				return -1;
			buf_add(&p->line, s, (size_t)(end - s));
			break;
		}
		if (end_line(p, s, (size_t)(e - s)))
			return -1;
		if (*e == '\r') {
			if (e + 1 < end && e[1] == '\n')
				e++;
			else if (e + 1 == end)
				p->last_cr = 1;
		}
		s = e + 1;
	}
	return 0;
}

int sse_parser_end(struct sse_parser *p)
{
	/* a last line without its terminator still counts: some servers
	 * end with "data: [DONE]" and no newline */
	if (p->line.len) {
		int rc = process_line(p, p->line.data, p->line.len);
		buf_reset(&p->line);
		if (rc)
			return -1;
	}
	p->last_cr = 0;
	return dispatch(p);
}
