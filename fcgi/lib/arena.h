/*
 * arena: a per-request bump allocator. Everything allocated from an arena
 * lives until arena_reset()/arena_release(); nothing is freed one by one.
 * The api program keeps one arena per worker thread and resets it after
 * every request, so request-scoped strings (FastCGI params, query values,
 * path captures) are copied here and never outlive the request.
 */
#ifndef EVR_ARENA_H
#define EVR_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head;
};

#define ARENA_INIT                                                             \
	{                                                                      \
		NULL                                                           \
	}

void *arena_alloc(struct arena *a, size_t n);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_printf(struct arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Free all but the first chunk and make it empty again. */
void arena_reset(struct arena *a);
void arena_release(struct arena *a);

#endif
