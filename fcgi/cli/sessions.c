/*
 * sessions: everruns sessions create / list / get / update / delete /
 * cancel (tool-results and approve: answers.c), and the helpers other nouns
 * share (session paths, resolving an agent, harness or model given by name).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const struct col session_cols[] = {
	{"ID", "id", 0},
	{"STATUS", "status", 0},
	{"TITLE", "title", 40},
	{"TAGS", "tags", 30},
	{"CREATED", "created_at", 0},
	{NULL, NULL, 0},
};

void cli_session_path(struct buf *b, const char *sid, const char *tail)
{
	buf_init(b, 96);
	buf_adds(b, "/sessions/");
	http_path_add(b, sid, 0);
	if (tail)
		buf_adds(b, tail);
}

char *cli_resolve(struct cli *c, const char *kind, const char *v)
{
	static const char *const prefix[][2] = {
		{"agents", "agt_"}, {"harnesses", "hns_"}, {"models", "mod_"}};
	struct buf path = BUF_INIT;
	struct resp r;
	char *id = NULL;
	size_t i;

	for (i = 0; i < 3; i++)
		if (!strcmp(kind, prefix[i][0]) && !strncmp(v, prefix[i][1], 4))
			return xstrdup(v);
	buf_init(&path, 64);
	if (!strcmp(kind, "models")) {
		/* a model by the provider's name for it (llmsim-instant) */
		struct json_object *data;
		buf_adds(&path, "/llm-models?limit=100");
		if (http_json(c, "GET", path.data, NULL, &r) == CLI_OK) {
			data = jx_get(r.json, "data");
			for (i = 0; data && i < json_object_array_length(data);
			     i++) {
				struct json_object *m =
					json_object_array_get_idx(data, i);
				const char *name = jx_gets(m, "model_id");
				if (name && !strcmp(name, v) &&
				    jx_gets(m, "id")) {
					id = xstrdup(jx_gets(m, "id"));
					break;
				}
			}
			if (!id)
				fprintf(stderr,
					"everruns: no model named '%s'\n", v);
		}
	} else {
		buf_addf(&path, "/%s/", kind);
		http_path_add(&path, v, 0);
		if (http_json(c, "GET", path.data, NULL, &r) == CLI_OK &&
		    jx_gets(r.json, "id"))
			id = xstrdup(jx_gets(r.json, "id"));
	}
	resp_release(&r);
	buf_release(&path);
	return id;
}

/* "ref[:json]" as {ref, config}; NULL after printing on error. */
static struct json_object *capability(const char *spec)
{
	const char *colon = strchr(spec, ':');
	struct json_object *cap = jx_obj(), *cfg;
	struct apierr e;

	if (!colon) {
		jx_put_str(cap, "ref", spec);
		return cap;
	}
	{
		char *ref = xstrndup(spec, (size_t)(colon - spec));
		jx_put_str(cap, "ref", ref);
		free(ref);
	}
	cfg = jx_parse(colon + 1, strlen(colon + 1), &e);
	if (!cfg || !json_object_is_type(cfg, json_type_object)) {
		fprintf(stderr,
			"everruns: --capability %s: the config after ':' must be a JSON object\n",
			spec);
		if (cfg)
			json_object_put(cfg);
		json_object_put(cap);
		return NULL;
	}
	json_object_object_add(cap, "config", cfg);
	return cap;
}

int cli_put_caps(struct json_object *o, const struct args *a)
{
	struct json_object *caps = NULL;
	const char *s;
	int i;

	for (i = 0; (s = args_nth(a, "capability", i)); i++) {
		struct json_object *cap = capability(s);
		if (!cap)
			return CLI_USAGE;
		if (!caps) {
			caps = json_object_new_array();
			json_object_object_add(o, "capabilities", caps);
		}
		json_object_array_add(caps, cap);
	}
	return CLI_OK;
}

void cli_put_tags(struct json_object *o, const struct args *a)
{
	struct json_object *tags;
	const char *t;
	int i;

	if (!args_has(a, "tag"))
		return;
	tags = json_object_new_array();
	for (i = 0; (t = args_nth(a, "tag", i)); i++)
		json_object_array_add(tags, json_object_new_string(t));
	json_object_object_add(o, "tags", tags);
}

