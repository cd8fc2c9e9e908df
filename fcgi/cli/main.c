/*
 * everruns: the command-line client of the everruns API.
 *
 *     everruns [global options] NOUN [VERB] [arguments and options]
 *
 * main() finds the noun and verb in the table below, parses the rest of
 * the line against that command's options (global ones are accepted
 * anywhere), loads the configuration and runs the command. Exit status:
 * 0 ok, 1 the API refused or could not be reached, 2 usage.
 */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct noun nouns[] = {
	{"sessions",
	 "create, list, get, update, delete and cancel sessions; answer "
	 "a waiting turn (tool-results, approve)",
	 sessions_cmds, "list"},
	{"chat", "talk with an agent in a session, interactively", chat_cmds,
	 NULL},
	{"messages", "send messages (start turns) and read the conversation",
	 messages_cmds, "list"},
	{"events", "read a session's event log, or follow it live", events_cmds,
	 "list"},
	{"fs",
	 "the session filesystem: ls, cat, put, get, rm, mv, cp, grep, stat",
	 fs_cmds, NULL},
	{"agents", "agents (list, get, create, delete)", agents_cmds, "list"},
	{"harnesses", "harnesses (list, get)", harnesses_cmds, "list"},
	{"models", "LLM models (list, get)", models_cmds, "list"},
	{"providers", "LLM providers (list, get)", providers_cmds, "list"},
	{"capabilities", "the capability catalogue (list, get)",
	 capabilities_cmds, "list"},
	{"images", "images for messages (upload, list, get, delete)",
	 images_cmds, "list"},
	{"api-keys", "API keys (list, create, delete)", apikeys_cmds, "list"},
	{"me", "who the API key belongs to", me_cmds, NULL},
	{NULL, NULL, NULL, NULL},
};

static const char global_help[] =
	"Global options (accepted by every command):\n"
	"  --api-url URL   the server, its root or root/api (EVERRUNS_API_URL;\n"
	"                  default http://127.0.0.1:8080)\n"
	"  --api-key KEY   the API key (EVERRUNS_API_KEY)\n"
	"  --cacert FILE   trust this CA certificate (EVERRUNS_CACERT), e.g. a\n"
	"                  self-signed server certificate\n"
	"  --insecure      do not verify the server's TLS certificate (EVERRUNS_INSECURE=1)\n"
	"  --json          print the API's JSON instead of text\n"
	"  --verbose       show the HTTP exchange (libcurl)\n"
	"  --help, -h      help for the command\n"
	"Settings may also be kept in ~/.config/everruns/config (mode 0600):\n"
	"  api_url = ..., api_key = ..., cacert = ..., insecure = true\n";

static void help_top(FILE *f)
{
	const struct noun *n;

	fprintf(f,
		"usage: everruns [options] COMMAND [VERB] [ARGS]\n\nCommands:\n");
	for (n = nouns; n->name; n++)
		fprintf(f, "  %-13s %s\n", n->name, n->summary);
	fprintf(f,
		"\n%s\nexit status: 0 ok, 1 API error, 2 usage error.\n"
		"'everruns COMMAND --help' describes a command.\n",
		global_help);
}

static void help_noun(FILE *f, const struct noun *n)
{
	const struct cmd *c;

	fprintf(f, "%s: %s\n\n", n->name, n->summary);
	for (c = n->cmds; c->run; c++)
		fprintf(f, "  everruns %s\n", c->synopsis);
	if (n->default_verb)
		fprintf(f, "\n'everruns %s' alone is 'everruns %s %s'.\n",
			n->name, n->name, n->default_verb);
	fprintf(f, "'everruns %s VERB --help' describes a verb.\n", n->name);
}

static void help_cmd(FILE *f, const struct cmd *c)
{
	fprintf(f, "usage: everruns %s\n\n%s\n%s", c->synopsis, c->help,
		global_help);
}

