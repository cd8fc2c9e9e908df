/*
 * chat: an interactive conversation in a session, line by line on
 * standard input. Each line is a message (a line ending in '\' continues
 * on the next, so one message can hold several lines); the reply streams
 * as it is generated, tool calls shown. Ctrl-C during a turn cancels it,
 * a second Ctrl-C (or one at the prompt) quits; end of input quits.
 *
 * The session: the one named, a new one with --agent, or else the
 * caller's own chat session (POST /sessions/chat).
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"

#define EXIT_INTERRUPTED 130

/* Read one message (joined continuation lines) into b. 1: a message,
 * 0: end of input, -1: interrupted. */
static int read_message(struct buf *b, int tty)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int ret = 0;

	buf_reset(b);
	if (tty)
		fprintf(stderr, "you> ");
	for (;;) {
		errno = 0;
		n = getline(&line, &cap, stdin);
		if (n < 0) {
			ret = errno == EINTR ? -1 : (b->len ? 1 : 0);
			break;
		}
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n && line[n - 1] == '\\') {
			buf_add(b, line, (size_t)n - 1);
			buf_addch(b, '\n');
			if (tty)
				fprintf(stderr, "...> ");
			continue;
		}
		buf_add(b, line, (size_t)n);
		ret = 1;
		break;
	}
	free(line);
	return ret;
}

/* The session to talk in; its id in *sid (caller frees); *waiting: its
 * turn waits for answers (status waitingfortoolresults). */
static int pick_session(struct cli *c, struct args *a, char **sid, int *waiting)
{
	struct resp r = {0};
	struct buf path = BUF_INIT;
	int rc;

	if (a->npos) {
		cli_session_path(&path, a->pos[0], NULL);
		rc = http_json(c, "GET", path.data, NULL, &r);
	} else if (args_get(a, "agent")) {
		struct json_object *body = jx_obj();
		char *agent = cli_resolve(c, "agents", args_get(a, "agent"));
		if (!agent) {
			json_object_put(body);
			return CLI_API;
		}
		jx_put_str(body, "agent_id", agent);
		if (args_get(a, "title"))
			jx_put_str(body, "title", args_get(a, "title"));
		rc = http_json(c, "POST", "/sessions", body, &r);
		json_object_put(body);
		free(agent);
	} else {
		rc = http_raw(c, "POST", "/sessions/chat", NULL, NULL, 0, &r);
	}
	if (!rc && jx_gets(r.json, "id")) {
		const char *st = jx_gets(r.json, "status");
		*waiting = st && !strcmp(st, "waitingfortoolresults");
		*sid = xstrdup(jx_gets(r.json, "id"));
		fprintf(stderr, "session %s (%s)%s\n", *sid,
			jx_gets(r.json, "title") ? jx_gets(r.json, "title")
						 : "untitled",
			isatty(0)
				? ": type a message; Ctrl-D quits, Ctrl-C cancels a turn"
				: "");
	} else if (!rc) {
		rc = CLI_API;
	}
	resp_release(&r);
	buf_release(&path);
	return rc;
}

static int cmd_chat(struct cli *c, struct args *a)
{
	struct buf msg = BUF_INIT;
	char *sid = NULL;
	int rc, tty = isatty(0), waiting = 0;

	rc = pick_session(c, a, &sid, &waiting);
	if (rc)
		return rc;
	cli_signals_init(); /* Ctrl-C: cancel a turn, or quit at the prompt */
	buf_init(&msg, 256);
	if (waiting) {
		/* its turn waits for answers: they come first */
		int exit_now = 0;
		cli_resume_waiting(c, sid, &exit_now);
		cli_sigints = 0;
		if (exit_now) {
			buf_release(&msg);
			free(sid);
			return EXIT_INTERRUPTED;
		}
	}
	for (;;) {
		struct resp r = {0};
		long seq = 0;
		int got, exit_now = 0;

		cli_sig_drain();
		got = read_message(&msg, tty);
		if (got < 0 || cli_sigints) {
			rc = EXIT_INTERRUPTED;
			break;
		}
		if (!got)
			break;
		if (!msg.len)
			continue;
		if (!strcmp(msg.data, "/quit") || !strcmp(msg.data, "/exit"))
			break;
		/* a message already failed (busy session, ...) is printed;
		 * the conversation goes on */
		if (cli_send_message(c, sid, msg.data, a, &seq, &r) == CLI_OK) {
			cli_sigints = 0;
			cli_follow_turn(c, sid, seq, 1, &exit_now);
		}
		resp_release(&r);
		if (exit_now) {
			rc = EXIT_INTERRUPTED;
			break;
		}
		cli_sigints = 0;
	}
	buf_release(&msg);
	free(sid);
	return rc;
}

static const struct optdef chat_opts[] = {
	{"agent", OPT_VALUE},
	{"title", OPT_VALUE},
	{"model", OPT_VALUE},
	{NULL, 0},
};

const struct cmd chat_cmds[] = {
	{NULL, cmd_chat, chat_opts,
	 "chat [SESSION | --agent AGENT [--title T]] [--model MODEL]",
	 "Talk with an agent. Each line you type is sent as a message and the\n"
	 "reply streams as it is generated, with tool calls (-> name args) and\n"
	 "their results (<- name: result). End a line with '\\' to continue the\n"
	 "message on the next line. Ctrl-C cancels the running turn; a second\n"
	 "Ctrl-C, or Ctrl-C at the prompt, quits (exit status 130); end of input\n"
	 "or /quit quits (0).\n"
	 "A tool call that needs approval is asked about: 'Allow tool(args)? [y/N]';\n"
	 "y approves, 'n REASON' denies with a reason, anything else (or the end\n"
	 "of input) denies; Ctrl-C there cancels the turn. A client-side tool's\n"
	 "call is announced with the 'sessions tool-results' command that answers\n"
	 "it; the turn goes on once it is answered. Opening a session whose turn\n"
	 "already waits asks (or announces) what is still open first.\n"
	 "Without SESSION: a new session with --agent (id or name), or else your\n"
	 "own chat session (the same one each time). --model MODEL (an id or a\n"
	 "name) is used for each message.\n",
	 0, 1, 0},
	{NULL, NULL, NULL, NULL, NULL, 0, 0, 0},
};
