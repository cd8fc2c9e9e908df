/*
 * rx: bounded PCRE2 matching (see rx.h).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "rx.h"
#include "buf.h"
#include "config.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rx {
	size_t used, cap;    /* bytes PCRE2 holds through alloc(), its cap */
	int refused;         /* alloc() said no */
	unsigned long calls; /* callouts of the current match */
	double deadline;     /* of the current match */
	pcre2_general_context *gc;
	pcre2_compile_context *cc;
	pcre2_match_context *mc;
	pcre2_code *code;
	pcre2_match_data *md;
};

/* (config_int keeps each within its bounds of config_keys.c) */
unsigned long rx_match_limit(void)
{
	return (unsigned long)config_int("regex_match_limit");
}

unsigned long rx_depth_limit(void)
{
	return (unsigned long)config_int("regex_depth_limit");
}

unsigned long rx_memory_kb(void)
{
	return (unsigned long)config_int("regex_memory_kb");
}

unsigned long rx_time_ms(void)
{
	return (unsigned long)config_int("regex_time_ms");
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Called before every item of the pattern (PCRE2_AUTO_CALLOUT), so the
 * work between two calls is at most one item's (a back reference or a
 * character repeat over one line): the clock is read every 256th call. */
static int on_callout(pcre2_callout_block *b, void *arg)
{
	struct rx *r = arg;
	(void)b;
	if ((++r->calls & 255) == 0 && now_s() > r->deadline)
		return PCRE2_ERROR_CALLOUT;
	return 0;
}

/* The counting allocator: each block carries its size in front. */
#define HDR 16

static void *rx_alloc(size_t n, void *arg)
{
	struct rx *r = arg;
	unsigned char *p;

	if (n > r->cap - r->used || !(p = malloc(n + HDR))) {
		r->refused = 1;
		return NULL;
	}
	memcpy(p, &n, sizeof(n));
	r->used += n;
	return p + HDR;
}

static void rx_dealloc(void *block, void *arg)
{
	struct rx *r = arg;
	unsigned char *p = block;
	size_t n;

	if (!p)
		return;
	p -= HDR;
	memcpy(&n, p, sizeof(n));
	r->used -= n;
	free(p);
}

/* GNU's \< and \> (word start and end) in PCRE2's words; everything else
 * is copied as it is. */
static void translate(const char *s, struct buf *out)
{
	int in_class = 0;

	for (; *s; s++) {
		if (*s == '\\' && s[1]) {
			if (!in_class && s[1] == '<')
				buf_adds(out, "\\b(?=\\w)");
			else if (!in_class && s[1] == '>')
				buf_adds(out, "\\b(?<=\\w)");
			else
				buf_add(out, s, 2);
			s++;
			continue;
		}
		if (!in_class && *s == '[') {
			in_class = 1;
			buf_addch(out, *s);
			if (s[1] == '^')
				buf_addch(out, *++s);
			if (s[1] == ']') /* a leading ] is a member */
				buf_addch(out, *++s);
			continue;
		}
		if (in_class && *s == '[' && s[1] == ':') {
			const char *end = strstr(s + 2, ":]");
			if (end) {
				buf_add(out, s, (size_t)(end + 2 - s));
				s = end + 1;
				continue;
			}
		}
		if (in_class && *s == ']')
			in_class = 0;
		buf_addch(out, *s);
	}
}

static int memory_error(struct apierr *e, const char *field, const char *what)
{
	return apierr_set(e, 422, "regex_limit",
			  "%s: %s needs more than regex_memory_kb (%lu KiB); "
			  "simplify the pattern",
			  field, what, rx_memory_kb());
}

struct rx *rx_compile(const char *pattern, const char *field, struct apierr *e)
{
	struct rx *r = calloc(1, sizeof(*r));
	struct buf pat = BUF_INIT;
	PCRE2_UCHAR why[120];
	PCRE2_SIZE off;
	int err;

