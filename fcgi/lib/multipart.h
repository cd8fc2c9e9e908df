/*
 * multipart: a multipart/form-data body (RFC 7578) split into its parts,
 * for POST /images. The whole body is in memory (the route's body limit
 * bounds it); parts point into it, nothing is copied but the short header
 * values.
 *
 * Strict where sloppiness would hide a broken upload, lenient where
 * clients differ: the boundary comes from the Content-Type (quoted or
 * not, 1..70 characters); a preamble before the first delimiter and an
 * epilogue after the closing one are ignored; part headers end with a
 * blank line (CRLF; bare LF accepted), each part's header block is at most
 * MP_MAX_HEADER bytes, at most MP_MAX_PARTS parts; header names are
 * case-insensitive. A body without its closing delimiter is truncated
 * (an error), as is a part whose data has no delimiter after it.
 */
#ifndef EVR_MULTIPART_H
#define EVR_MULTIPART_H

#include <stddef.h>

#include "apierr.h"

#define MP_MAX_PARTS 16
#define MP_MAX_HEADER 8192

struct mp_part {
	char name[128];     /* form field name ("" if none) */
	char filename[256]; /* "" if none; path components not removed */
	int has_filename;
	char content_type[128]; /* "" if none */
	const char *data;       /* into the body */
	size_t len;
};

/* The boundary parameter of a multipart/form-data Content-Type into out
 * (room for 71). 0, or -1 when ct is not multipart/form-data (415) or
 * has no usable boundary (400), with e set. */
int multipart_boundary(const char *ct, char out[71], struct apierr *e);

/* Split body into parts[0..max). Returns the number of parts, or -1 with
 * a 400 in e. */
int multipart_parse(const char *boundary, const char *body, size_t len,
		    struct mp_part *parts, size_t max, struct apierr *e);

#endif
