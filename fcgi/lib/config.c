#include "config.h"
#include "buf.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct kv {
	char *key, *value;
};

static struct kv *cfg;
static size_t ncfg;

void config_set(const char *key, const char *value)
{
	size_t i;
	for (i = 0; i < ncfg; i++) {
		if (!strcmp(cfg[i].key, key)) {
			free(cfg[i].value);
			cfg[i].value = xstrdup(value);
			return;
		}
	}
	cfg = xrealloc(cfg, (ncfg + 1) * sizeof(*cfg));
	cfg[ncfg].key = xstrdup(key);
	cfg[ncfg].value = xstrdup(value);
	ncfg++;
}

static char *trim(char *s)
{
	char *e;
	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int config_parse(const char *text)
{
	char *copy = xstrdup(text), *line, *save = NULL;
	int lineno = 0, ret = 0;
	for (line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq, *k;
		lineno++;
		line = trim(line);
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			log_error("config line %d: expected key = value",
				  lineno);
			ret = -1;
			continue;
		}
		*eq = '\0';
		k = trim(line);
		config_set(k, trim(eq + 1));
	}
	free(copy);
	return ret;
}

#ifndef EVR_SYSCONFDIR
#define EVR_SYSCONFDIR "/usr/local/etc"
#endif
#define EVR_SYSCONF_FILE EVR_SYSCONFDIR "/everruns/everruns.conf"

const char *config_home(void)
{
	return config_str("home");
}

int config_load(const char *path)
{
	char pathbuf[4096];
	struct buf b = BUF_INIT;
	FILE *f;
	char chunk[4096];
	size_t n;
	int ret = 0;

	if (!path) {
		path = getenv("EVERRUNS_CONF");
		if (!path) {
			const char *home = getenv("EVERRUNS_HOME");
			snprintf(pathbuf, sizeof(pathbuf), "%s/everruns.conf",
				 home ? home : "./var");
			path = pathbuf;
			/* an installed system: make install's configuration */
			if (!home && access(EVR_SYSCONF_FILE, F_OK) == 0)
				path = EVR_SYSCONF_FILE;
		}
	}
	f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		log_error("config %s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	ret = config_parse(b.data);
	buf_release(&b);
	return ret;
}

const char *config_get(const char *key, const char *def)
{
	char env[128];
	size_t i;
	const char *v;

	snprintf(env, sizeof(env), "EVERRUNS_%s", key);
	for (i = 9; env[i]; i++)
		env[i] = (char)toupper((unsigned char)env[i]);
	v = getenv(env);
	if (v)
		return v;
	for (i = 0; i < ncfg; i++)
		if (!strcmp(cfg[i].key, key))
			return cfg[i].value;
	return def;
}

long config_long(const char *key, long def)
{
	const char *v = config_get(key, NULL);
	char *end;
	long n;
	if (!v || !*v)
		return def;
	errno = 0;
	n = strtol(v, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	if (errno || *end || end == v) {
		log_warn("config %s: not a number, using %ld", key, def);
		return def;
	}
	return n;
}

double config_double(const char *key, double def)
{
	const char *v = config_get(key, NULL);
	char *end;
	double d;
	if (!v || !*v)
		return def;
	d = strtod(v, &end);
	if (end == v) {
		log_warn("config %s: not a number, using %g", key, def);
		return def;
	}
	return d;
}

const struct config_key *config_key_find(const char *name)
{
	size_t i;
	for (i = 0; i < config_nkeys; i++)
		if (!strcmp(config_keys[i].name, name))
			return &config_keys[i];
	return NULL;
}

/* A key the code reads must be in the table: a missing row is a bug that
 * the first test run shows. */
static const struct config_key *must_find(const char *key,
					  enum config_type type)
{
	const struct config_key *k = config_key_find(key);
	if (!k) {
		fprintf(stderr, "config: key %s is not in config_keys.c\n",
			key);
		abort();
	}
	if ((type == CONFIG_STRING) !=
	    (k->type == CONFIG_STRING || k->type == CONFIG_ENUM)) {
		fprintf(stderr, "config: key %s read with the wrong type\n",
			key);
		abort();
	}
	return k;
}

/* A value outside the key's bounds is taken to the nearer bound, with a
 * warning (check-config names it too). */
static double in_bounds(const struct config_key *k, double v)
{
	double b;
	if (v >= k->min && v <= k->max)
		return v;
	b = v < k->min ? k->min : k->max;
	log_warn("config %s: %g is outside [%g, %g], using %g", k->name, v,
		 k->min, k->max, b);
	return b;
}

long config_int(const char *key)
{
	const struct config_key *k = must_find(key, CONFIG_LONG);
	long def = strtol(k->def, NULL, 10);
	return (long)in_bounds(k, (double)config_long(key, def));
}

double config_num(const char *key)
{
	const struct config_key *k = must_find(key, CONFIG_DOUBLE);
	double def = strtod(k->def, NULL);
	return in_bounds(k, config_double(key, def));
}

const char *config_str(const char *key)
{
	const struct config_key *k = must_find(key, CONFIG_STRING);
	return config_get(key, k->def);
}

const char *config_server_key_file(void)
{
	static char def[4096];
	const char *v = config_str("server_key_file");
	if (*v)
		return v;
	snprintf(def, sizeof(def), "%s/server.key", config_home());
	return def;
}

/* Is v one of "a|b|c"? */
static int in_choices(const char *v, const char *choices)
{
	size_t n = strlen(v);
	const char *p = choices;
	while (*p) {
		size_t m = strcspn(p, "|");
		if (m == n && !strncmp(p, v, n))
			return 1;
		p += m;
		if (*p)
			p++;
	}
	return 0;
}

static int check_value(const struct config_key *k, const char *v,
		       struct buf *out)
{
	char *end;
	double d;

	if (k->type == CONFIG_STRING || !*v)
		return 0;
	if (k->type == CONFIG_ENUM) {
		if (in_choices(v, k->choices))
			return 0;
		buf_addf(out, "%s: '%s' is not one of %s\n", k->name, v,
			 k->choices);
		return 1;
	}
	errno = 0;
	if (k->type == CONFIG_LONG)
		d = (double)strtol(v, &end, 10);
	else
		d = strtod(v, &end);
	while (isspace((unsigned char)*end))
		end++;
	if (errno || end == v || *end) {
		buf_addf(out, "%s: '%s' is not %s\n", k->name, v,
			 k->type == CONFIG_LONG ? "an integer" : "a number");
		return 1;
	}
	if (d < k->min || d > k->max) {
		buf_addf(out, "%s: %s is out of bounds (%g..%g)\n", k->name, v,
			 k->min, k->max);
		return 1;
	}
	return 0;
}

int config_check(struct buf *out)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < ncfg; i++) {
		if (!config_key_find(cfg[i].key)) {
			buf_addf(out, "%s: unknown key\n", cfg[i].key);
			bad++;
		}
	}
	for (i = 0; i < config_nkeys; i++) {
		const char *v = config_get(config_keys[i].name, NULL);
		if (v)
			bad += check_value(&config_keys[i], v, out);
	}
	return bad;
}

void config_free(void)
{
	size_t i;
	for (i = 0; i < ncfg; i++) {
		free(cfg[i].key);
		free(cfg[i].value);
	}
	free(cfg);
	cfg = NULL;
	ncfg = 0;
}
