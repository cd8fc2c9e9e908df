/*
 * multipart: see multipart.h. Only the headers a form upload carries are
 * read (Content-Disposition's name and filename, Content-Type); others are
 * skipped.
 */
#define _GNU_SOURCE /* memmem */
#include "multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int bchar_ok(char c)
{
	/* RFC 2046 bcharsnospace plus space */
	return isalnum((unsigned char)c) || strchr("'()+_,-./:=? ", c);
}

int multipart_boundary(const char *ct, char out[71], struct apierr *e)
{
	const char *p;
	size_t n = 0;

	if (!ct || strncasecmp(ct, "multipart/form-data", 19) ||
	    (ct[19] && ct[19] != ';' && ct[19] != ' '))
		return apierr_set(e, 415, "unsupported_media_type",
				  "Content-Type must be multipart/form-data");
	for (p = ct + 19; (p = strchr(p, ';'));) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9))
			continue;
		p += 9;
		if (*p == '"') {
			for (p++; p[n] && p[n] != '"'; n++)
				if (n >= 70 || !bchar_ok(p[n]))
					goto bad;
			if (p[n] != '"')
				goto bad;
		} else {
			for (;
			     p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t';
			     n++)
				if (n >= 70 || !bchar_ok(p[n]))
					goto bad;
		}
		if (!n || p[n - 1] == ' ')
			goto bad;
		memcpy(out, p, n);
		out[n] = '\0';
		return 0;
	}
bad:
	return apierr_set(e, 400, "invalid_multipart",
			  "Content-Type: a multipart/form-data boundary of 1 "
			  "to 70 characters is required");
}

/* A backslash escapes only '"' and '\\' in a quoted value: browsers send
 * Windows paths unescaped ("C:\\Users\\me\\a.png"). */
static int is_escape(const char *v, size_t vlen, size_t i)
{
	return v[i] == '\\' && i + 1 < vlen &&
	       (v[i + 1] == '"' || v[i + 1] == '\\');
}

/* The value of parameter `key` in a Content-Disposition value, into out.
 * 1 found, 0 absent, -1 malformed. */
static int disp_param(const char *v, size_t vlen, const char *key, char *out,
		      size_t outsz)
{
	size_t klen = strlen(key), i = 0;

	while (i < vlen) {
		size_t j;
		/* to the next ';' outside quotes */
		while (i < vlen && v[i] != ';') {
			if (v[i] == '"')
				while (++i < vlen && v[i] != '"')
					if (is_escape(v, vlen, i))
						i++;
			i++;
		}
		if (i >= vlen)
			return 0;
		i++;
		while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (vlen - i <= klen || strncasecmp(v + i, key, klen) ||
		    v[i + klen] != '=')
			continue;
		i += klen + 1;
		j = 0;
		if (i < vlen && v[i] == '"') {
			for (i++; i < vlen && v[i] != '"'; i++) {
				if (is_escape(v, vlen, i))
					i++;
				if (j + 1 >= outsz)
					return -1;
				out[j++] = v[i];
			}
			if (i >= vlen)
				return -1;
		} else {
			for (; i < vlen && v[i] != ';' && v[i] != ' '; i++) {
				if (j + 1 >= outsz)
					return -1;
				out[j++] = v[i];
			}
		}
		out[j] = '\0';
		return 1;
	}
	return 0;
}

/* Parse the header block h[0..n) of one part into p. 0 or -1 (e). */
static int part_headers(const char *h, size_t n, struct mp_part *p, size_t idx,
			struct apierr *e)
{
	size_t i = 0;

