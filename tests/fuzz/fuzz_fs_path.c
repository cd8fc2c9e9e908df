/*
 * libFuzzer target: the session file path normalizer (fcgi/lib/fs_path.c).
 * Whatever the input, an accepted path must be in normal form (absolute,
 * no empty, "." or ".." segment, no NUL or control character, valid
 * UTF-8, at most FS_PATH_MAX bytes, segments of at most FS_SEGMENT_MAX,
 * a first segment other than "_"), and normalizing it again must give it
 * back unchanged. A refusal must be a 400 invalid_path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void check_normal(const char *p)
{
	size_t len = strlen(p), i = 1, seg = 0;

	if (p[0] != '/' || len > FS_PATH_MAX || !utf8_valid(p, len, 1))
		abort();
	if (len == 1)
		return;
	if (p[len - 1] == '/')
		abort();
	while (i <= len) {
		const char *s = p + i;
		size_t sl = strcspn(s, "/");
		if (sl == 0 || sl > FS_SEGMENT_MAX)
			abort();
		if ((sl == 1 && s[0] == '.') ||
		    (sl == 2 && s[0] == '.' && s[1] == '.'))
			abort();
		if (seg == 0 && sl == 1 && s[0] == '_')
			abort();
		seg++;
		i += sl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char out[FS_PATH_MAX + 1], again[FS_PATH_MAX + 1];
	struct apierr e;

	if (fs_path_normalize((const char *)d, n, out, "path", &e) != 0) {
		if (e.status != 400 || strcmp(e.code, "invalid_path"))
			abort();
		return 0;
	}
	check_normal(out);
	if (fs_path_normalize(out, strlen(out), again, "path", &e) != 0 ||
	    strcmp(out, again))
		abort();
	return 0;
}
