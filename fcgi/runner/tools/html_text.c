/*
 * html_text: an HTML document reduced to the text a reader sees, for
 * fetch_url. Not a parser: a single pass that drops comments, the content
 * of script/style/noscript/template/svg/head-only elements, and every tag;
 * turns block-level tags into line breaks; decodes the common named
 * entities and all numeric ones; collapses blanks within a line and runs
 * of blank lines to one. Malformed input never fails: an unterminated tag
 * or comment ends the text. Output is valid UTF-8 (invalid input bytes
 * become U+FFFD), without NUL or control characters other than '\n'.
 */
#include "tools_internal.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct out {
	struct buf *b;
	int space;    /* a blank is pending */
	int newlines; /* line breaks pending (at most 2 are written) */
	int any;      /* text was written */
};

static void put_utf8(struct buf *b, uint32_t cp)
{
	char s[4];
	if (cp < 0x80) {
		buf_addch(b, (char)cp);
	} else if (cp < 0x800) {
		s[0] = (char)(0xc0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3f));
		buf_add(b, s, 2);
	} else if (cp < 0x10000) {
		s[0] = (char)(0xe0 | (cp >> 12));
		s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[2] = (char)(0x80 | (cp & 0x3f));
		buf_add(b, s, 3);
	} else {
		s[0] = (char)(0xf0 | (cp >> 18));
		s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		s[3] = (char)(0x80 | (cp & 0x3f));
		buf_add(b, s, 4);
	}
}

/* Write pending separators, then code point cp (a visible character). */
static void emit(struct out *o, uint32_t cp)
{
	if (o->any) {
		if (o->newlines)
			buf_add(o->b, "\n\n", o->newlines > 1 ? 2 : 1);
		else if (o->space)
			buf_addch(o->b, ' ');
	}
	o->space = o->newlines = 0;
	o->any = 1;
	put_utf8(o->b, cp);
}

static void blank(struct out *o, int newline)
{
	if (newline)
		o->newlines++;
	else
		o->space = 1;
}

/* Decode one UTF-8 sequence at s (n bytes left); *cp gets U+FFFD for an
 * invalid one. Returns the bytes consumed (>= 1). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len, i;
	uint32_t c = s[0];

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, c &= 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, c &= 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, c &= 0x07;
	else
		goto bad;
	if (n < len)
		goto bad;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			goto bad;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (len == 4 && (c < 0x10000 || c > 0x10ffff)))
		goto bad;
	*cp = c;
	return len;
bad:
	*cp = 0xfffd;
	return 1;
}

static const struct {
	const char *name;
	uint32_t cp;
} entities[] = {
	{"amp", '&'},      {"lt", '<'},       {"gt", '>'},
	{"quot", '"'},     {"apos", '\''},    {"nbsp", 0xa0},
	{"copy", 0xa9},    {"reg", 0xae},     {"trade", 0x2122},
	{"mdash", 0x2014}, {"ndash", 0x2013}, {"hellip", 0x2026},
	{"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201c},
	{"rdquo", 0x201d}, {"laquo", 0xab},   {"raquo", 0xbb},
	{"middot", 0xb7},  {"bull", 0x2022},  {"euro", 0x20ac},
	{"pound", 0xa3},   {"yen", 0xa5},     {"cent", 0xa2},
	{"deg", 0xb0},     {"times", 0xd7},   {"divide", 0xf7},
	{"sect", 0xa7},    {"para", 0xb6},
};

/* An entity at s ('&' ...). Returns bytes consumed and the code point in
 * *cp, or 0 when it is not one (the '&' is then literal text). */
