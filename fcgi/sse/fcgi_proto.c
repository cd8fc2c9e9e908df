#include "fcgi_proto.h"

#include <string.h>

#define FCGI_VERSION 1
#define FCGI_RESPONDER 1

void fcgi_parser_init(struct fcgi_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->state = FCGI_BEGIN;
	buf_init(&p->params, 0);
	buf_init(&p->kv, 0);
}

void fcgi_parser_release(struct fcgi_parser *p)
{
	buf_release(&p->params);
	buf_release(&p->kv);
}

static int fail(struct fcgi_parser *p, const char *why)
{
	p->state = FCGI_ERROR;
	p->error = why;
	return -1;
}

/* A name or value length: 1 byte below 128, else 4 bytes with the top
 * bit set. Returns bytes used, 0 if truncated. */
static size_t nv_len(const unsigned char *s, size_t n, size_t *out)
{
	if (n < 1)
		return 0;
	if (!(s[0] & 0x80)) {
		*out = s[0];
		return 1;
	}
	if (n < 4)
		return 0;
	*out = ((size_t)(s[0] & 0x7f) << 24) | ((size_t)s[1] << 16) |
	       ((size_t)s[2] << 8) | s[3];
	return 4;
}

/* Turn the raw PARAMS stream into "name\0value\0" pairs. */
static int decode_params(struct fcgi_parser *p)
{
	const unsigned char *s = (const unsigned char *)p->params.data;
	size_t n = p->params.len, i = 0;

	while (i < n) {
		size_t nl, vl, u;
		if (!(u = nv_len(s + i, n - i, &nl)))
			return fail(p, "truncated parameter length");
		i += u;
		if (!(u = nv_len(s + i, n - i, &vl)))
			return fail(p, "truncated parameter length");
		i += u;
		if (nl > n - i || vl > n - i - nl)
			return fail(p, "parameter longer than its record");
		if (memchr(s + i, 0, nl + vl))
			return fail(p, "NUL in a parameter");
		buf_add(&p->kv, s + i, nl);
		buf_addch(&p->kv, '\0');
		buf_add(&p->kv, s + i + nl, vl);
		buf_addch(&p->kv, '\0');
		i += nl + vl;
	}
	buf_release(&p->params);
	buf_init(&p->params, 0);
	p->state = FCGI_READY;
	return 0;
}

/* The record's content is complete (content in p->body or p->params). */
static int record_done(struct fcgi_parser *p)
{
	if (p->id == 0)
		return 0; /* management record: nothing we answer */
	switch (p->type) {
	case FCGI_BEGIN_REQUEST:
		if (p->state != FCGI_BEGIN)
			return fail(p, "second BEGIN_REQUEST on a connection");
		if (p->clen != 8)
			return fail(p, "BEGIN_REQUEST of the wrong size");
		if ((p->body[0] << 8 | p->body[1]) != FCGI_RESPONDER)
			return fail(p, "role other than responder");
		p->request_id = p->id;
		p->state = FCGI_PARAMS_IN;
		return 0;
	case FCGI_PARAMS:
		if (p->state != FCGI_PARAMS_IN || p->id != p->request_id)
			return fail(p, "PARAMS outside a request");
		return p->clen ? 0 : decode_params(p);
	case FCGI_STDIN:
		if (p->state != FCGI_READY || p->id != p->request_id)
			return fail(p, "STDIN before the parameters");
		if (p->clen == 0)
			p->stdin_done = 1;
		return 0;
	case FCGI_ABORT_REQUEST:
		if (p->id != p->request_id || p->state == FCGI_BEGIN)
			return fail(p, "ABORT_REQUEST for another request");
		p->aborted = 1;
		return 0;
	default:
		return fail(p, "unexpected record type");
	}
}

