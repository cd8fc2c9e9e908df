/*
 * fs: the session filesystem (/sessions/{id}/fs...): ls, cat, get, put,
 * mkdir, rm, mv, cp, grep, stat. Paths are the session's ("/notes.txt";
 * a missing leading '/' is added). File bytes travel raw both ways
 * (PUT with application/octet-stream, GET /fs/_/download/...), so binary
 * files are copied exactly.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const struct col file_cols[] = {
	{"TYPE", "kind", 0},
	{"SIZE", "size_bytes", 0},
	{"UPDATED", "updated_at", 0},
	{"PATH", "path", 0},
	{NULL, NULL, 0},
};

int cli_read_file(const char *path, struct buf *b)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char tmp[65536];
	size_t n;
	int rc = CLI_OK;

	if (!f) {
		fprintf(stderr, "everruns: cannot open %s: %s\n", path,
			strerror(errno));
		return CLI_USAGE;
	}
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_add(b, tmp, n);
	if (ferror(f)) {
		fprintf(stderr, "everruns: cannot read %s: %s\n", path,
			strerror(errno));
		rc = CLI_USAGE;
	}
	if (f != stdin)
		fclose(f);
	return rc;
}

/* "/sessions/<sid>/fs" + action + the session path (encoded). */
static void fs_path(struct buf *b, const char *sid, const char *action,
		    const char *path)
{
	cli_session_path(b, sid, "/fs");
	if (action)
		buf_adds(b, action);
	if (path && *path && strcmp(path, "/")) {
		if (*path != '/')
			buf_addch(b, '/');
		http_path_add(b, path, 1);
	}
}

/* The session path as the API wants it in bodies: absolute. */
static char *abs_path(const char *p)
{
	struct buf b = BUF_INIT;

	buf_init(&b, strlen(p) + 2);
	if (*p != '/')
		buf_addch(&b, '/');
	buf_adds(&b, p);
	return buf_detach(&b, NULL);
}

static int cmd_ls(struct cli *c, struct args *a)
{
	struct buf path;
	struct resp r = {0};
	struct json_object *data;
	int rc;

	fs_path(&path, a->pos[0], NULL, a->npos > 1 ? a->pos[1] : NULL);
	if (args_has(a, "recursive"))
		http_query_add(&path, "recursive", "true");
	rc = http_json(c, "GET", path.data, NULL, &r);
	if (rc || c->json) {
		if (!rc)
			out_json_body(&r);
		goto out;
	}
	data = jx_get(r.json, "data");
	if (!data) { /* a file: show it as a listing of one */
		data = json_object_new_array();
		json_object_array_add(data, json_object_get(r.json));
		json_object_object_add(r.json, "data", data);
	}
	for (size_t i = 0; i < json_object_array_length(data); i++) {
		struct json_object *f = json_object_array_get_idx(data, i);
		jx_put_str(f, "kind",
			   json_object_get_boolean(jx_get(f, "is_directory"))
				   ? "dir"
				   : "file");
	}
	out_table(data, file_cols);
out:
	resp_release(&r);
	buf_release(&path);
	return rc;
}

/* The raw bytes of a file into r. */
static int download(struct cli *c, const char *sid, const char *p,
		    struct resp *r)
{
	struct buf path;
	int rc;

	fs_path(&path, sid, "/_/download", p);
	rc = http_json(c, "GET", path.data, NULL, r);
	buf_release(&path);
	return rc;
}

static int cmd_cat(struct cli *c, struct args *a)
{
	struct resp r = {0};
	int rc = download(c, a->pos[0], a->pos[1], &r);

	if (!rc)
		fwrite(r.body.data, 1, r.body.len, stdout);
	resp_release(&r);
	return rc;
}

