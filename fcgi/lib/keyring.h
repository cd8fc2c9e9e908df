/*
 * keyring: the server key as the long-running programs hold it, so that
 * `everruns-admin rotate-server-key` needs no restart.
 *
 * The key file is stat()ed on every use and read again when it changed
 * (another inode, size or mtime: rotation renames a new file over it).
 * The key it replaced is kept as the previous one: a provider key read
 * from the database just before the rotation committed still opens.
 * Not thread-safe: one ring per thread, or a lock around it.
 */
#ifndef EVR_KEYRING_H
#define EVR_KEYRING_H

#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "crypto.h"

struct keyring {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	unsigned char cur[CRYPTO_KEY_LEN], prev[CRYPTO_KEY_LEN];
	int have_cur, have_prev;
};

/* Load path (kept; a missing or bad file is logged and retried on use).
 * 0, or -1 when no key could be read yet. */
int keyring_init(struct keyring *k, const char *path);
void keyring_release(struct keyring *k);
/* Read the file again if it changed. 0 with a current key, else -1. */
int keyring_refresh(struct keyring *k);
/* crypto_open with the current key, else the previous one. 0 or -1. */
int keyring_open(struct keyring *k, const char *sealed, struct buf *out);

#endif