int cli_put_ref(struct cli *c, struct json_object *o, const char *field,
		const char *kind, const char *v)
{
	char *id;

	if (!v)
		return CLI_OK;
	id = cli_resolve(c, kind, v);
	if (!id)
		return CLI_API;
	jx_put_str(o, field, id);
	free(id);
	return CLI_OK;
}

static int cmd_create(struct cli *c, struct args *a)
{
	struct json_object *body = jx_obj();
	const char *s;
	long maxit = -1;
	struct resp r = {0};
	int rc;

	rc = args_long(a, "max-iterations", 1, 1000, &maxit);
	if (!rc)
		rc = cli_put_caps(body, a);
	if (!rc)
		rc = cli_put_ref(c, body, "agent_id", "agents",
				 args_get(a, "agent"));
	if (!rc)
		rc = cli_put_ref(c, body, "harness_id", "harnesses",
				 args_get(a, "harness"));
	if (!rc)
		rc = cli_put_ref(c, body, "model_id", "models",
				 args_get(a, "model"));
	if (rc)
		goto out;
	if ((s = args_get(a, "title")))
		jx_put_str(body, "title", s);
	if ((s = args_get(a, "system-prompt")))
		jx_put_str(body, "system_prompt", s);
	if (maxit > 0)
		jx_put_int(body, "max_iterations", maxit);
	cli_put_tags(body, a);
	rc = http_json(c, "POST", "/sessions", body, &r);
	if (!rc)
		out_resp(c, &r, NULL);
out:
	resp_release(&r);
	json_object_put(body);
	return rc;
}

static int cmd_list(struct cli *c, struct args *a)
{
	struct buf path = BUF_INIT;
	struct resp r = {0};
	const char *t;
	char *agent = NULL;
	int i, rc = CLI_OK;

	buf_init(&path, 64);
	buf_adds(&path, "/sessions");
	if (args_get(a, "agent")) {
		agent = cli_resolve(c, "agents", args_get(a, "agent"));
		if (!agent) {
			rc = CLI_API;
			goto out;
		}
	}
	http_query_add(&path, "agent_id", agent);
	for (i = 0; (t = args_nth(a, "tag", i)); i++)
		http_query_add(&path, "tags", t);
	http_query_add(&path, "search", args_get(a, "search"));
	http_query_add(&path, "limit", args_get(a, "limit"));
	http_query_add(&path, "offset", args_get(a, "offset"));
	rc = http_json(c, "GET", path.data, NULL, &r);
	if (!rc)
		out_resp(c, &r, session_cols);
out:
	free(agent);
	resp_release(&r);
	buf_release(&path);
	return rc;
}

/* GET, PATCH, DELETE or POST .../cancel of one session. */
static int one(struct cli *c, struct args *a, const char *method,
	       const char *tail, struct json_object *body)
{
	struct buf path;
	struct resp r = {0};
	int rc;

	cli_session_path(&path, a->pos[0], tail);
	rc = http_json(c, method, path.data, body, &r);
	if (rc)
		goto out;
	if (!strcmp(method, "DELETE")) {
		out_deleted(c, a->pos[0]);
	} else if (tail && !c->json) {
		printf("%s: %s\n",
		       jx_gets(r.json, "status") ? jx_gets(r.json, "status")
						 : "?",
		       jx_gets(r.json, "message") ? jx_gets(r.json, "message")
						  : "");
	} else {
		out_resp(c, &r, NULL);
	}
out:
	resp_release(&r);
	buf_release(&path);
	return rc;
}

static int cmd_get(struct cli *c, struct args *a)
{
	return one(c, a, "GET", NULL, NULL);
}

static int cmd_update(struct cli *c, struct args *a)
{
	struct json_object *body = jx_obj();
	int rc;

	if (args_get(a, "title"))
		jx_put_str(body, "title", args_get(a, "title"));
	cli_put_tags(body, a);
	if (!json_object_object_length(body)) {
		fprintf(stderr,
			"everruns: nothing to change: give --title or --tag\n");
		json_object_put(body);
		return CLI_USAGE;
	}
	rc = one(c, a, "PATCH", NULL, body);
	json_object_put(body);
	return rc;
}

