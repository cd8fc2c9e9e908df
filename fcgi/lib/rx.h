/*
 * rx: regular expressions with guaranteed bounds, for the file search of
 * the REST API and of the runner's grep_files tool (fs.c's fs_grep).
 *
 * The engine is PCRE2 (the interpreter, no JIT). Every match runs under
 * a match limit (backtracking steps, config key regex_match_limit), a
 * depth limit (regex_depth_limit) and a heap limit; every byte PCRE2
 * allocates, for compiling and for matching, goes through a counting
 * allocator that refuses past regex_memory_kb. So one match costs at most
 * a known time (about 60 ms for the default 1,000,000 steps on one core)
 * and a known memory, whatever the pattern and the line.
 *
 * Syntax: PCRE2's (Perl's), which accepts the POSIX extended (ERE)
 * patterns the search took before: alternation, groups, bracket
 * expressions with [:classes:], intervals {m,n}, anchors, back
 * references; GNU's word edges \< and \> are translated. Matching is
 * UTF-8 aware. Only whether a line matches is asked (no captures), so
 * POSIX's leftmost-longest rule makes no difference.
 *
 * One struct rx per search (not shared between threads).
 */
#ifndef EVR_RX_H
#define EVR_RX_H

#include <stddef.h>

#include "apierr.h"

struct rx;

/* Compile pattern (NUL-terminated, UTF-8). NULL with e set: a 400
 * validation_error naming `field` for a bad pattern, a 422 regex_limit
 * naming regex_memory_kb when compiling needs more. */
struct rx *rx_compile(const char *pattern, const char *field,
		      struct apierr *e);
/* 1 when s[0..len) matches, 0 when not, -1 with a 422 regex_limit in e
 * naming the limit that stopped the match (and `where`, e.g. the line). */
int rx_match(struct rx *r, const char *s, size_t len, const char *where,
	     struct apierr *e);
void rx_free(struct rx *r);

/* The limits in force (config keys, clamped to their bounds). */
unsigned long rx_match_limit(void);
unsigned long rx_depth_limit(void);
unsigned long rx_memory_kb(void);

#endif
