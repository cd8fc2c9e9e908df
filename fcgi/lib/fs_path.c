/*
 * fs_path: the normalizer of session file paths (rules in fs.h). Pure: no
 * allocation, no database, so the fuzz target and the unit tests run it
 * alone.
 */
#include "fs.h"
#include "utf8.h"

#include <string.h>

int fs_path_normalize(const char *s, size_t len, char *out, const char *field,
		      struct apierr *e)
{
	size_t i = 0, o = 0, nseg = 0;

	if (memchr(s, '\0', len) || !utf8_valid(s, len, 1))
		return apierr_set(e, 400, "invalid_path",
				  "%s: not UTF-8 text, or it contains NUL or "
				  "control characters",
				  field);
	if (len && s[0] == '/')
		s++, len--;
	if (len && s[0] == '/')
		return apierr_set(e, 400, "invalid_path",
				  "%s: empty path segment (\"//\")", field);
	/* one trailing "/" names the same directory */
	if (len && s[len - 1] == '/')
		len--;
	out[o++] = '/';
	while (len) {
		const char *seg = s + i;
		const char *slash = memchr(seg, '/', len - i);
		size_t sl = slash ? (size_t)(slash - seg) : len - i;

		if (sl == 0)
			return apierr_set(e, 400, "invalid_path",
					  "%s: empty path segment (\"//\")",
					  field);
		if ((sl == 1 && seg[0] == '.') ||
		    (sl == 2 && seg[0] == '.' && seg[1] == '.'))
			return apierr_set(e, 400, "invalid_path",
					  "%s: \".\" and \"..\" segments are "
					  "not allowed",
					  field);
		if (sl > FS_SEGMENT_MAX)
			return apierr_set(e, 400, "invalid_path",
					  "%s: a path segment is longer than "
					  "%d bytes",
					  field, FS_SEGMENT_MAX);
		if (nseg == 0 && sl == 1 && seg[0] == '_')
			return apierr_set(e, 400, "invalid_path",
					  "%s: the first segment \"_\" is "
					  "reserved",
					  field);
		if (o + (nseg ? 1 : 0) + sl > FS_PATH_MAX)
			return apierr_set(e, 400, "invalid_path",
					  "%s: longer than %d bytes", field,
					  FS_PATH_MAX);
		if (nseg)
			out[o++] = '/';
		memcpy(out + o, seg, sl);
		o += sl;
		nseg++;
		if (!slash)
			break;
		/* a "/" just before the end leaves an empty segment: the
		 * next pass refuses it */
		i += sl + 1;
	}
	out[o] = '\0';
	return 0;
}
