/* imagetype: see imagetype.h. */
#include "imagetype.h"

#include <string.h>

static const char *const types[] = {"image/png", "image/jpeg", "image/gif",
				    "image/webp"};

const char *imagetype_sniff(const unsigned char *d, size_t n)
{
	if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8))
		return types[0];
	if (n >= 3 && !memcmp(d, "\xff\xd8\xff", 3))
		return types[1];
	if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6)))
		return types[2];
	if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4))
		return types[3];
	return NULL;
}

int imagetype_known(const char *media_type)
{
	size_t i;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(media_type, types[i]))
			return 1;
	return 0;
}