	if (!r) {
		apierr_set(e, 500, "internal_error", "out of memory");
		return NULL;
	}
	r->cap = (size_t)rx_memory_kb() * 1024;
	buf_init(&pat, strlen(pattern) + 16);
	translate(pattern, &pat);
	if (!(r->gc = pcre2_general_context_create(rx_alloc, rx_dealloc, r)) ||
	    !(r->cc = pcre2_compile_context_create(r->gc)) ||
	    !(r->mc = pcre2_match_context_create(r->gc))) {
		buf_release(&pat);
		rx_free(r);
		apierr_set(e, 500, "internal_error", "out of memory");
		return NULL;
	}
	pcre2_set_match_limit(r->mc, (uint32_t)rx_match_limit());
	pcre2_set_depth_limit(r->mc, (uint32_t)rx_depth_limit());
	pcre2_set_heap_limit(r->mc, (uint32_t)rx_memory_kb());
	pcre2_set_callout(r->mc, on_callout, r);
	r->code = pcre2_compile((PCRE2_SPTR)pat.data, pat.len,
				PCRE2_UTF | PCRE2_MATCH_INVALID_UTF |
					PCRE2_NEVER_BACKSLASH_C |
					PCRE2_AUTO_CALLOUT,
				&err, &off, r->cc);
	buf_release(&pat);
	if (!r->code) {
		if (r->refused || err == PCRE2_ERROR_HEAPLIMIT) {
			memory_error(e, field, "compiling it");
		} else {
			pcre2_get_error_message(err, why, sizeof(why));
			apierr_set(e, 400, "validation_error",
				   "%s: not a valid regular expression (%s, "
				   "at offset %zu)",
				   field, (const char *)why, (size_t)off);
		}
		rx_free(r);
		return NULL;
	}
	if (!(r->md = pcre2_match_data_create(1, r->gc))) {
		memory_error(e, field, "matching it");
		rx_free(r);
		return NULL;
	}
	return r;
}

int rx_match(struct rx *r, const char *s, size_t len, struct apierr *e)
{
	int rc;

	r->calls = 0;
	r->deadline = now_s() + (double)rx_time_ms() / 1000.0;
	rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, 0, 0, r->md, r->mc);
	if (rc >= 0)
		return 1;
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	switch (rc) {
	case PCRE2_ERROR_CALLOUT:
		apierr_set(e, 422, "regex_limit",
			   "matching it takes longer than regex_time_ms (%lu "
			   "ms); simplify the pattern (nested repeats, back "
			   "references)",
			   rx_time_ms());
		break;
	case PCRE2_ERROR_MATCHLIMIT:
		apierr_set(e, 422, "regex_limit",
			   "matching it needs more than regex_match_limit "
			   "(%lu) steps; simplify the pattern (nested "
			   "repeats, back references)",
			   rx_match_limit());
		break;
	case PCRE2_ERROR_DEPTHLIMIT:
		apierr_set(e, 422, "regex_limit",
			   "matching it nests deeper than regex_depth_limit "
			   "(%lu); simplify the pattern",
			   rx_depth_limit());
		break;
	case PCRE2_ERROR_HEAPLIMIT:
	case PCRE2_ERROR_NOMEMORY:
		apierr_set(e, 422, "regex_limit",
			   "matching it needs more than regex_memory_kb (%lu "
			   "KiB); simplify the pattern",
			   rx_memory_kb());
		break;
	default: {
		PCRE2_UCHAR why[120];
		pcre2_get_error_message(rc, why, sizeof(why));
		apierr_set(e, 422, "regex_limit", "matching it failed (%s)",
			   (const char *)why);
	}
	}
	return -1;
}

void rx_free(struct rx *r)
{
	if (!r)
		return;
	pcre2_match_data_free(r->md);
	pcre2_code_free(r->code);
	pcre2_match_context_free(r->mc);
	pcre2_compile_context_free(r->cc);
	pcre2_general_context_free(r->gc);
	free(r);
}
