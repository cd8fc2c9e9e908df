/* keyring: see keyring.h. */
#include "keyring.h"
#include "buf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int keyring_init(struct keyring *k, const char *path)
{
	memset(k, 0, sizeof(*k));
	k->path = xstrdup(path);
	return keyring_refresh(k);
}

void keyring_release(struct keyring *k)
{
	free(k->path);
	memset(k, 0, sizeof(*k));
}

int keyring_refresh(struct keyring *k)
{
	unsigned char fresh[CRYPTO_KEY_LEN];
	struct stat st;

	if (stat(k->path, &st) != 0)
		return k->have_cur ? 0 : -1; /* keep what we have */
	if (k->have_cur && st.st_dev == k->dev && st.st_ino == k->ino &&
	    st.st_size == k->size && st.st_mtim.tv_sec == k->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == k->mtime.tv_nsec)
		return 0;
	if (crypto_load_key(k->path, fresh) != 0)
		return k->have_cur ? 0 : -1;
	if (k->have_cur && memcmp(fresh, k->cur, CRYPTO_KEY_LEN) != 0) {
		memcpy(k->prev, k->cur, CRYPTO_KEY_LEN);
		k->have_prev = 1;
	}
	memcpy(k->cur, fresh, CRYPTO_KEY_LEN);
	k->have_cur = 1;
	k->dev = st.st_dev;
	k->ino = st.st_ino;
	k->size = st.st_size;
	k->mtime = st.st_mtim;
	return 0;
}

int keyring_open(struct keyring *k, const char *sealed, struct buf *out)
{
	if (keyring_refresh(k) != 0)
		return -1;
	if (crypto_open(k->cur, sealed, out) == 0)
		return 0;
	return k->have_prev ? crypto_open(k->prev, sealed, out) : -1;
}
