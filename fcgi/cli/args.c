/*
 * args: the command line after the noun and verb. Options are long only
 * ("--name value" or "--name=value"), plus -h; they may come before,
 * between or after the positional arguments; "--" ends them and "-" is a
 * positional (standard input). The global options (global_opts) are
 * accepted by every command.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct optdef global_opts[] = {
	{"api-url", OPT_VALUE}, {"api-key", OPT_VALUE},
	{"cacert", OPT_VALUE},  {"insecure", OPT_FLAG},
	{"json", OPT_FLAG},     {"help", OPT_FLAG},
	{"verbose", OPT_FLAG},  {NULL, 0},
};

static const struct optdef *find(const struct optdef *defs, const char *name,
				 size_t len)
{
	for (; defs && defs->name; defs++)
		if (strlen(defs->name) == len &&
		    !strncmp(defs->name, name, len))
			return defs;
	return NULL;
}

static int add_opt(struct args *a, const char *name, const char *val)
{
	if (a->nopt >= ARGS_MAX) {
		fprintf(stderr, "everruns: too many options\n");
		return CLI_USAGE;
	}
	a->opt[a->nopt].name = name;
	a->opt[a->nopt].val = val;
	a->nopt++;
	return 0;
}

int args_parse(struct args *a, int argc, char **argv,
	       const struct optdef *cmd_opts)
{
	int i, only_pos = 0;

	memset(a, 0, sizeof(*a));
	for (i = 0; i < argc; i++) {
		const char *s = argv[i], *name, *eq;
		const struct optdef *d;
		size_t len;

		if (only_pos || s[0] != '-' || !strcmp(s, "-")) {
			if (a->npos >= ARGS_MAX) {
				fprintf(stderr,
					"everruns: too many arguments\n");
				return CLI_USAGE;
			}
			a->pos[a->npos++] = s;
			continue;
		}
		if (!strcmp(s, "--")) {
			only_pos = 1;
			continue;
		}
		if (!strcmp(s, "-h")) {
			if (add_opt(a, "help", ""))
				return CLI_USAGE;
			continue;
		}
		if (s[1] != '-') {
			fprintf(stderr,
				"everruns: unknown option '%s' (options are --long)\n",
				s);
			return CLI_USAGE;
		}
		name = s + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		d = find(cmd_opts, name, len);
		if (!d)
			d = find(global_opts, name, len);
		if (!d) {
			fprintf(stderr, "everruns: unknown option '--%.*s'\n",
				(int)len, name);
			return CLI_USAGE;
		}
		if (d->kind == OPT_FLAG) {
			if (eq) {
				fprintf(stderr,
					"everruns: --%s takes no value\n",
					d->name);
				return CLI_USAGE;
			}
			if (add_opt(a, d->name, ""))
				return CLI_USAGE;
			continue;
		}
		if (eq) {
			if (add_opt(a, d->name, eq + 1))
				return CLI_USAGE;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "everruns: --%s needs a value\n",
				d->name);
			return CLI_USAGE;
		}
		if (add_opt(a, d->name, argv[++i]))
			return CLI_USAGE;
	}
	return 0;
}

const char *args_get(const struct args *a, const char *name)
{
	const char *v = NULL;
	int i;

	for (i = 0; i < a->nopt; i++)
		if (!strcmp(a->opt[i].name, name))
			v = a->opt[i].val;
	return v;
}

int args_has(const struct args *a, const char *name)
{
	return args_get(a, name) != NULL;
}

const char *args_nth(const struct args *a, const char *name, int n)
{
	int i;

	for (i = 0; i < a->nopt; i++)
		if (!strcmp(a->opt[i].name, name) && n-- == 0)
			return a->opt[i].val;
	return NULL;
}

int args_long(const struct args *a, const char *name, long min, long max,
	      long *out)
{
	const char *s = args_get(a, name);
	char *end;
	long v;

	if (!s)
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max) {
		fprintf(stderr,
			"everruns: --%s must be a number from %ld to %ld\n",
			name, min, max);
		return CLI_USAGE;
	}
	*out = v;
	return 0;
}
