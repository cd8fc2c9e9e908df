/*
 * rx: regular expressions with guaranteed bounds, for the file search of
 * the REST API and of the runner's grep_files tool (fs.c's fs_grep).
 *
 * The engine is PCRE2 (the interpreter, no JIT). Every match runs under
 * a time limit checked inside the match (regex_time_ms: the pattern is
 * compiled with automatic callouts, and the callout reads the clock), a
 * match limit (backtracking steps, regex_match_limit), a depth limit
 * (regex_depth_limit) and a heap limit; every byte PCRE2 allocates, for
 * compiling and for matching, goes through a counting allocator that
 * refuses past regex_memory_kb. The step limit alone would not bound the
 * time: one step may compare a back reference across the whole line
 * ((a*)\1*\1*[bc] on 1,000 'a' took 19 s within 1,000,000 steps). So one
 * match costs at most a known time and a known memory, whatever the
 * pattern and the line.
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
struct rx *rx_compile(const char *pattern, const char *field, struct apierr *e);
/* 1 when s[0..len) matches, 0 when not, -1 with a 422 regex_limit in e
 * naming the limit that stopped the match ("matching it needs more than
 * regex_match_limit ..."; the caller says what "it" was). */
int rx_match(struct rx *r, const char *s, size_t len, struct apierr *e);
void rx_free(struct rx *r);

/* The limits in force (config keys, clamped to their bounds). */
unsigned long rx_match_limit(void);
unsigned long rx_depth_limit(void);
unsigned long rx_memory_kb(void);
unsigned long rx_time_ms(void);

#endif
