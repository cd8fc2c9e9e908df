/*
 * resources: the catalogue-like nouns, which all list a page and show
 * one item: agents, harnesses, models, providers, capabilities, images
 * and api-keys (plus create/delete where the CLI offers them), and me.
 * One table describes each; the verbs are shared.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct resource {
	const char *path; /* collection, e.g. "/agents" */
	const struct col *cols;
};

static const struct col agent_cols[] = {
	{"ID", "id", 0},
	{"NAME", "name", 24},
	{"MODEL", "default_model_id", 0},
	{"CAPABILITIES", "capabilities", 40},
	{"TAGS", "tags", 20},
	{NULL, NULL, 0},
};
static const struct col harness_cols[] = {
	{"ID", "id", 0},
	{"NAME", "name", 24},
	{"BUILT-IN", "is_built_in", 0},
	{"CAPABILITIES", "capabilities", 50},
	{NULL, NULL, 0},
};
static const struct col model_cols[] = {
	{"ID", "id", 0},
	{"MODEL", "model_id", 30},
	{"PROVIDER", "provider_name", 20},
	{"CAPABILITIES", "capabilities", 0},
	{"ENABLED", "enabled", 0},
	{NULL, NULL, 0},
};
static const struct col provider_cols[] = {
	{"ID", "id", 0},
	{"NAME", "name", 24},
	{"TYPE", "provider_type", 0},
	{"BASE URL", "base_url", 40},
	{"KEY SET", "api_key_set", 0},
	{NULL, NULL, 0},
};
static const struct col capability_cols[] = {
	{"ID", "id", 0},
	{"NAME", "name", 28},
	{"DESCRIPTION", "description", 60},
	{NULL, NULL, 0},
};
static const struct col key_cols[] = {
	{"ID", "id", 0},
	{"NAME", "name", 24},
	{"ROLE", "role", 0},
	{"PREFIX", "key_prefix", 0},
	{"LAST USED", "last_used_at", 0},
	{"EXPIRES", "expires_at", 0},
	{NULL, NULL, 0},
};
static const struct col image_cols[] = {
	{"ID", "id", 0},
	{"FILENAME", "filename", 30},
	{"TYPE", "content_type", 0},
	{"SIZE", "size_bytes", 0},
	{"CREATED", "created_at", 0},
	{NULL, NULL, 0},
};

static const struct resource agents = {"/agents", agent_cols};
static const struct resource harnesses = {"/harnesses", harness_cols};
static const struct resource models = {"/llm-models", model_cols};
static const struct resource providers = {"/llm-providers", provider_cols};
static const struct resource capabilities = {"/capabilities", capability_cols};
static const struct resource keys = {"/auth/api-keys", key_cols};
static const struct resource images = {"/images", image_cols};

static int res_list(struct cli *c, struct args *a, const struct resource *res)
{
	struct buf path = BUF_INIT;
	struct resp r = {0};
	int rc;

	buf_init(&path, 64);
	buf_adds(&path, res->path);
	http_query_add(&path, "limit", args_get(a, "limit"));
	http_query_add(&path, "offset", args_get(a, "offset"));
	http_query_add(&path, "search", args_get(a, "search"));
	rc = http_json(c, "GET", path.data, NULL, &r);
	if (!rc)
		out_resp(c, &r, res->cols);
	resp_release(&r);
	buf_release(&path);
	return rc;
}

/* GET or DELETE of res/<id>. */
static int res_one(struct cli *c, struct args *a, const struct resource *res,
		   const char *method)
{
	struct buf path = BUF_INIT;
	struct resp r = {0};
	int rc;

	buf_init(&path, 64);
	buf_addf(&path, "%s/", res->path);
	http_path_add(&path, a->pos[0], 0);
	rc = http_json(c, method, path.data, NULL, &r);
	if (!rc && !strcmp(method, "DELETE")) {
		out_deleted(c, a->pos[0]);
	} else if (!rc) {
		out_resp(c, &r, NULL);
	}
	resp_release(&r);
	buf_release(&path);
	return rc;
}

#define RES_LIST(name, res)                                                    \
	static int name##_list(struct cli *c, struct args *a)                  \
	{                                                                      \
		return res_list(c, a, &res);                                   \
	}
#define RES_GET(name, res)                                                     \
	static int name##_get(struct cli *c, struct args *a)                   \
	{                                                                      \
		return res_one(c, a, &res, "GET");                             \
	}
#define RES_DELETE(name, res)                                                  \
	static int name##_delete(struct cli *c, struct args *a)                \
	{                                                                      \
		return res_one(c, a, &res, "DELETE");                          \
	}

RES_LIST(agents, agents)
RES_GET(agents, agents)
RES_DELETE(agents, agents)
RES_LIST(harnesses, harnesses)
RES_GET(harnesses, harnesses)
RES_LIST(models, models)
RES_GET(models, models)
RES_LIST(providers, providers)
RES_GET(providers, providers)
RES_LIST(capabilities, capabilities)
RES_GET(capabilities, capabilities)
RES_LIST(keys, keys)
RES_DELETE(keys, keys)
RES_LIST(images, images)
RES_GET(images, images)
RES_DELETE(images, images)

