/*
 * events: everruns events list (the log, a page at a time) and events
 * tail (the live stream, one line per event, resuming after drops until
 * Ctrl-C, or the end of the running turn with --until-idle).
 *
 * tail without --since starts at the session's current last event (read
 * first), not at "whatever is new when the stream connects", so that a
 * drop before the first event still resumes from a known cursor.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define EXIT_INTERRUPTED 130

static const struct col event_cols[] = {
	{"SEQ", "sequence", 0},    {"TYPE", "type", 0}, {"TIME", "ts", 0},
	{"DETAIL", "summary", 70}, {NULL, NULL, 0},
};

static void summarize(struct buf *b, struct json_object *ev)
{
	const char *t = jx_gets(ev, "type");
	struct json_object *d = jx_get(ev, "data"), *msg = jx_get(d, "message");

	if (!t)
		return;
	if (msg) {
		out_parts(b, jx_get(msg, "content"));
	} else if (!strcmp(t, "tool.started")) {
		struct json_object *tc = jx_get(d, "tool_call");
		buf_addf(b, "%s ",
			 jx_gets(tc, "name") ? jx_gets(tc, "name") : "?");
		out_value(b, tc, "arguments");
	} else if (!strcmp(t, "tool.completed")) {
		buf_addf(b, "%s %s",
			 jx_gets(d, "tool_name") ? jx_gets(d, "tool_name")
						 : "?",
			 jx_gets(d, "status") ? jx_gets(d, "status") : "");
		if (jx_gets(d, "error"))
			buf_addf(b, ": %s", jx_gets(d, "error"));
	} else if (!strcmp(t, "turn.failed")) {
		buf_addf(b, "%s (%s)",
			 jx_gets(d, "error") ? jx_gets(d, "error") : "",
			 jx_gets(d, "error_code") ? jx_gets(d, "error_code")
						  : "");
	} else if (!strcmp(t, "turn.completed")) {
		buf_adds(b, "stop_reason=");
		out_value(b, d, "stop_reason");
	} else if (!strcmp(t, "output.message.delta") ||
		   !strcmp(t, "reason.thinking.delta") ||
		   !strcmp(t, "tool.output.delta")) {
		out_value(b, d, "delta");
	} else if (!strcmp(t, "file.written")) {
		out_value(b, d, "path");
	} else if (!strcmp(t, "tool.call_requested") ||
		   !strcmp(t, "tool.approval_requested")) {
		/* the ids to answer with (sessions tool-results / approve) */
		struct json_object *calls = jx_get(d, "tool_calls");
		size_t i, n = json_object_is_type(calls, json_type_array)
				      ? json_object_array_length(calls)
				      : 0;
		for (i = 0; i < n; i++) {
			struct json_object *tc =
				json_object_array_get_idx(calls, i);
			buf_addf(b, "%s%s ", i ? "; " : "",
				 jx_gets(tc, "id") ? jx_gets(tc, "id") : "?");
			out_value(b, tc, "name");
			buf_addch(b, ' ');
			out_value(b, tc, "arguments");
		}
	} else if (!strcmp(t, "tool.approval_resolved")) {
		struct json_object *ok = jx_get(d, "approved");
		buf_addf(b, "%s %s",
			 jx_gets(d, "tool_call_id") ? jx_gets(d, "tool_call_id")
						    : "?",
			 ok && json_object_get_boolean(ok) ? "approved"
							   : "denied");
		if (jx_gets(d, "reason"))
			buf_addf(b, ": %s", jx_gets(d, "reason"));
	}
}

/* The query of --type / --exclude (repeatable) in b. */
static void add_filters(struct buf *b, const struct args *a)
{
	const char *v;
	int i;

	for (i = 0; (v = args_nth(a, "type", i)); i++)
		http_query_add(b, "types", v);
	for (i = 0; (v = args_nth(a, "exclude", i)); i++)
		http_query_add(b, "exclude", v);
}

static int cmd_list(struct cli *c, struct args *a)
{
	struct buf path;
	struct resp r = {0};
	int rc;

	cli_session_path(&path, a->pos[0], "/events");
	http_query_add(&path, "since_sequence", args_get(a, "since"));
	http_query_add(&path, "since_id", args_get(a, "since-id"));
	http_query_add(&path, "before_sequence", args_get(a, "before"));
	http_query_add(&path, "limit", args_get(a, "limit"));
	add_filters(&path, a);
	rc = http_json(c, "GET", path.data, NULL, &r);
	if (!rc)
		out_log(c, &r, event_cols, summarize);
	resp_release(&r);
	buf_release(&path);
	return rc;
}

struct tail {
	int json, until_idle;
	struct buf line;
};