static size_t entity(const char *s, size_t n, uint32_t *cp)
{
	size_t i = 1, j;
	if (n > 2 && s[1] == '#') {
		uint32_t v = 0;
		int hex = s[2] == 'x' || s[2] == 'X', digits = 0;
		for (i = hex ? 3 : 2; i < n && i < 12; i++) {
			int d;
			if (isdigit((unsigned char)s[i]))
				d = s[i] - '0';
			else if (hex && isxdigit((unsigned char)s[i]))
				d = tolower((unsigned char)s[i]) - 'a' + 10;
			else
				break;
			v = v * (hex ? 16 : 10) + (uint32_t)d;
			digits++;
		}
		if (!digits || i >= n || s[i] != ';')
			return 0;
		if (!v || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			v = 0xfffd;
		*cp = v;
		return i + 1;
	}
	while (i < n && i < 10 && isalnum((unsigned char)s[i]))
		i++;
	if (i >= n || s[i] != ';')
		return 0;
	for (j = 0; j < sizeof(entities) / sizeof(entities[0]); j++)
		if (strlen(entities[j].name) == i - 1 &&
		    !memcmp(entities[j].name, s + 1, i - 1)) {
			*cp = entities[j].cp;
			return i + 1;
		}
	return 0;
}

static const char *const skipped[] = {
	"script", "style", "noscript", "template", "svg", "iframe", "object"};
static const char *const blocks[] = {
	"p",          "div",        "br",     "li",    "ul",    "ol",
	"dl",         "dt",         "dd",     "h1",    "h2",    "h3",
	"h4",         "h5",         "h6",     "tr",    "table", "section",
	"article",    "header",     "footer", "nav",   "aside", "main",
	"pre",        "blockquote", "hr",     "title", "form",  "figure",
	"figcaption", "address",    "body",   "html"};

static int name_in(const char *name, size_t len, const char *const *list,
		   size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (strlen(list[i]) == len && !strncasecmp(list[i], name, len))
			return 1;
	return 0;
}

/* Find the closing tag </name ...> from s; returns the offset just past
 * it, or n when there is none. */
static size_t skip_element(const char *s, size_t n, const char *name,
			   size_t len)
{
	size_t i;
	for (i = 0; i + 2 + len <= n; i++) {
		if (s[i] == '<' && s[i + 1] == '/' &&
		    !strncasecmp(s + i + 2, name, len) &&
		    (i + 2 + len == n ||
		     !isalnum((unsigned char)s[i + 2 + len]))) {
			const char *gt = memchr(s + i, '>', n - i);
			return gt ? (size_t)(gt - s) + 1 : n;
		}
	}
	return n;
}

void html_to_text(const char *html, size_t n, struct buf *b)
{
	struct out o = {b, 0, 0, 0};
	size_t i = 0;

	while (i < n) {
		unsigned char c = (unsigned char)html[i];
		if (c == '<') {
			const char *gt, *name;
			size_t len = 0, after;
			int closing;
			if (n - i >= 4 && !memcmp(html + i, "<!--", 4)) {
				const char *end = NULL;
				size_t k;
				for (k = i + 4; k + 3 <= n; k++)
					if (!memcmp(html + k, "-->", 3)) {
						end = html + k;
						break;
					}
				if (!end)
					break;
				i = (size_t)(end - html) + 3;
				continue;
			}
			gt = memchr(html + i, '>', n - i);
			if (!gt)
				break;
			after = (size_t)(gt - html) + 1;
			closing = i + 1 < n && html[i + 1] == '/';
			name = html + i + 1 + closing;
			while (name + len < gt &&
			       (isalnum((unsigned char)name[len])))
				len++;
			if (!len && !closing && name[0] != '!' &&
			    name[0] != '?') {
				/* "a < b": not a tag */
				emit(&o, '<');
				i++;
				continue;
			}
			if (!closing &&
			    name_in(name, len, skipped,
				    sizeof(skipped) / sizeof(skipped[0])) &&
			    gt[-1] != '/') {
				char nm[16];
				size_t k = len < sizeof(nm) - 1
						   ? len
						   : sizeof(nm) - 1;
				memcpy(nm, name, k);
				nm[k] = '\0';
				after += skip_element(html + after, n - after,
						      nm, k);
			}
			if (name_in(name, len, blocks,
				    sizeof(blocks) / sizeof(blocks[0])))
				blank(&o, 1);
			else if (len == 2 && (!strncasecmp(name, "td", 2) ||
					      !strncasecmp(name, "th", 2)))
				blank(&o, 0);
			i = after;
		} else if (c == '&') {
			uint32_t cp;
			size_t k = entity(html + i, n - i, &cp);
			if (k) {
				if (cp == 0xa0)
					blank(&o, 0);
				else
					emit(&o, cp);
				i += k;
			} else {
				emit(&o, '&');
				i++;
			}
		} else if (c == '\n' || c == ' ' || c == '\t' || c == '\r' ||
			   c == '\f') {
			blank(&o, 0);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			i++;
		} else {
			uint32_t cp;
			i += utf8_next((const unsigned char *)html + i, n - i,
				       &cp);
			emit(&o, cp);
		}
	}
}

void text_clean(const char *s, size_t n, struct buf *b)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		uint32_t cp;
		if (c < 0x20 || c == 0x7f) {
			if (c == '\n' || c == '\t')
				buf_addch(b, (char)c);
			i++;
			continue;
		}
		i += utf8_next((const unsigned char *)s + i, n - i, &cp);
		put_utf8(b, cp);
	}
}