/* How many arguments a global option s ("--name" or "--name=v") takes
 * after itself; -1 when s is not one. */
static int global_takes_value(const char *s)
{
	const struct optdef *d;
	const char *eq = strchr(s, '=');
	size_t len;

	if (strncmp(s, "--", 2))
		return -1;
	len = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
	for (d = global_opts; d->name; d++)
		if (strlen(d->name) == len && !strncmp(s + 2, d->name, len))
			return eq ? 0 : d->kind != OPT_FLAG;
	return -1;
}

int main(int argc, char **argv)
{
	const struct noun *n = NULL;
	const struct cmd *c = NULL;
	int i, noun_at = -1, verb_at = -1, rc, nrest = 0, want_help = 0;
	char **rest;
	struct args a;
	struct cli cli;

	/* leading global options, then the noun */
	for (i = 1; i < argc; i++) {
		const char *s = argv[i];
		int v;
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			want_help = 1;
			continue;
		}
		if (!strcmp(s, "--version")) {
			printf("everruns %s\n", PACKAGE_VERSION);
			return CLI_OK;
		}
		if (s[0] != '-')
			break;
		v = global_takes_value(s);
		if (v < 0) {
			fprintf(stderr,
				"everruns: unknown option '%s' before the command\n",
				s);
			help_top(stderr);
			return CLI_USAGE;
		}
		i += v;
	}
	if (i >= argc) {
		help_top(want_help ? stdout : stderr);
		return want_help ? CLI_OK : CLI_USAGE;
	}
	for (n = nouns; n->name && strcmp(n->name, argv[i]); n++)
		;
	if (!n->name) {
		fprintf(stderr, "everruns: unknown command '%s'\n", argv[i]);
		help_top(stderr);
		return CLI_USAGE;
	}
	noun_at = i;
	if (n->cmds[0].verb) {
		const char *want = NULL;
		if (i + 1 < argc && argv[i + 1][0] != '-') {
			want = argv[i + 1];
			verb_at = i + 1;
		} else {
			int h = want_help;
			for (int j = i + 1; j < argc; j++)
				h |= !strcmp(argv[j], "--help") ||
				     !strcmp(argv[j], "-h");
			if (h) {
				help_noun(stdout, n);
				return CLI_OK;
			}
			want = n->default_verb;
		}
		for (c = n->cmds; want && c->run && strcmp(c->verb, want); c++)
			;
		if (!want || !c->run) {
			if (want)
				fprintf(stderr,
					"everruns: '%s' is not a verb of '%s'\n",
					want, n->name);
			help_noun(stderr, n);
			return CLI_USAGE;
		}
	} else {
		c = &n->cmds[0];
	}

	rest = xcalloc((size_t)argc + 1, sizeof(*rest));
	for (i = 1; i < argc; i++)
		if (i != noun_at && i != verb_at)
			rest[nrest++] = argv[i];
	rc = args_parse(&a, nrest, rest, c->opts);
	if (rc) {
		fprintf(stderr, "usage: everruns %s\n", c->synopsis);
		goto out_rest;
	}
	if (args_has(&a, "help")) {
		help_cmd(stdout, c);
		rc = CLI_OK;
		goto out_rest;
	}
	if (a.npos < c->min_pos || a.npos > c->max_pos) {
		fprintf(stderr, "everruns: %s\nusage: everruns %s\n",
			a.npos < c->min_pos ? "missing arguments"
					    : "too many arguments",
			c->synopsis);
		rc = CLI_USAGE;
		goto out_rest;
	}
	memset(&cli, 0, sizeof(cli));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = config_load(&cli, &a, !c->no_key);
	if (!rc) {
		signal(SIGPIPE, SIG_IGN);
		rc = c->run(&cli, &a);
	}
	fflush(stdout);
	config_release(&cli);
	curl_global_cleanup();
out_rest:
	free(rest);
	return rc;
}
