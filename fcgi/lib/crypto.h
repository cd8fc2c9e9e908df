/*
 * crypto: the few primitives the server needs, all from OpenSSL libcrypto.
 *
 * - crypto_random: CSPRNG bytes (aborts if the generator fails).
 * - crypto_sha256_hex: API keys are stored only as this digest.
 * - crypto_seal / crypto_open: AES-256-GCM for provider API keys at rest.
 *   The sealed form is text: "v1:" + base64(nonce(12) | ciphertext | tag(16)),
 *   so it fits a TEXT column. The 32-byte key comes from the server key file.
 */
#ifndef EVR_CRYPTO_H
#define EVR_CRYPTO_H

#include <stddef.h>

#include "buf.h"

#define CRYPTO_KEY_LEN 32

void crypto_random(void *out, size_t n);
/* Lowercase hex of SHA-256(data), into out[65]. */
void crypto_sha256_hex(const void *data, size_t len, char out[65]);
void crypto_hex(const unsigned char *in, size_t n, char *out);
/* Decode 2n hex digits; returns 0 on success. */
int crypto_unhex(const char *in, unsigned char *out, size_t n);

/* Append the sealed form of plain to out. Returns 0, or -1 on failure. */
int crypto_seal(const unsigned char key[CRYPTO_KEY_LEN], const char *plain,
		size_t len, struct buf *out);
/* Append the plaintext to out. -1 if the text was tampered with or the
 * key is wrong. */
int crypto_open(const unsigned char key[CRYPTO_KEY_LEN], const char *sealed,
		struct buf *out);

/* Read a server key file: 64 hex digits (trailing newline allowed).
 * Returns 0, or -1 (logged) if the file is missing or malformed. */
int crypto_load_key(const char *path, unsigned char key[CRYPTO_KEY_LEN]);
/* Create a new key file with mode 0600 (fails if it exists). 0 or -1. */
int crypto_create_key_file(const char *path);

#endif
