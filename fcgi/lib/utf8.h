/*
 * utf8: validation of untrusted text. PostgreSQL refuses invalid UTF-8
 * outright, and a NUL cuts C strings short, so text from requests and
 * from models is checked here before it goes anywhere.
 */
#ifndef EVR_UTF8_H
#define EVR_UTF8_H

#include <stddef.h>

/* 1 if s[0..len) is valid UTF-8 (no overlong forms, surrogates or code
 * points past U+10FFFF) without NUL bytes; with no_controls, also without
 * C0 controls and DEL. */
int utf8_valid(const char *s, size_t len, int no_controls);

#endif