int fcgi_feed(struct fcgi_parser *p, const void *data, size_t len)
{
	const unsigned char *s = data;

	if (p->state == FCGI_ERROR)
		return -1;
	while (len) {
		size_t take;
		if (!p->in_record) {
			take = FCGI_HEADER_LEN - p->hlen;
			if (take > len)
				take = len;
			memcpy(p->hdr + p->hlen, s, take);
			p->hlen += take;
			s += take;
			len -= take;
			if (p->hlen < FCGI_HEADER_LEN)
				break;
			if (p->hdr[0] != FCGI_VERSION)
				return fail(p, "not FastCGI version 1");
			p->type = p->hdr[1];
			p->id = (unsigned)(p->hdr[2] << 8 | p->hdr[3]);
			p->clen = (size_t)(p->hdr[4] << 8 | p->hdr[5]);
			p->plen = p->hdr[6];
			p->got = 0;
			p->hlen = 0;
			p->in_record = 1;
			if (p->id && p->type == FCGI_BEGIN_REQUEST &&
			    p->clen > 8)
				return fail(p,
					    "BEGIN_REQUEST of the wrong size");
			if (p->id && p->type == FCGI_PARAMS &&
			    p->params.len + p->clen > FCGI_MAX_PARAMS)
				return fail(p, "parameters too large");
		}
		/* content, then padding */
		take = p->clen + p->plen - p->got;
		if (take > len)
			take = len;
		if (p->got < p->clen) {
			size_t c = p->clen - p->got;
			if (c > take)
				c = take;
			if (p->id && p->type == FCGI_BEGIN_REQUEST)
				memcpy(p->body + p->got, s, c);
			else if (p->id && p->type == FCGI_PARAMS &&
				 p->state == FCGI_PARAMS_IN)
				buf_add(&p->params, s, c);
			else if (p->id && p->type == FCGI_STDIN)
				p->stdin_len += c;
		}
		p->got += take;
		s += take;
		len -= take;
		if (p->got == p->clen + p->plen) {
			p->in_record = 0;
			if (record_done(p) != 0)
				return -1;
		}
	}
	return 0;
}

const char *fcgi_param(const struct fcgi_parser *p, const char *name)
{
	const char *s = p->kv.data, *end = p->kv.data + p->kv.len;

	if (p->state != FCGI_READY)
		return NULL;
	while (s < end) {
		const char *v = s + strlen(s) + 1;
		if (!strcmp(s, name))
			return v;
		s = v + strlen(v) + 1;
	}
	return NULL;
}

static void put_header(struct buf *out, int type, unsigned id, size_t clen,
		       size_t plen)
{
	unsigned char h[FCGI_HEADER_LEN] = {FCGI_VERSION,
					    (unsigned char)type,
					    (unsigned char)(id >> 8),
					    (unsigned char)id,
					    (unsigned char)(clen >> 8),
					    (unsigned char)clen,
					    (unsigned char)plen,
					    0};
	buf_add(out, h, sizeof(h));
}

void fcgi_put_stdout(struct buf *out, unsigned id, const void *data, size_t len)
{
	static const char zeros[8];
	const char *s = data;

	while (len) {
		size_t n = len > FCGI_MAX_CONTENT ? FCGI_MAX_CONTENT : len;
		size_t pad = (8 - n % 8) % 8;
		put_header(out, FCGI_STDOUT, id, n, pad);
		buf_add(out, s, n);
		buf_add(out, zeros, pad);
		s += n;
		len -= n;
	}
}

void fcgi_put_end(struct buf *out, unsigned id, int app_status)
{
	unsigned char b[8] = {(unsigned char)((unsigned)app_status >> 24),
			      (unsigned char)((unsigned)app_status >> 16),
			      (unsigned char)((unsigned)app_status >> 8),
			      (unsigned char)app_status,
			      0,
			      0,
			      0,
			      0};
	put_header(out, FCGI_STDOUT, id, 0, 0);
	put_header(out, FCGI_END_REQUEST, id, 8, 0);
	buf_add(out, b, sizeof(b));
}
