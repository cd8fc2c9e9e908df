/*
 * answers: what a waiting turn waits for (session status
 * waitingfortoolresults): the results of client-side tool calls
 * (tool.call_requested) and approvals of calls that need one
 * (tool.approval_requested).
 *
 *   everruns sessions tool-results SESSION --call ID (--result JSON | --error
 * TEXT) ... POST /sessions/{id}/tool-results everruns sessions approve SESSION
 * --call ID... [--deny [--reason TEXT]] POST /sessions/{id}/tool-approvals
 *
 * and the question `everruns chat` asks for each call that needs
 * approval (cli_ask_approvals, called by turn.c), also when chat opens a
 * session that already waits (cli_resume_waiting). Tool names and
 * arguments come from the model: they are shown through render_preview(),
 * which replaces control characters, so no escape sequence reaches the
 * terminal.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"

/* POST the answers (an array, consumed) to tail ("/tool-results" or
 * "/tool-approvals") under member; prints the outcome. */
static int post_answers(struct cli *c, const char *sid, const char *tail,
			const char *member, struct json_object *list,
			const char *what)
{
	struct json_object *body = jx_obj();
	struct buf path;
	struct resp r = {0};
	int rc;

	json_object_object_add(body, member, list);
	cli_session_path(&path, sid, tail);
	rc = http_json(c, "POST", path.data, body, &r);
	if (!rc && c->json) {
		out_json_body(&r);
	} else if (!rc) {
		struct json_object *n = jx_get(r.json, "accepted");
		const char *st = jx_gets(r.json, "status");
		printf("%s %d; the session is %s\n", what,
		       n ? json_object_get_int(n) : 0,
		       st && !strcmp(st, "waitingfortoolresults")
			       ? "still waiting (more calls are pending)"
		       : st ? st
			    : "?");
	}
	resp_release(&r);
	buf_release(&path);
	json_object_put(body);
	return rc;
}

/* res's "result": the JSON value of text v, any value (a number, a
 * string, null too: parsed as the only element of an array, since the
 * parser reads only objects and arrays to the end). 0, or CLI_USAGE
 * (printed). */
static int result_value(struct json_object *res, const char *v)
{
	struct buf b = BUF_INIT;
	struct apierr e = {0};
	struct json_object *arr;

	buf_init(&b, strlen(v) + 3);
	buf_addf(&b, "[%s]", v);
	arr = jx_parse(b.data, b.len, &e);
	buf_release(&b);
	if (!arr || json_object_array_length(arr) != 1) {
		fprintf(stderr,
			"everruns: --result must be one JSON value (%s); text is a JSON string: --result '\"text\"'\n",
			arr ? "not a list of them" : e.msg);
		json_object_put(arr);
		return CLI_USAGE;
	}
	json_object_object_add(
		res, "result",
		json_object_get(json_object_array_get_idx(arr, 0)));
	json_object_put(arr);
	return 0;
}

/* --call ID followed by its --result JSON or --error TEXT, as many times
 * as there are calls to answer (options keep their order). */
int cmd_tool_results(struct cli *c, struct args *a)
{
	struct json_object *list = json_object_new_array(), *cur = NULL;
	int i, answered = 1;

	for (i = 0; i < a->nopt; i++) {
		const char *n = a->opt[i].name, *v = a->opt[i].val;
		if (!strcmp(n, "call")) {
			if (!answered)
				break;
			cur = jx_obj();
			jx_put_str(cur, "tool_call_id", v);
			json_object_array_add(list, cur);
			answered = 0;
		} else if (!strcmp(n, "result") || !strcmp(n, "error")) {
			if (!cur || answered) {
				fprintf(stderr,
					"everruns: --%s must follow the --call it answers (one answer per --call)\n",
					n);
				json_object_put(list);
				return CLI_USAGE;
			}
			if (n[0] == 'e') {
				jx_put_str(cur, "error", v);
			} else if (result_value(cur, v)) {
				json_object_put(list);
				return CLI_USAGE;
			}
			answered = 1;
		}
	}
	if (!cur || !answered) {
		fprintf(stderr, "everruns: %s\n",
			cur ? "each --call needs its --result JSON or --error TEXT"
			    : "give --call ID with --result JSON or --error TEXT");
		json_object_put(list);
		return CLI_USAGE;
	}
	return post_answers(c, a->pos[0], "/tool-results", "tool_results", list,
			    "results accepted:");
}

