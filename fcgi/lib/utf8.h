/*
 * utf8: validation of untrusted text. PostgreSQL refuses invalid UTF-8
 * outright, and a NUL cuts C strings short, so text from requests and
 * from models is checked here before it goes anywhere. Every cut of a
 * string at a byte bound goes through utf8_cut(), and text that must be
 * stored whatever it holds through utf8_clean().
 */
#ifndef EVR_UTF8_H
#define EVR_UTF8_H

#include <stddef.h>

#include "buf.h"

/* 1 if s[0..len) is valid UTF-8 (no overlong forms, surrogates or code
 * points past U+10FFFF) without NUL bytes; with no_controls, also without
 * C0 controls and DEL. */
int utf8_valid(const char *s, size_t len, int no_controls);

/* Where to cut s[0..len) to keep at most max bytes without splitting a
 * character: len when it fits, else the largest n <= max with s[n] not a
 * continuation byte (0 if there is none). */
size_t utf8_cut(const char *s, size_t len, size_t max);

/* Append s[0..len) to b as storable text: NUL bytes and every byte that
 * does not start a valid UTF-8 sequence become U+FFFD. Returns how many
 * replacements were made. */
size_t utf8_clean(struct buf *b, const char *s, size_t len);

#endif
