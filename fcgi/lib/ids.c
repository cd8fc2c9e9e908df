#include "ids.h"
#include "crypto.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int ids_has_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(s, prefix, n) == 0 && s[n] == '_';
}

int ids_parse(const char *s, const char *prefix, char hex[IDS_HEX_LEN + 1])
{
	size_t i, n = strlen(prefix);
	if (!ids_has_prefix(s, prefix))
		return 0;
	s += n + 1;
	for (i = 0; i < IDS_HEX_LEN; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	if (s[IDS_HEX_LEN] != '\0')
		return 0;
	memcpy(hex, s, IDS_HEX_LEN);
	hex[IDS_HEX_LEN] = '\0';
	return 1;
}

void ids_uuid7(unsigned char *u, size_t n)
{
	struct timespec ts;
	uint64_t ms;
	size_t k;
	int i;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	crypto_random(u, 16 * n);
	for (k = 0; k < n; k++, u += 16) {
		for (i = 0; i < 6; i++)
			u[i] = (unsigned char)(ms >> (40 - 8 * i));
		u[6] = (unsigned char)(0x70 | (u[6] & 0x0f)); /* version 7 */
		u[8] = (unsigned char)(0x80 | (u[8] & 0x3f)); /* RFC 4122 */
	}
}

void ids_new(const char *prefix, char *out, size_t outlen)
{
	unsigned char u[16];
	ids_uuid7(u, 1);
	ids_format(prefix, u, out, outlen);
}

void ids_format(const char *prefix, const unsigned char u[16], char *out,
		size_t outlen)
{
	size_t n = strlen(prefix);

	if (n + 1 + 33 > outlen) { /* as much of the prefix as fits */
		snprintf(out, outlen, "%s_", prefix);
		return;
	}
	memcpy(out, prefix, n);
	out[n] = '_';
	crypto_hex(u, 16, out + n + 1); /* 32 digits and the NUL */
}