static int cmd_delete(struct cli *c, struct args *a)
{
	return one(c, a, "DELETE", NULL, NULL);
}

static int cmd_cancel(struct cli *c, struct args *a)
{
	return one(c, a, "POST", "/cancel", NULL);
}

static const struct optdef create_opts[] = {
	{"agent", OPT_VALUE},
	{"harness", OPT_VALUE},
	{"title", OPT_VALUE},
	{"tag", OPT_LIST},
	{"model", OPT_VALUE},
	{"capability", OPT_LIST},
	{"system-prompt", OPT_VALUE},
	{"max-iterations", OPT_VALUE},
	{NULL, 0},
};
static const struct optdef list_opts[] = {
	{"agent", OPT_VALUE}, {"tag", OPT_LIST},     {"search", OPT_VALUE},
	{"limit", OPT_VALUE}, {"offset", OPT_VALUE}, {NULL, 0},
};
static const struct optdef update_opts[] = {
	{"title", OPT_VALUE},
	{"tag", OPT_LIST},
	{NULL, 0},
};

const struct cmd sessions_cmds[] = {
	{"create", cmd_create, create_opts,
	 "sessions create (--agent AGENT | --harness HARNESS) [--title T] [--tag T]... "
	 "[--model MODEL] [--capability REF[:JSON]]... [--system-prompt P] [--max-iterations N]",
	 "Create a session. AGENT, HARNESS and MODEL are ids (agt_..., hns_...,\n"
	 "mod_...) or names (assistant, generic, llmsim-instant). --capability adds\n"
	 "a capability to the agent's, with an optional JSON config:\n"
	 "  --capability web_fetch --capability 'session_file_system:{\"max_file_size_mb\":10}'\n"
	 "Prints the new session (--json: the API's object).\n",
	 0, 0, 0},
	{"list", cmd_list, list_opts,
	 "sessions list [--agent AGENT] [--tag T]... [--search TEXT] [--limit N] [--offset N]",
	 "List sessions, newest first (a page of --limit, default 20, at most 100).\n",
	 0, 0, 0},
	{"get", cmd_get, NULL, "sessions get SESSION", "Show a session.\n", 1,
	 1, 0},
	{"update", cmd_update, update_opts,
	 "sessions update SESSION [--title T] [--tag T]...",
	 "Change a session's title, or replace its tags.\n", 1, 1, 0},
	{"delete", cmd_delete, NULL, "sessions delete SESSION",
	 "Delete a session with its messages, events and files (a running turn\n"
	 "is stopped).\n",
	 1, 1, 0},
	{"cancel", cmd_cancel, NULL, "sessions cancel SESSION",
	 "Cancel the session's running turn. Prints 'cancelled' or 'no_op' (nothing\n"
	 "was running) and the server's message.\n",
	 1, 1, 0},
	{"tool-results", cmd_tool_results, tool_results_opts,
	 "sessions tool-results SESSION --call ID (--result JSON | --error TEXT)...",
	 "Answer the calls of client-side tools a waiting turn asked for\n"
	 "(tool.call_requested; the session's status is waitingfortoolresults).\n"
	 "Each --call ID is followed by its --result, any JSON value (text is a\n"
	 "JSON string: --result '\"sunny\"'), or by --error TEXT when the tool\n"
	 "failed. Several calls may be answered at once; the turn goes on when\n"
	 "no call is left pending. Prints how many were accepted and the\n"
	 "session's status; a call that is not pending, or answered twice, is\n"
	 "refused (exit 1, with the server's reason).\n",
	 1, 1, 0},
	{"approve", cmd_approve, approve_opts,
	 "sessions approve SESSION --call ID... [--deny [--reason TEXT]]",
	 "Approve the calls a waiting turn asked approval for\n"
	 "(tool.approval_requested), or with --deny refuse them: the model is\n"
	 "told that the call was denied, and why with --reason, and goes on from\n"
	 "there. --call may be repeated (one decision for all of them). 'everruns\n"
	 "chat' asks these questions itself.\n",
	 1, 1, 0},
	{NULL, NULL, NULL, NULL, NULL, 0, 0, 0},
};
