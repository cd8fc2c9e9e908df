#include "utf8.h"

/* Length of the valid UTF-8 sequence at p[0..len) (1 to 4), or 0 when
 * p[0] does not start one (overlong forms, surrogates, > U+10FFFF). */
static size_t seq_len(const unsigned char *p, size_t len)
{
	unsigned c = p[0], n, k, cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 1, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 2, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 3, cp = c & 0x07;
	else
		return 0;
	if (len <= n)
		return 0;
	for (k = 1; k <= n; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	/* overlong forms, UTF-16 surrogates, beyond U+10FFFF */
	if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n + 1;
}

int utf8_valid(const char *s, size_t len, int no_controls)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		unsigned c = p[i];
		if (c < 0x80) {
			if (c == 0 || (no_controls && (c < 0x20 || c == 0x7f)))
				return 0;
			i++;
			continue;
		}
		if (!(n = seq_len(p + i, len - i)))
			return 0;
		i += n;
	}
	return 1;
}

size_t utf8_cut(const char *s, size_t len, size_t max)
{
	size_t n;

	if (len <= max)
		return len;
	n = max;
	while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

size_t utf8_clean(struct buf *b, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, start = 0, n, fixed = 0;

	buf_grow(b, len);
	while (i < len) {
		n = p[i] ? seq_len(p + i, len - i) : 0;
		if (n) {
			i += n;
			continue;
		}
		buf_add(b, s + start, i - start);
		buf_add(b, "\xef\xbf\xbd", 3);
		fixed++;
		start = ++i;
	}
	buf_add(b, s + start, len - start);
	return fixed;
}
