/*
 * strmap: a chained hash table from NUL-terminated strings to pointers,
 * for the long-lived programs' in-memory indexes (the runner's history
 * cache, everruns-sse's sessions and organizations). The map owns copies
 * of its keys and nothing else: values belong to the caller. Not
 * thread-safe; one map per owner.
 */
#ifndef EVR_STRMAP_H
#define EVR_STRMAP_H

#include <stddef.h>

struct strmap_entry;

struct strmap {
	struct strmap_entry **b; /* buckets */
	size_t nb, n;            /* buckets, entries */
};

#define STRMAP_INIT                                                            \
	{                                                                      \
		NULL, 0, 0                                                     \
	}

/* The value stored under key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/* Store val under key (replacing what was there). */
void strmap_put(struct strmap *m, const char *key, void *val);
/* Remove key; returns its value (NULL if it was not there). */
void *strmap_del(struct strmap *m, const char *key);
/* fn(key, value, ctx) for every entry, in no particular order; fn must
 * not add or remove entries. */
void strmap_each(const struct strmap *m,
		 void (*fn)(const char *key, void *val, void *ctx), void *ctx);
/* Free the table and the keys (not the values). */
void strmap_release(struct strmap *m);

#endif