static int agents_create(struct cli *c, struct args *a)
{
	static const char *const plain[][2] = {
		{"name", "name"},
		{"display-name", "display_name"},
		{"description", "description"},
		{"system-prompt", "system_prompt"}};
	struct json_object *body = jx_obj();
	struct resp r = {0};
	const char *s;
	size_t i;
	int rc;

	for (i = 0; i < 4; i++)
		if ((s = args_get(a, plain[i][0])))
			jx_put_str(body, plain[i][1], s);
	cli_put_tags(body, a);
	rc = cli_put_caps(body, a);
	if (!rc)
		rc = cli_put_ref(c, body, "default_model_id", "models",
				 args_get(a, "model"));
	if (!rc)
		rc = cli_put_ref(c, body, "harness_id", "harnesses",
				 args_get(a, "harness"));
	if (!rc)
		rc = http_json(c, "POST", "/agents", body, &r);
	if (!rc)
		out_resp(c, &r, NULL);
	resp_release(&r);
	json_object_put(body);
	return rc;
}

static int keys_create(struct cli *c, struct args *a)
{
	struct json_object *body = jx_obj();
	struct resp r = {0};
	long days = 0;
	int rc;

	rc = args_long(a, "expires-in-days", 1, 3650, &days);
	if (rc)
		goto out;
	if (args_get(a, "name"))
		jx_put_str(body, "name", args_get(a, "name"));
	if (days)
		jx_put_int(body, "expires_in_days", days);
	if (args_get(a, "expires-at"))
		jx_put_str(body, "expires_at", args_get(a, "expires-at"));
	/* the server checks it: member or admin (only an admin may) */
	if (args_get(a, "role"))
		jx_put_str(body, "role", args_get(a, "role"));
	rc = http_json(c, "POST", "/auth/api-keys", body, &r);
	if (!rc && c->json)
		out_json_body(&r);
	else if (!rc)
		printf("%s\n(id %s; the key is shown only this once)\n",
		       jx_gets(r.json, "key") ? jx_gets(r.json, "key") : "?",
		       jx_gets(r.json, "id") ? jx_gets(r.json, "id") : "?");
out:
	resp_release(&r);
	json_object_put(body);
	return rc;
}

static int images_upload(struct cli *c, struct args *a)
{
	curl_mime *mime = http_mime_new(c);
	curl_mimepart *part;
	struct resp r = {0};
	FILE *f = fopen(a->pos[0], "rb");
	int rc;

	if (!f) {
		fprintf(stderr, "everruns: cannot open %s\n", a->pos[0]);
		curl_mime_free(mime);
		return CLI_USAGE;
	}
	fclose(f);
	part = curl_mime_addpart(mime);
	curl_mime_name(part, "file");
	curl_mime_filedata(part, a->pos[0]);
	if (args_get(a, "session")) {
		part = curl_mime_addpart(mime);
		curl_mime_name(part, "session_id");
		curl_mime_data(part, args_get(a, "session"),
			       CURL_ZERO_TERMINATED);
	}
	rc = http_mime(c, "/images", mime, &r);
	if (!rc)
		out_resp(c, &r, NULL);
	curl_mime_free(mime);
	resp_release(&r);
	return rc;
}

static int images_download(struct cli *c, struct args *a)
{
	struct buf path = BUF_INIT;
	struct resp r = {0};
	const char *to = a->npos > 1 ? a->pos[1] : "-";
	FILE *f;
	int rc;

	buf_init(&path, 64);
	buf_adds(&path, "/images/");
	http_path_add(&path, a->pos[0], 0);
	buf_adds(&path, "/content");
	rc = http_json(c, "GET", path.data, NULL, &r);
	if (!rc) {
		f = strcmp(to, "-") ? fopen(to, "wb") : stdout;
		if (!f || fwrite(r.body.data, 1, r.body.len, f) != r.body.len ||
		    (f != stdout && fclose(f))) {
			fprintf(stderr, "everruns: cannot write %s\n", to);
			rc = CLI_USAGE;
		}
	}
	resp_release(&r);
	buf_release(&path);
	return rc;
}

static int me_show(struct cli *c, struct args *a)
{
	struct resp r = {0};
	int rc = http_json(c, "GET", "/auth/me", NULL, &r);

	(void)a;
	if (!rc)
		out_resp(c, &r, NULL);
	resp_release(&r);
	return rc;
}

static const struct optdef page_opts[] = {
	{"limit", OPT_VALUE},
	{"offset", OPT_VALUE},
	{NULL, 0},
};
static const struct optdef agent_list_opts[] = {
	{"limit", OPT_VALUE},
	{"offset", OPT_VALUE},
	{"search", OPT_VALUE},
	{NULL, 0},
};
static const struct optdef agent_create_opts[] = {
	{"name", OPT_VALUE},
	{"display-name", OPT_VALUE},
	{"description", OPT_VALUE},
	{"system-prompt", OPT_VALUE},
	{"model", OPT_VALUE},
	{"harness", OPT_VALUE},
	{"capability", OPT_LIST},
	{"tag", OPT_LIST},
	{NULL, 0},
};
static const struct optdef key_create_opts[] = {
	{"name", OPT_VALUE},
	{"expires-in-days", OPT_VALUE},
	{"expires-at", OPT_VALUE},
	{"role", OPT_VALUE},
	{NULL, 0},
};
static const struct optdef upload_opts[] = {{"session", OPT_VALUE}, {NULL, 0}};