static int cmd_get(struct cli *c, struct args *a)
{
	struct resp r = {0};
	const char *to = a->npos > 2 ? a->pos[2] : strrchr(a->pos[1], '/');
	FILE *f;
	int rc;

	if (!to || !*to || !strcmp(to, "/"))
		to = a->pos[1];
	else if (a->npos <= 2)
		to++; /* the base name */
	if (!*to) {
		fprintf(stderr, "everruns: give a local file name\n");
		return CLI_USAGE;
	}
	rc = download(c, a->pos[0], a->pos[1], &r);
	if (rc)
		goto out;
	f = strcmp(to, "-") ? fopen(to, "wb") : stdout;
	if (!f || fwrite(r.body.data, 1, r.body.len, f) != r.body.len ||
	    (f != stdout && fclose(f))) {
		fprintf(stderr, "everruns: cannot write %s: %s\n", to,
			strerror(errno));
		rc = CLI_USAGE;
	} else if (f != stdout && !c->json) {
		fprintf(stderr, "%s: %zu bytes\n", to, r.body.len);
	}
out:
	resp_release(&r);
	return rc;
}

static int cmd_put(struct cli *c, struct args *a)
{
	struct buf path, data = BUF_INIT;
	struct resp r = {0};
	int rc;

	buf_init(&data, 4096);
	rc = cli_read_file(a->npos > 2 ? a->pos[2] : "-", &data);
	if (rc) {
		buf_release(&data);
		return rc;
	}
	fs_path(&path, a->pos[0], NULL, a->pos[1]);
	if (args_has(a, "no-overwrite"))
		rc = http_raw(c, "POST", path.data, "application/octet-stream",
			      data.data, data.len, &r);
	else
		rc = http_raw(c, "PUT", path.data, "application/octet-stream",
			      data.data, data.len, &r);
	if (!rc && c->json)
		out_json_body(&r);
	else if (!rc)
		printf("wrote %s (%zu bytes)\n",
		       jx_gets(r.json, "path") ? jx_gets(r.json, "path")
					       : a->pos[1],
		       data.len);
	resp_release(&r);
	buf_release(&path);
	buf_release(&data);
	return rc;
}

static int cmd_mkdir(struct cli *c, struct args *a)
{
	struct json_object *body = jx_obj();
	struct buf path;
	struct resp r = {0};
	int rc;

	json_object_object_add(body, "is_directory",
			       json_object_new_boolean(1));
	fs_path(&path, a->pos[0], NULL, a->pos[1]);
	rc = http_json(c, "POST", path.data, body, &r);
	if (!rc)
		out_resp(c, &r, NULL);
	json_object_put(body);
	resp_release(&r);
	buf_release(&path);
	return rc;
}

static int cmd_rm(struct cli *c, struct args *a)
{
	struct buf path;
	struct resp r = {0};
	int rc;

	fs_path(&path, a->pos[0], NULL, a->pos[1]);
	if (args_has(a, "recursive"))
		http_query_add(&path, "recursive", "true");
	rc = http_json(c, "DELETE", path.data, NULL, &r);
	if (!rc && c->json)
		out_json_body(&r);
	else if (!rc)
		printf("deleted %s\n", a->pos[1]);
	resp_release(&r);
	buf_release(&path);
	return rc;
}

/* POST /fs/_/<action> with body; prints the result with print. */
static int action(struct cli *c, const char *sid, const char *act,
		  struct json_object *body, void (*print)(struct resp *))
{
	struct buf path;
	struct resp r = {0};
	int rc;

	cli_session_path(&path, sid, "/fs/_/");
	buf_adds(&path, act);
	rc = http_json(c, "POST", path.data, body, &r);
	if (!rc && c->json)
		out_json_body(&r);
	else if (!rc)
		print(&r);
	json_object_put(body);
	resp_release(&r);
	buf_release(&path);
	return rc;
}

static void print_fields(struct resp *r)
{
	out_fields(r->json);
}

static int move_copy(struct cli *c, struct args *a, const char *act)
{
	struct json_object *body = jx_obj();
	char *src = abs_path(a->pos[1]), *dst = abs_path(a->pos[2]);

	jx_put_str(body, "src_path", src);
	jx_put_str(body, "dst_path", dst);
	free(src);
	free(dst);
	return action(c, a->pos[0], act, body, print_fields);
}

static int cmd_mv(struct cli *c, struct args *a)
{
	return move_copy(c, a, "move");
}

static int cmd_cp(struct cli *c, struct args *a)
{
	return move_copy(c, a, "copy");
}

