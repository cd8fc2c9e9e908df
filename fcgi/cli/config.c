/*
 * config: where the server is and how to authenticate. Each setting comes
 * from the first of: a flag (--api-url, --api-key, --cacert, --insecure),
 * the environment (EVERRUNS_API_URL, EVERRUNS_API_KEY, EVERRUNS_CACERT,
 * EVERRUNS_INSECURE), the config file, the default. The API URL is the
 * server's root or that root followed by /api or /api/v1.
 *
 * The config file is $EVERRUNS_CONFIG, else
 * $XDG_CONFIG_HOME/everruns/config, else ~/.config/everruns/config:
 * "key = value" lines (api_url, api_key, cacert, insecure), '#' comments.
 * It holds a secret, so one that others may read or write (any group or
 * other permission bit) is refused, as ssh refuses such keys.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_URL "http://127.0.0.1:8080"

struct file_conf {
	char *api_url, *api_key, *cacert, *insecure;
};

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static char *config_path(void)
{
	const char *p = getenv("EVERRUNS_CONFIG"), *x, *home;
	struct buf b = BUF_INIT;

	if (p && *p)
		return xstrdup(p);
	buf_init(&b, 64);
	x = getenv("XDG_CONFIG_HOME");
	home = getenv("HOME");
	if (x && *x)
		buf_addf(&b, "%s/everruns/config", x);
	else if (home && *home)
		buf_addf(&b, "%s/.config/everruns/config", home);
	else {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

/* 0: read (or absent), CLI_USAGE: refused or malformed (printed). */
static int read_file(const char *path, struct file_conf *fc)
{
	FILE *f;
	struct stat st;
	char line[4096];
	int lineno = 0, rc = 0;

	f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "everruns: cannot read %s: %s\n", path,
			strerror(errno));
		return CLI_USAGE;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
		fprintf(stderr,
			"everruns: %s is accessible by others (mode %04o); "
			"it holds an API key: run chmod 600 %s\n",
			path, (unsigned)(st.st_mode & 07777), path);
		fclose(f);
		return CLI_USAGE;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s = trim(line), *eq, *k, *v, **dst = NULL;

		lineno++;
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			fprintf(stderr,
				"everruns: %s:%d: expected key = value\n", path,
				lineno);
			rc = CLI_USAGE;
			break;
		}
		*eq = '\0';
		k = trim(s);
		v = trim(eq + 1);
		if (!strcmp(k, "api_url"))
			dst = &fc->api_url;
		else if (!strcmp(k, "api_key"))
			dst = &fc->api_key;
		else if (!strcmp(k, "cacert"))
			dst = &fc->cacert;
		else if (!strcmp(k, "insecure"))
			dst = &fc->insecure;
		if (!dst) {
			fprintf(stderr, "everruns: %s:%d: unknown key '%s'\n",
				path, lineno, k);
			rc = CLI_USAGE;
			break;
		}
		free(*dst);
		*dst = xstrdup(v);
	}
	fclose(f);
	return rc;
}

static const char *pick(const struct args *a, const char *flag, const char *env,
			const char *file)
{
	const char *v = args_get(a, flag);

	if (v)
		return v;
	v = getenv(env);
	if (v && *v)
		return v;
	return file;
}

static int truthy(const char *s)
{
	return s &&
	       (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes"));
}

/* The server's root URL, accepting one that ends in "/" or "/api/v1". */
static char *norm_url(const char *u)
{
	char *s = xstrdup(u);
	size_t n = strlen(s);

	while (n && s[n - 1] == '/')
		s[--n] = '\0';
	/* the API's own forms, as the SDKs and upstream's CLI take it:
	 * "<root>/api" and "<root>/api/v1" name the same server as "<root>" */
	if (n >= 7 && !strcmp(s + n - 7, "/api/v1"))
		s[n -= 7] = '\0';
	else if (n >= 4 && !strcmp(s + n - 4, "/api"))
		s[n -= 4] = '\0';
	if (strncmp(s, "http://", 7) && strncmp(s, "https://", 8)) {
		fprintf(stderr,
			"everruns: the API URL must start with http:// or https:// (got '%s')\n",
			u);
		free(s);
		return NULL;
	}
	return s;
}

int config_load(struct cli *c, const struct args *a, int need_key)
{
	struct file_conf fc = {NULL, NULL, NULL, NULL};
	char *path = config_path();
	const char *v;
	int rc = 0;

	if (path)
		rc = read_file(path, &fc);
	if (rc)
		goto out;
	c->api_url = norm_url(pick(a, "api-url", "EVERRUNS_API_URL",
				   fc.api_url ? fc.api_url : DEFAULT_URL));
	if (!c->api_url) {
		rc = CLI_USAGE;
		goto out;
	}
	v = pick(a, "api-key", "EVERRUNS_API_KEY", fc.api_key);
	if (v && *v)
		c->api_key = xstrdup(v);
	v = pick(a, "cacert", "EVERRUNS_CACERT", fc.cacert);
	if (v && *v)
		c->cacert = xstrdup(v);
	c->insecure = args_has(a, "insecure") ||
		      truthy(getenv("EVERRUNS_INSECURE")) ||
		      truthy(fc.insecure);
	c->json = args_has(a, "json");
	c->verbose = args_has(a, "verbose");
	if (need_key && !c->api_key) {
		fprintf(stderr,
			"everruns: no API key: set EVERRUNS_API_KEY, pass "
			"--api-key, or put api_key in %s\n",
			path ? path : "~/.config/everruns/config");
		rc = CLI_USAGE;
	}
out:
	free(fc.api_url);
	free(fc.api_key);
	free(fc.cacert);
	free(fc.insecure);
	free(path);
	return rc;
}

void config_release(struct cli *c)
{
	free(c->api_url);
	free(c->api_key);
	free(c->cacert);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	memset(c, 0, sizeof(*c));
}