#define PAGE_HELP "A page of --limit (default 20, at most 100) from --offset.\n"
#define END_CMDS                                                               \
	{                                                                      \
		NULL, NULL, NULL, NULL, NULL, 0, 0, 0                          \
	}

const struct cmd agents_cmds[] = {
	{"list", agents_list, agent_list_opts,
	 "agents list [--search TEXT] [--limit N] [--offset N]",
	 "List agents. " PAGE_HELP, 0, 0, 0},
	{"get", agents_get, NULL, "agents get AGENT",
	 "Show an agent (by id or name).\n", 1, 1, 0},
	{"create", agents_create, agent_create_opts,
	 "agents create --name NAME [--display-name T] [--description T] [--system-prompt P] "
	 "[--model MODEL] [--harness HARNESS] [--capability REF[:JSON]]... [--tag T]...",
	 "Create an agent. NAME is a slug unique in the organization.\n", 0, 0,
	 0},
	{"delete", agents_delete, NULL, "agents delete AGENT",
	 "Delete an agent.\n", 1, 1, 0},
	END_CMDS,
};

const struct cmd harnesses_cmds[] = {
	{"list", harnesses_list, page_opts,
	 "harnesses list [--limit N] [--offset N]",
	 "List harnesses (base, generic, platform-chat and your own). " PAGE_HELP,
	 0, 0, 0},
	{"get", harnesses_get, NULL, "harnesses get HARNESS",
	 "Show a harness (by id or name).\n", 1, 1, 0},
	END_CMDS,
};

const struct cmd models_cmds[] = {
	{"list", models_list, page_opts, "models list [--limit N] [--offset N]",
	 "List the LLM models of all providers. " PAGE_HELP, 0, 0, 0},
	{"get", models_get, NULL, "models get MODEL_ID", "Show a model.\n", 1,
	 1, 0},
	END_CMDS,
};

const struct cmd providers_cmds[] = {
	{"list", providers_list, page_opts,
	 "providers list [--limit N] [--offset N]",
	 "List LLM providers (their API keys are never shown). " PAGE_HELP, 0,
	 0, 0},
	{"get", providers_get, NULL, "providers get PROVIDER_ID",
	 "Show a provider.\n", 1, 1, 0},
	END_CMDS,
};

const struct cmd capabilities_cmds[] = {
	{"list", capabilities_list, page_opts,
	 "capabilities list [--limit N] [--offset N]",
	 "List the built-in capabilities (tools) sessions and agents can use. " PAGE_HELP,
	 0, 0, 0},
	{"get", capabilities_get, NULL, "capabilities get REF",
	 "Show a capability: its prompt, tools and config schema.\n", 1, 1, 0},
	END_CMDS,
};

const struct cmd apikeys_cmds[] = {
	{"list", keys_list, page_opts, "api-keys list [--limit N] [--offset N]",
	 "List the organization's API keys (prefixes only). " PAGE_HELP, 0, 0,
	 0},
	{"create", keys_create, key_create_opts,
	 "api-keys create [--name NAME] [--role member|admin] "
	 "[--expires-in-days N | --expires-at RFC3339]",
	 "Create an API key; it is printed once. --role member (the "
	 "default) may use sessions, messages, files and images and read "
	 "agents and models; admin may do everything (only an admin key "
	 "can create one).\n",
	 0, 0, 0},
	{"delete", keys_delete, NULL, "api-keys delete KEY_ID",
	 "Revoke an API key.\n", 1, 1, 0},
	END_CMDS,
};

const struct cmd images_cmds[] = {
	{"upload", images_upload, upload_opts,
	 "images upload FILE [--session SESSION]",
	 "Upload an image (png, jpeg, gif, webp) to attach to messages\n"
	 "(everruns messages send SESSION TEXT --image IMAGE_ID).\n",
	 1, 1, 0},
	{"list", images_list, page_opts, "images list [--limit N] [--offset N]",
	 "List uploaded images. " PAGE_HELP, 0, 0, 0},
	{"get", images_get, NULL, "images get IMAGE_ID",
	 "Show an image's metadata.\n", 1, 1, 0},
	{"download", images_download, NULL,
	 "images download IMAGE_ID [LOCAL|-]",
	 "Write an image's bytes to LOCAL (default: standard output).\n", 1, 2,
	 0},
	{"delete", images_delete, NULL, "images delete IMAGE_ID",
	 "Delete an image.\n", 1, 1, 0},
	END_CMDS,
};

const struct cmd me_cmds[] = {
	{NULL, me_show, NULL, "me",
	 "Show the user, organization and key of the API key.\n", 0, 0, 0},
	END_CMDS,
};
