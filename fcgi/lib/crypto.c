#include "crypto.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GCM_NONCE 12
#define GCM_TAG 16

void crypto_random(void *out, size_t n)
{
	if (RAND_bytes(out, (int)n) != 1)
		abort();
}

void crypto_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;
	for (i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int crypto_unhex(const char *in, unsigned char *out, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++) {
		int h = hexval(in[2 * i]), l;
		if (h < 0)
			return -1;
		l = hexval(in[2 * i + 1]);
		if (l < 0)
			return -1;
		out[i] = (unsigned char)(h << 4 | l);
	}
	return 0;
}

void crypto_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
		abort();
	crypto_hex(md, 32, out);
}

int crypto_seal(const unsigned char key[CRYPTO_KEY_LEN], const char *plain,
		size_t len, struct buf *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	unsigned char *raw = xmalloc(GCM_NONCE + len + GCM_TAG);
	unsigned char *b64 = NULL;
	int n, fin, ret = -1;

	if (!ctx)
		abort();
	crypto_random(raw, GCM_NONCE);
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
	    EVP_EncryptUpdate(ctx, raw + GCM_NONCE, &n,
			      (const unsigned char *)plain, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, raw + GCM_NONCE + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG,
				raw + GCM_NONCE + n + fin) != 1)
		goto out;
	size_t rawlen = GCM_NONCE + (size_t)n + (size_t)fin + GCM_TAG;
	b64 = xmalloc(4 * ((rawlen + 2) / 3) + 1);
	int blen = EVP_EncodeBlock(b64, raw, (int)rawlen);
	buf_adds(out, "v1:");
	buf_add(out, b64, (size_t)blen);
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	free(raw);
	free(b64);
	return ret;
}

int crypto_open(const unsigned char key[CRYPTO_KEY_LEN], const char *sealed,
		struct buf *out)
{
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char *raw = NULL, *plain = NULL;
	size_t slen;
	int rawlen, n, fin, ret = -1;

	if (strncmp(sealed, "v1:", 3) != 0)
		return -1;
	sealed += 3;
	slen = strlen(sealed);
	if (slen % 4 || slen < 4)
		return -1;
	raw = xmalloc(slen / 4 * 3 + 1);
	rawlen = EVP_DecodeBlock(raw, (const unsigned char *)sealed, (int)slen);
	if (rawlen < 0)
		goto out;
	/* EVP_DecodeBlock counts base64 padding as zero bytes */
	if (slen >= 1 && sealed[slen - 1] == '=')
		rawlen--;
	if (slen >= 2 && sealed[slen - 2] == '=')
		rawlen--;
	if (rawlen < GCM_NONCE + GCM_TAG)
		goto out;
	int clen = rawlen - GCM_NONCE - GCM_TAG;
	plain = xmalloc((size_t)clen + 1);
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		abort();
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
	    EVP_DecryptUpdate(ctx, plain, &n, raw + GCM_NONCE, clen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG,
				raw + GCM_NONCE + clen) != 1 ||
	    EVP_DecryptFinal_ex(ctx, plain + n, &fin) != 1)
		goto out;
	buf_add(out, plain, (size_t)(n + fin));
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	free(raw);
	free(plain);
	return ret;
}

int crypto_load_key(const char *path, unsigned char key[CRYPTO_KEY_LEN])
{
	char text[2 * CRYPTO_KEY_LEN + 2];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_error("server key %s: %s", path, strerror(errno));
		return -1;
	}
	n = read(fd, text, sizeof(text));
	close(fd);
	if (n < 2 * CRYPTO_KEY_LEN ||
	    crypto_unhex(text, key, CRYPTO_KEY_LEN) != 0 ||
	    (n > 2 * CRYPTO_KEY_LEN && text[2 * CRYPTO_KEY_LEN] != '\n')) {
		log_error("server key %s: expected 64 hex digits", path);
		return -1;
	}
	return 0;
}

int crypto_create_key_file(const char *path)
{
	unsigned char raw[CRYPTO_KEY_LEN];
	char text[2 * CRYPTO_KEY_LEN + 2];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int ret = 0;
	if (fd < 0) {
		log_error("server key %s: %s", path, strerror(errno));
		return -1;
	}
	crypto_random(raw, sizeof(raw));
	crypto_hex(raw, sizeof(raw), text);
	text[2 * CRYPTO_KEY_LEN] = '\n';
	if (write(fd, text, 2 * CRYPTO_KEY_LEN + 1) != 2 * CRYPTO_KEY_LEN + 1)
		ret = -1;
	if (close(fd) != 0)
		ret = -1;
	return ret;
}