int cmd_approve(struct cli *c, struct args *a)
{
	struct json_object *list;
	const char *id, *reason = args_get(a, "reason");
	int i, deny = args_has(a, "deny");

	if (!args_has(a, "call")) {
		fprintf(stderr, "everruns: give --call ID (the call to answer; "
				"tool.approval_requested names it)\n");
		return CLI_USAGE;
	}
	if (reason && !deny) {
		fprintf(stderr, "everruns: --reason goes with --deny\n");
		return CLI_USAGE;
	}
	list = json_object_new_array();
	for (i = 0; (id = args_nth(a, "call", i)); i++) {
		struct json_object *o = jx_obj();
		jx_put_str(o, "tool_call_id", id);
		json_object_object_add(o, "approved",
				       json_object_new_boolean(!deny));
		if (reason)
			jx_put_str(o, "reason", reason);
		json_object_array_add(list, o);
	}
	return post_answers(c, a->pos[0], "/tool-approvals", "approvals", list,
			    deny ? "denied:" : "approved:");
}

/* One line from standard input into b (without its newline). 1: a line,
 * 0: end of input, -1: interrupted (Ctrl-C). */
static int read_answer(struct buf *b)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	buf_reset(b);
	errno = 0;
	n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		return errno == EINTR || cli_sigints ? -1 : 0;
	}
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	buf_add(b, line, (size_t)n);
	free(line);
	return 1;
}

/* "y"/"yes": approve; "n REASON" (or "no: REASON"): deny with a reason;
 * anything else, an empty line or the end of input: deny. */
static struct json_object *parse_answer(const char *id, const char *s)
{
	struct json_object *o = jx_obj();
	size_t k;

	while (*s == ' ' || *s == '\t')
		s++;
	jx_put_str(o, "tool_call_id", id);
	if (!strcasecmp(s, "y") || !strcasecmp(s, "yes")) {
		json_object_object_add(o, "approved",
				       json_object_new_boolean(1));
		return o;
	}
	json_object_object_add(o, "approved", json_object_new_boolean(0));
	k = !strncasecmp(s, "no", 2) ? 2 : !strncasecmp(s, "n", 1) ? 1 : 0;
	if (k && (s[k] == ' ' || s[k] == ':' || s[k] == ',')) {
		s += k + 1;
		while (*s == ' ' || *s == ':' || *s == '\t')
			s++;
		if (*s)
			jx_put_str(o, "reason", s);
	}
	return o;
}

int cli_ask_approvals(struct cli *c, const char *sid, struct json_object *calls,
		      int *interrupted)
{
	struct json_object *list = json_object_new_array();
	struct buf line = BUF_INIT, name = BUF_INIT, args = BUF_INIT;
	size_t i, n = json_object_is_type(calls, json_type_array)
			      ? json_object_array_length(calls)
			      : 0;
	int rc = CLI_OK, eof = 0;

	*interrupted = 0;
	buf_init(&line, 128);
	for (i = 0; i < n; i++) {
		struct json_object *tc = json_object_array_get_idx(calls, i);
		const char *id = jx_gets(tc, "id");
		int got = 0;

		if (!id)
			continue;
		buf_reset(&name);
		buf_reset(&args);
		render_preview(&name, jx_get(tc, "name"));
		render_preview(&args, jx_get(tc, "arguments"));
		fflush(stdout);
		fprintf(stderr, "Allow %s(%s)? [y/N] ",
			name.len ? name.data : "?", args.len ? args.data : "");
		fflush(stderr);
		if (!eof) {
			got = read_answer(&line);
			if (got < 0) {
				fprintf(stderr, "\n");
				*interrupted = 1;
				break;
			}
			eof = !got;
			if (got && !isatty(0)) /* no echo: show the answer */
				fprintf(stderr, "%s\n", line.data);
		}
		if (eof) {
			buf_reset(&line);
			fprintf(stderr, "(no answer: denied)\n");
		}
		json_object_array_add(
			list, parse_answer(id, line.data ? line.data : ""));
	}
	buf_release(&line);
	buf_release(&name);
	buf_release(&args);
	if (*interrupted || !json_object_array_length(list)) {
		json_object_put(list);
		return CLI_OK;
	}
	{
		/* the outcome shows as the stream goes on
		 * (tool.approval_resolved) */
		struct json_object *body = jx_obj();
		struct buf path;
		struct resp r = {0};
		json_object_object_add(body, "approvals", list);
		cli_session_path(&path, sid, "/tool-approvals");
		rc = http_json(c, "POST", path.data, body, &r);
		resp_release(&r);
		buf_release(&path);
		json_object_put(body);
	}
	return rc;
}

/* The calls of list (tool_calls of request events) whose id is a key of
 * neither done1 nor done2 (NULL: none); a new array. */
static struct json_object *still_open(struct json_object *list,
				      struct json_object *done1,
				      struct json_object *done2)
{
	struct json_object *out = json_object_new_array();
	size_t i, n = json_object_array_length(list);

	for (i = 0; i < n; i++) {
		struct json_object *tc = json_object_array_get_idx(list, i);
		const char *id = jx_gets(tc, "id");
		if (id && !jx_get(done1, id) && !(done2 && jx_get(done2, id)))
			json_object_array_add(out, json_object_get(tc));
	}
	return out;
}

/* What the session's current turn asked and what was answered: the log
 * since its last session.activated, a page at a time (only the types that
 * matter). Fills the four containers; *last: the last sequence read. */
