/*
 * messages: everruns messages send / list.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const struct col message_cols[] = {
	{"SEQ", "sequence", 0},
	{"ROLE", "role", 0},
	{"CREATED", "created_at", 0},
	{"CONTENT", "summary", 70},
	{NULL, NULL, 0},
};

static void summarize(struct buf *b, struct json_object *m)
{
	out_parts(b, jx_get(m, "content"));
}

static int cmd_list(struct cli *c, struct args *a)
{
	struct buf path;
	struct resp r = {0};
	int rc;

	cli_session_path(&path, a->pos[0], "/messages");
	http_query_add(&path, "since_sequence", args_get(a, "since"));
	http_query_add(&path, "before_sequence", args_get(a, "before"));
	http_query_add(&path, "limit", args_get(a, "limit"));
	rc = http_json(c, "GET", path.data, NULL, &r);
	if (!rc)
		out_log(c, &r, message_cols, summarize);
	resp_release(&r);
	buf_release(&path);
	return rc;
}

static int cmd_send(struct cli *c, struct args *a)
{
	struct buf text = BUF_INIT;
	struct resp r = {0};
	long seq = 0;
	int rc, exit_now = 0;

	buf_init(&text, 256);
	if (a->npos > 1 && !strcmp(a->pos[1], "-")) {
		rc = cli_read_file("-", &text);
		if (rc)
			goto out;
	} else if (a->npos > 1) {
		buf_adds(&text, a->pos[1]);
	} else if (!args_has(a, "image")) {
		fprintf(stderr,
			"everruns: give the message TEXT ('-' reads standard input)\n");
		rc = CLI_USAGE;
		goto out;
	}
	rc = cli_send_message(c, a->pos[0], text.data, a, &seq, &r);
	if (rc)
		goto out;
	if (!args_has(a, "wait")) {
		if (c->json)
			out_json_body(&r);
		else
			printf("sent %s (sequence %ld); the session is working on it\n",
			       jx_gets(r.json, "id") ? jx_gets(r.json, "id")
						     : "?",
			       seq);
		goto out;
	}
	rc = cli_follow_turn(c, a->pos[0], seq, 0, &exit_now);
out:
	resp_release(&r);
	buf_release(&text);
	return rc;
}

static const struct optdef send_opts[] = {
	{"wait", OPT_FLAG},
	{"image", OPT_LIST},
	{"model", OPT_VALUE},
	{NULL, 0},
};
static const struct optdef list_opts[] = {
	{"since", OPT_VALUE},
	{"before", OPT_VALUE},
	{"limit", OPT_VALUE},
	{NULL, 0},
};

const struct cmd messages_cmds[] = {
	{"send", cmd_send, send_opts,
	 "messages send SESSION TEXT|- [--wait] [--image IMAGE_ID]... [--model MODEL]",
	 "Send a message, which starts a turn ('-': the text from standard input).\n"
	 "--image attaches an uploaded image (everruns images upload). Without\n"
	 "--wait it prints the message and returns at once. With --wait it streams\n"
	 "the turn as 'chat' does until the session is idle, and exits 1 when the\n"
	 "turn failed or was cancelled (Ctrl-C cancels it); --json --wait prints\n"
	 "each event of the turn as one line of JSON. A turn that waits for an\n"
	 "approval or a client-side tool's result is announced on stderr with the\n"
	 "command that answers it (sessions approve, sessions tool-results).\n",
	 1, 2, 0},
	{"list", cmd_list, list_opts,
	 "messages list SESSION [--since SEQ | --before SEQ] [--limit N]",
	 "The conversation, oldest first: user, agent and tool_result messages.\n",
	 1, 1, 0},
	{NULL, NULL, NULL, NULL, NULL, 0, 0, 0},
};