static int cmd_stat(struct cli *c, struct args *a)
{
	struct json_object *body = jx_obj();
	char *p = abs_path(a->pos[1]);

	jx_put_str(body, "path", p);
	free(p);
	return action(c, a->pos[0], "stat", body, print_fields);
}

/* "path:line: text" per match; the matches may be grouped per file
 * ({path, matches:[...]}) or flat. */
static void print_one_match(struct json_object *m, const char *file)
{
	const char *p = jx_gets(m, "path");

	printf("%s:", p ? p : file ? file : "?");
	if (jx_get(m, "line_number"))
		printf("%s:", json_object_get_string(jx_get(m, "line_number")));
	printf(" %s\n", jx_gets(m, "line") ? jx_gets(m, "line") : "");
}

static void print_grep(struct resp *r)
{
	struct json_object *data = jx_get(r->json, "data");
	size_t i, j, n = data ? json_object_array_length(data) : 0;

	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(data, i);
		struct json_object *ms = jx_get(e, "matches");
		if (!ms) {
			print_one_match(e, NULL);
			continue;
		}
		for (j = 0; j < json_object_array_length(ms); j++)
			print_one_match(json_object_array_get_idx(ms, j),
					jx_gets(e, "path"));
	}
}

static int cmd_grep(struct cli *c, struct args *a)
{
	struct json_object *body = jx_obj();

	jx_put_str(body, "pattern", a->pos[1]);
	if (args_get(a, "path-pattern"))
		jx_put_str(body, "path_pattern", args_get(a, "path-pattern"));
	return action(c, a->pos[0], "grep", body, print_grep);
}

static const struct optdef rec_opts[] = {{"recursive", OPT_FLAG}, {NULL, 0}};
static const struct optdef put_opts[] = {{"no-overwrite", OPT_FLAG}, {NULL, 0}};
static const struct optdef grep_opts[] = {{"path-pattern", OPT_VALUE},
					  {NULL, 0}};

const struct cmd fs_cmds[] = {
	{"ls", cmd_ls, rec_opts, "fs ls SESSION [PATH] [--recursive]",
	 "List a directory of the session's filesystem (default: the root).\n",
	 1, 2, 0},
	{"cat", cmd_cat, NULL, "fs cat SESSION PATH", "Print a file's bytes.\n",
	 2, 2, 0},
	{"get", cmd_get, NULL, "fs get SESSION PATH [LOCAL|-]",
	 "Download a file to LOCAL (default: its base name in the current directory;\n"
	 "'-': standard output).\n",
	 2, 3, 0},
	{"put", cmd_put, put_opts,
	 "fs put SESSION PATH [LOCAL|-] [--no-overwrite]",
	 "Upload LOCAL (default: standard input) as PATH, creating parent directories\n"
	 "and replacing an existing file unless --no-overwrite (then it is a 409).\n",
	 2, 3, 0},
	{"mkdir", cmd_mkdir, NULL, "fs mkdir SESSION PATH",
	 "Create a directory (and its parents).\n", 2, 2, 0},
	{"rm", cmd_rm, rec_opts, "fs rm SESSION PATH [--recursive]",
	 "Delete a file, or a directory (--recursive when it is not empty).\n",
	 2, 2, 0},
	{"mv", cmd_mv, NULL, "fs mv SESSION SRC DST",
	 "Move or rename a file or directory.\n", 3, 3, 0},
	{"cp", cmd_cp, NULL, "fs cp SESSION SRC DST", "Copy a file.\n", 3, 3,
	 0},
	{"grep", cmd_grep, grep_opts,
	 "fs grep SESSION PATTERN [--path-pattern GLOB]",
	 "Search file contents with a POSIX extended regular expression; prints\n"
	 "path:line: text per match. --path-pattern limits the files ('*.py').\n",
	 2, 2, 0},
	{"stat", cmd_stat, NULL, "fs stat SESSION PATH",
	 "Show a file's or directory's metadata.\n", 2, 2, 0},
	{NULL, NULL, NULL, NULL, NULL, 0, 0, 0},
};