static int read_requests(struct cli *c, const char *sid,
			 struct json_object **asked,
			 struct json_object **called,
			 struct json_object **resolved,
			 struct json_object **completed, long *last)
{
	static const char *const types[] = {
		"session.activated", "tool.approval_requested",
		"tool.call_requested", "tool.approval_resolved",
		"tool.completed"};
	int more = 1, rc = CLI_OK;
	size_t i;

	while (more && rc == CLI_OK) {
		struct buf path;
		struct resp r = {0};
		struct json_object *data;
		size_t n;
		char num[32];

		cli_session_path(&path, sid, "/events");
		snprintf(num, sizeof(num), "%ld", *last);
		http_query_add(&path, "since_sequence", num);
		http_query_add(&path, "limit", "1000");
		for (i = 0; i < sizeof(types) / sizeof(*types); i++)
			http_query_add(&path, "types", types[i]);
		rc = http_json(c, "GET", path.data, NULL, &r);
		data = jx_get(r.json, "data");
		n = !rc && json_object_is_type(data, json_type_array)
			    ? json_object_array_length(data)
			    : 0;
		for (i = 0; i < n; i++) {
			struct json_object *ev =
				json_object_array_get_idx(data, i);
			struct json_object *d = jx_get(ev, "data"), *calls;
			const char *t = jx_gets(ev, "type"),
				   *id = jx_gets(d, "tool_call_id");
			size_t k;

			*last = (long)json_object_get_int64(
				jx_get(ev, "sequence"));
			if (!t)
				continue;
			if (!strcmp(t, "session.activated")) {
				json_object_put(*asked);
				json_object_put(*called);
				json_object_put(*resolved);
				json_object_put(*completed);
				*asked = json_object_new_array();
				*called = json_object_new_array();
				*resolved = jx_obj();
				*completed = jx_obj();
			} else if (!strcmp(t, "tool.approval_resolved") && id) {
				json_object_object_add(
					*resolved, id,
					json_object_new_boolean(1));
			} else if (!strcmp(t, "tool.completed") && id) {
				json_object_object_add(
					*completed, id,
					json_object_new_boolean(1));
			} else if ((calls = jx_get(d, "tool_calls")) &&
				   json_object_is_type(calls,
						       json_type_array)) {
				struct json_object *to =
					!strcmp(t, "tool.approval_requested")
						? *asked
						: *called;
				for (k = 0; k < json_object_array_length(calls);
				     k++)
					json_object_array_add(
						to,
						json_object_get(
							json_object_array_get_idx(
								calls, k)));
			}
		}
		more = n > 0 &&
		       json_object_get_boolean(jx_get(r.json, "has_more"));
		resp_release(&r);
		buf_release(&path);
	}
	return rc;
}

int cli_resume_waiting(struct cli *c, const char *sid, int *exit_now)
{
	struct json_object *asked = json_object_new_array(),
			   *called = json_object_new_array(),
			   *resolved = jx_obj(), *completed = jx_obj();
	struct json_object *ask = NULL, *run = NULL;
	long last = 0;
	int rc, interrupted = 0;

	rc = read_requests(c, sid, &asked, &called, &resolved, &completed,
			   &last);
	if (rc)
		goto out;
	ask = still_open(asked, resolved, completed);
	run = still_open(called, completed, NULL);
	fprintf(stderr, "[the session waits for answers]\n");
	if (json_object_array_length(run)) {
		struct render r;
		struct json_object *d = jx_obj();
		render_init(&r, c->json);
		r.sid = sid;
		r.ask = 1;
		json_object_object_add(d, "tool_calls", json_object_get(run));
		render_announce(&r, "tool.call_requested", d);
		json_object_put(d);
	}
	if (json_object_array_length(ask)) {
		cli_sig_drain();
		cli_ask_approvals(c, sid, ask, &interrupted);
		if (interrupted || cli_sigints) {
			struct buf path;
			struct resp r = {0};
			cli_sigints = 0;
			cli_sig_drain();
			fprintf(stderr, "[cancelling the turn]\n");
			cli_session_path(&path, sid, "/cancel");
			http_raw(c, "POST", path.data, NULL, NULL, 0, &r);
			resp_release(&r);
			buf_release(&path);
		}
	}
	rc = cli_follow_turn(c, sid, last, 1, exit_now);
out:
	json_object_put(asked);
	json_object_put(called);
	json_object_put(resolved);
	json_object_put(completed);
	json_object_put(ask);
	json_object_put(run);
	return rc;
}

const struct optdef tool_results_opts[] = {
	{"call", OPT_LIST},
	{"result", OPT_LIST},
	{"error", OPT_LIST},
	{NULL, 0},
};
const struct optdef approve_opts[] = {
	{"call", OPT_LIST},
	{"deny", OPT_FLAG},
	{"reason", OPT_VALUE},
	{NULL, 0},
};
