/* status: see status.h. */
#include "status.h"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATUS_MAX (64 * 1024)

const char *status_dir(void)
{
	static char def[2048];
	const char *v = config_str("run_dir");

	if (*v)
		return v;
	if (!def[0])
		snprintf(def, sizeof(def), "%s/run", config_home());
	return def;
}

int status_write(const char *name, const char *text, size_t len)
{
	char path[4096], tmp[4200];
	int fd, saved;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", status_dir(), name);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	n = write(fd, text, len);
	if (n != (ssize_t)len || close(fd) != 0) {
		saved = n < 0 ? errno : EIO;
		if (n >= 0)
			close(fd);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if (rename(tmp, path) != 0) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

int status_read(const char *name, struct buf *out)
{
	char path[4096], chunk[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", status_dir(), name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 &&
	       out->len + (size_t)n <= STATUS_MAX)
		buf_add(out, chunk, (size_t)n);
	close(fd);
	return n < 0 ? -1 : 0;
}

long status_value(const char *text, const char *key, long def)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, klen) && p[klen] == ' ')
			return strtol(p + klen + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return def;
}
