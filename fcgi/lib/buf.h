/*
 * buf: a growable byte buffer, modelled on git's strbuf.
 *
 * Invariants: a buffer set to BUF_INIT or by buf_init() is empty and
 * valid: `b->data` is never NULL and is always NUL-terminated at b->len
 * (so it can be used as a C string when the content has no NUL); an
 * empty buffer with nothing allocated points at the shared buf_empty, as
 * git's strbuf points at its slopbuf. `b->cap` counts the bytes allocated,
 * including the terminator (0: nothing allocated, data is buf_empty). The
 * buffer owns its memory; buf_detach() hands it to the caller and leaves the
 * buffer empty and re-usable. Allocation failure aborts the process.
 */
#ifndef EVR_BUF_H
#define EVR_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

/* The one empty string of every buffer without an allocation (never
 * written to). */
extern char buf_empty[1];
#define BUF_INIT                                                               \
	{                                                                      \
		buf_empty, 0, 0                                                \
	}

void buf_init(struct buf *b, size_t hint);
void buf_release(struct buf *b);
/* Return the content (NUL-terminated, caller frees); the buffer is reset. */
char *buf_detach(struct buf *b, size_t *len);
void buf_reset(struct buf *b);
void buf_grow(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addch(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vaddf(struct buf *b, const char *fmt, va_list ap);
/* Append v as 2 or 4 bytes, most significant first (network order, as
 * PostgreSQL's binary formats want them). */
void buf_add_be16(struct buf *b, unsigned v);
void buf_add_be32(struct buf *b, unsigned long v);
/* Append s as a JSON string literal, quotes included. */
void buf_add_json_str(struct buf *b, const char *s, size_t len);

/* Allocation helpers that abort on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