static int on_frame(void *ud, const struct sse_frame *f)
{
	struct tail *t = ud;

	if (!f->json)
		return 0;
	if (t->json) {
		out_json(f->json);
	} else {
		struct json_object *seq = jx_get(f->json, "sequence");
		buf_reset(&t->line);
		summarize(&t->line, f->json);
		for (size_t i = 0; i < t->line.len; i++)
			if ((unsigned char)t->line.data[i] < 0x20)
				t->line.data[i] = ' ';
		printf("%-6s %-26s %s\n",
		       seq && f->id ? json_object_get_string(seq) : "-",
		       f->event, t->line.data);
	}
	fflush(stdout);
	return t->until_idle && !strcmp(f->event, "session.idled");
}

/* The sequence of the session's last event (0 if none); -1 on error. */
static long last_sequence(struct cli *c, const char *sid)
{
	struct buf path;
	struct resp r = {0};
	long seq = -1;

	cli_session_path(&path, sid,
			 "/events?before_sequence=9223372036854775807&limit=1");
	if (http_json(c, "GET", path.data, NULL, &r) == CLI_OK) {
		struct json_object *data = jx_get(r.json, "data");
		seq = data && json_object_array_length(data)
			      ? (long)json_object_get_int64(jx_get(
					json_object_array_get_idx(data, 0),
					"sequence"))
			      : 0;
	}
	resp_release(&r);
	buf_release(&path);
	return seq;
}

static int cmd_tail(struct cli *c, struct args *a)
{
	struct tail t = {c->json, args_has(a, "until-idle"), BUF_INIT};
	struct sse_handler h = {on_frame, NULL, &t};
	struct buf filters = BUF_INIT;
	long since = -1;
	enum sse_end end;
	int rc;

	rc = args_long(a, "since", 0, 0x7fffffffffffffffL, &since);
	if (rc)
		return rc;
	if (since < 0 && (since = last_sequence(c, a->pos[0])) < 0)
		return CLI_API;
	buf_init(&filters, 64);
	add_filters(&filters, a);
	/* --until-idle needs to see session.idled whatever --type says */
	if (t.until_idle && args_has(a, "type"))
		http_query_add(&filters, "types", "session.idled");
	if (!args_has(a, "deltas") && !args_has(a, "type")) {
		http_query_add(&filters, "exclude", "output.message.delta");
		http_query_add(&filters, "exclude", "reason.thinking.delta");
		http_query_add(&filters, "exclude", "tool.output.delta");
	}
	buf_init(&t.line, 128);
	end = sse_follow(c, a->pos[0], filters.data + (filters.len ? 1 : 0),
			 since, &h);
	if (end == SSE_DELETED) {
		fprintf(stderr, "everruns: the session was deleted\n");
		rc = CLI_API;
	} else if (end == SSE_FAILED) {
		rc = CLI_API;
	} else if (cli_sigints) {
		rc = EXIT_INTERRUPTED;
	}
	buf_release(&t.line);
	buf_release(&filters);
	return rc;
}

static const struct optdef list_opts[] = {
	{"since", OPT_VALUE},
	{"since-id", OPT_VALUE},
	{"before", OPT_VALUE},
	{"limit", OPT_VALUE},
	{"type", OPT_LIST},
	{"exclude", OPT_LIST},
	{NULL, 0},
};
static const struct optdef tail_opts[] = {
	{"since", OPT_VALUE}, {"type", OPT_LIST},       {"exclude", OPT_LIST},
	{"deltas", OPT_FLAG}, {"until-idle", OPT_FLAG}, {NULL, 0},
};

const struct cmd events_cmds[] = {
	{"list", cmd_list, list_opts,
	 "events list SESSION [--since SEQ | --since-id EVT | --before SEQ] [--limit N] "
	 "[--type T]... [--exclude T]...",
	 "A page of the session's event log, oldest first (--limit 1..1000).\n",
	 1, 1, 0},
	{"tail", cmd_tail, tail_opts,
	 "events tail SESSION [--since SEQ] [--type T]... [--exclude T]... [--deltas] [--until-idle]",
	 "Follow the session's events live, one line each (--json: the event as one\n"
	 "line of JSON). Starts after the current last event, or after sequence\n"
	 "--since. Text deltas are left out unless --deltas or --type asks. A\n"
	 "dropped stream is resumed where it stopped (Last-Event-ID), also across\n"
	 "a server restart (it gives up, exit 1, after 2 minutes without a\n"
	 "connection). Runs until Ctrl-C (exit 130), or with --until-idle until\n"
	 "the next session.idled (exit 0; it is shown whatever --type says).\n",
	 1, 1, 0},
	{NULL, NULL, NULL, NULL, NULL, 0, 0, 0},
};
