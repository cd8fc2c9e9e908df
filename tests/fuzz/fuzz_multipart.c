/*
 * libFuzzer target: the multipart/form-data parser of POST /images
 * (multipart_boundary + multipart_parse). The input's first line is the
 * Content-Type, the rest the body. Checks: an error is a 400 or 415;
 * parts lie inside the body, in order, and none contains the delimiter.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *nl = memchr(in, '\n', size);
	char ct[512], boundary[71], delim[80];
	struct mp_part parts[MP_MAX_PARTS];
	struct apierr e;
	const char *body, *prev_end;
	size_t blen, ctlen;
	int n, i;

	if (!nl || (size_t)(nl - in) >= sizeof(ct))
		return 0;
	ctlen = (size_t)(nl - in);
	memcpy(ct, in, ctlen);
	ct[ctlen] = '\0';
	if (strlen(ct) != ctlen)
		return 0; /* CGI params cannot hold a NUL */
	body = nl + 1;
	blen = size - ctlen - 1;
	if (multipart_boundary(ct, boundary, &e)) {
		if (e.status != 400 && e.status != 415)
			abort();
		return 0;
	}
	if (!boundary[0] || strlen(boundary) > 70)
		abort();
	n = multipart_parse(boundary, body, blen, parts, MP_MAX_PARTS, &e);
	if (n < 0) {
		if (e.status != 400)
			abort();
		return 0;
	}
	if (n > MP_MAX_PARTS)
		abort();
	snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	prev_end = body;
	for (i = 0; i < n; i++) {
		const struct mp_part *p = &parts[i];
		if (p->data < prev_end || p->data + p->len > body + blen)
			abort();
		if (memmem(p->data, p->len, delim, strlen(delim)))
			abort();
		if (strlen(p->name) >= sizeof(p->name) ||
		    strlen(p->filename) >= sizeof(p->filename))
			abort();
		prev_end = p->data + p->len;
	}
	return 0;
}