	while (i < n) {
		const char *line = h + i, *eol = memchr(line, '\n', n - i);
		size_t len = eol ? (size_t)(eol - line) : n - i, name_len, k;
		const char *colon, *v;
		size_t vlen;

		i += len + 1;
		if (len && line[len - 1] == '\r')
			len--;
		if (!len)
			continue;
		colon = memchr(line, ':', len);
		if (!colon)
			return apierr_set(e, 400, "invalid_multipart",
					  "part %zu: a header line without ':'",
					  idx);
		name_len = (size_t)(colon - line);
		v = colon + 1;
		vlen = len - name_len - 1;
		while (vlen && (*v == ' ' || *v == '\t'))
			v++, vlen--;
		for (k = 0; k < vlen; k++)
			if (v[k] == '\0')
				return apierr_set(e, 400, "invalid_multipart",
						  "part %zu: NUL in a header",
						  idx);
		if (name_len == 19 &&
		    !strncasecmp(line, "Content-Disposition", 19)) {
			int r;
			if (vlen < 9 || strncasecmp(v, "form-data", 9))
				return apierr_set(
					e, 400, "invalid_multipart",
					"part %zu: Content-Disposition must "
					"be form-data",
					idx);
			if (disp_param(v, vlen, "name", p->name,
				       sizeof(p->name)) < 0)
				return apierr_set(
					e, 400, "invalid_multipart",
					"part %zu: a malformed or too long "
					"name",
					idx);
			r = disp_param(v, vlen, "filename", p->filename,
				       sizeof(p->filename));
			if (r < 0)
				return apierr_set(
					e, 400, "invalid_multipart",
					"part %zu: a malformed filename or "
					"one longer than %zu bytes",
					idx, sizeof(p->filename) - 1);
			p->has_filename = r;
		} else if (name_len == 12 &&
			   !strncasecmp(line, "Content-Type", 12)) {
			if (vlen >= sizeof(p->content_type))
				return apierr_set(
					e, 400, "invalid_multipart",
					"part %zu: Content-Type too long", idx);
			memcpy(p->content_type, v, vlen);
			p->content_type[vlen] = '\0';
		}
	}
	return 0;
}

int multipart_parse(const char *boundary, const char *body, size_t len,
		    struct mp_part *parts, size_t max, struct apierr *e)
{
	char delim[76];
	size_t dlen, pos, np = 0;
	const char *d;

	dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	/* the first delimiter may open the body (no CRLF before it) */
	if (len >= dlen - 2 && !memcmp(body, delim + 2, dlen - 2)) {
		pos = dlen - 2;
	} else {
		d = memmem(body, len, delim, dlen);
		if (!d)
			return apierr_set(
				e, 400, "invalid_multipart",
				"the body has no part with the boundary "
				"of its Content-Type");
		pos = (size_t)(d - body) + dlen;
	}
	for (;;) {
		const char *hend, *hstart;
		size_t hlen, skip;
		struct mp_part *p;

		/* after a delimiter: "--" closes, else blanks and a line end */
		if (len - pos >= 2 && body[pos] == '-' && body[pos + 1] == '-')
			return (int)np;
		while (pos < len && (body[pos] == ' ' || body[pos] == '\t'))
			pos++;
		if (pos < len && body[pos] == '\r')
			pos++;
		if (pos >= len || body[pos] != '\n')
			return apierr_set(
				e, 400, "invalid_multipart",
				"truncated body or malformed delimiter "
				"line");
		pos++;
		if (np == max)
			return apierr_set(e, 400, "invalid_multipart",
					  "more than %zu parts", max);
		p = &parts[np];
		memset(p, 0, sizeof(*p));
		/* headers: up to a blank line (CRLF CRLF, or LF LF) */
		hstart = body + pos;
		if (pos < len &&
		    (body[pos] == '\n' || (body[pos] == '\r' && pos + 1 < len &&
					   body[pos + 1] == '\n'))) {
			hend = hstart; /* no headers at all */
			skip = body[pos] == '\n' ? 1 : 2;
		} else {
			size_t win = len - pos < MP_MAX_HEADER + 4
					     ? len - pos
					     : MP_MAX_HEADER + 4;
			const char *a = memmem(hstart, win, "\r\n\r\n", 4);
			const char *b = memmem(hstart, win, "\n\n", 2);
			if (a && (!b || a <= b)) {
				hend = a + 2;
				skip = 2;
			} else if (b) {
				hend = b + 1;
				skip = 1;
			} else {
				hend = NULL;
				skip = 0;
			}
			if (!hend && len - pos > MP_MAX_HEADER)
				hend = body +
				       len; /* judged as too large below */
			if (!hend)
				return apierr_set(
					e, 400, "invalid_multipart",
					"truncated body (part %zu has no "
					"end of headers)",
					np);
		}
		hlen = (size_t)(hend - hstart);
		if (hlen > MP_MAX_HEADER)
			return apierr_set(
				e, 400, "invalid_multipart",
				"part %zu: headers larger than %d bytes", np,
				MP_MAX_HEADER);
		if (part_headers(hstart, hlen, p, np, e))
			return -1;
		pos += hlen + skip;
		d = memmem(body + pos, len - pos, delim, dlen);
		if (!d)
			return apierr_set(
				e, 400, "invalid_multipart",
				"truncated body (part %zu has no closing "
				"boundary)",
				np);
		p->data = body + pos;
		p->len = (size_t)(d - (body + pos));
		pos = (size_t)(d - body) + dlen;
		np++;
	}
}
