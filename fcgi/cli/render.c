/*
 * render: a turn's events as a person reads them. The reply text streams
 * as it is generated; thinking is shown marked; tool calls and their
 * results get a line each; failures and cancels go to stderr.
 *
 * Text is printed from each delta's `accumulated` (the whole text so far
 * of message `message_sequence`), past what was already printed, so a
 * reconnect (which resends the accumulated text) never doubles it and a
 * provider retry (a new message) starts a new line. With --json every
 * durable event is one line of JSON (the envelope), deltas left out.
 *
 * A turn that waits for the user (tool.call_requested,
 * tool.approval_requested) is announced on stderr with the command that
 * answers it, in both modes; with r->ask (chat) the stream stops at an
 * approval request instead, for the caller to ask (answers.c).
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

#define PREVIEW 200

void render_init(struct render *r, int json)
{
	memset(r, 0, sizeof(*r));
	r->json = json;
	r->msg_seq = r->think_seq = r->closed_seq = -1;
	r->last_seq = -1;
}

/* The message being streamed has ended (completed, or its turn was
 * cancelled): late deltas of it are ignored. */
static void close_message(struct render *r, long *cur, size_t *printed)
{
	if (*cur > r->closed_seq)
		r->closed_seq = *cur;
	*cur = -1;
	*printed = 0;
}

static void end_line(struct render *r)
{
	if (r->open_line)
		putchar('\n');
	r->open_line = 0;
}

/* Text of the model to the terminal: its control characters, but for
 * line feeds and tabs, are blanked (an escape sequence in a reply or a
 * tool's name must not drive the terminal). */
static void emit(struct render *r, const char *s, size_t n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		putchar((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ? ' '
									  : c);
	}
	r->open_line = s[n - 1] != '\n';
	fflush(stdout);
}

/* Print the part of acc past *printed (a stream of message seq). */
static void stream_text(struct render *r, long *cur, size_t *printed, long seq,
			const char *acc, const char *label)
{
	size_t n = strlen(acc);

	if (seq <= r->closed_seq)
		return;
	if (seq != *cur) {
		end_line(r);
		*cur = seq;
		*printed = 0;
	}
	if (n <= *printed)
		return;
	if (!*printed && label)
		emit(r, label, strlen(label));
	emit(r, acc + *printed, n - *printed);
	*printed = n;
}

/* The text parts of a message, joined. */
static void message_text(struct buf *b, struct json_object *msg)
{
	struct json_object *parts = jx_get(msg, "content");
	size_t i, n;

	if (parts && json_object_is_type(parts, json_type_string)) {
		buf_adds(b, json_object_get_string(parts));
		return;
	}
	n = parts && json_object_is_type(parts, json_type_array)
		    ? json_object_array_length(parts)
		    : 0;
	for (i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(parts, i);
		const char *t = jx_gets(p, "type"), *text = jx_gets(p, "text");
		if (t && !strcmp(t, "text") && text)
			buf_adds(b, text);
	}
}

void render_preview(struct buf *b, struct json_object *v)
{
	const char *s;
	size_t n;

	if (!v)
		return;
	s = json_object_is_type(v, json_type_string)
		    ? json_object_get_string(v)
		    : json_object_to_json_string_ext(
			      v, JSON_C_TO_STRING_PLAIN |
					 JSON_C_TO_STRING_NOSLASHESCAPE);
	n = utf8_cut(s, strlen(s), PREVIEW);
	for (size_t i = 0; i < n; i++)
		buf_addch(b, (unsigned char)s[i] < 0x20 ? ' ' : s[i]);
	if (n < strlen(s))
		buf_adds(b, "...");
}

static int render_text(struct render *r, const char *ev,
		       struct json_object *env)
{
	struct json_object *d = jx_get(env, "data");
	struct json_object *seqo = jx_get(env, "sequence");
	long seq = seqo ? (long)json_object_get_int64(seqo) : -1;
	struct buf b = BUF_INIT;
	int stop = 0;

	buf_init(&b, 64);
	if (!strcmp(ev, "output.message.delta") ||
	    !strcmp(ev, "reason.thinking.delta")) {
		int think = ev[0] == 'r';
		const char *acc = jx_gets(d, "accumulated");
		struct json_object *m = jx_get(d, "message_sequence");
		if (acc && m) {
			if (think)
				stream_text(r, &r->think_seq, &r->think_printed,
					    (long)json_object_get_int64(m), acc,
					    "(thinking) ");
			else
				stream_text(r, &r->msg_seq, &r->printed,
					    (long)json_object_get_int64(m), acc,
					    NULL);
		}
	} else if (!strcmp(ev, "output.message.started")) {
		stream_text(r, &r->msg_seq, &r->printed, seq, "", NULL);
	} else if (!strcmp(ev, "output.message.completed")) {
		/* the rest of the streamed message, or all of one that was
		 * not streamed (an instant model, the cancel's message) */
		message_text(&b, jx_get(d, "message"));
		if (b.len > r->printed)
			emit(r, b.data + r->printed, b.len - r->printed);
		end_line(r);
		close_message(r, &r->msg_seq, &r->printed);
	} else if (!strcmp(ev, "reason.thinking.completed")) {
		const char *t = jx_gets(d, "thinking");
		if (r->think_seq < 0 && t && *t) {
			emit(r, "(thinking) ", 11);
			emit(r, t, strlen(t));
		}
		end_line(r);
		close_message(r, &r->think_seq, &r->think_printed);
	} else if (!strcmp(ev, "tool.started")) {
		struct json_object *tc = jx_get(d, "tool_call");
		struct buf name = BUF_INIT;
		end_line(r);
		/* the model chose the name: blanked like its arguments */
		render_preview(&name, jx_get(tc, "name"));
		render_preview(&b, jx_get(tc, "arguments"));
		printf("-> %s %s\n", name.len ? name.data : "?", b.data);
		buf_release(&name);
	} else if (!strcmp(ev, "tool.completed")) {
		struct json_object *ok = jx_get(d, "success");
		struct buf nb = BUF_INIT;
		const char *name;
		end_line(r);
		render_preview(&nb, jx_get(d, "tool_name"));
		name = nb.len ? nb.data : NULL;
		if (ok && json_object_get_boolean(ok)) {
			struct json_object *res = jx_get(d, "result");
			/* content parts: the first one's text */
			if (json_object_is_type(res, json_type_array) &&
			    jx_get(json_object_array_get_idx(res, 0), "text"))
				res = jx_get(json_object_array_get_idx(res, 0),
					     "text");
			render_preview(&b, res);
			printf("<- %s: %s\n", name ? name : "?", b.data);
		} else {
			render_preview(&b, jx_get(d, "error"));
			printf("<- %s failed: %s\n", name ? name : "?", b.data);
		}
		buf_release(&nb);
	} else if (!strcmp(ev, "tool.approval_resolved")) {
		struct json_object *ok = jx_get(d, "approved");
		const char *why = jx_gets(d, "reason");
		end_line(r);
		render_preview(&b, jx_get(d, "tool_name"));
		if (ok && json_object_get_boolean(ok)) {
			printf("[approved %s]\n", b.data);
		} else {
			printf("[denied %s", b.data);
			if (why && *why) {
				buf_reset(&b);
				render_preview(&b, jx_get(d, "reason"));
				printf(": %s", b.data);
			}
			printf("]\n");
		}
	} else if (!strcmp(ev, "turn.failed")) {
		const char *code = jx_gets(d, "error_code");
		end_line(r);
		fflush(stdout);
		for (const char *e = jx_gets(d, "error"); e && *e; e++)
			buf_addch(&b, (unsigned char)*e < 0x20 ? ' ' : *e);
		fprintf(stderr, "everruns: the turn failed: %s%s%s%s\n",
			b.len ? b.data : "unknown error", code ? " (" : "",
			code ? code : "", code ? ")" : "");
		r->failed = 1;
	} else if (!strcmp(ev, "turn.cancelled")) {
		end_line(r);
		fflush(stdout);
		fprintf(stderr, "[turn cancelled]\n");
		r->cancelled = 1;
		close_message(r, &r->msg_seq, &r->printed);
		close_message(r, &r->think_seq, &r->think_printed);
	} else if (!strcmp(ev, "session.idled")) {
		end_line(r);
		stop = 1;
	}
	fflush(stdout);
	buf_release(&b);
	return stop;
}

void render_announce(struct render *r, const char *ev, struct json_object *d)
{
	struct json_object *calls = jx_get(d, "tool_calls");
	int approval = !strcmp(ev, "tool.approval_requested");
	struct buf name = BUF_INIT, args = BUF_INIT, idb = BUF_INIT;
	size_t i, n = json_object_is_type(calls, json_type_array)
			      ? json_object_array_length(calls)
			      : 0;

	if (!r->json)
		end_line(r);
	fflush(stdout);
	for (i = 0; i < n; i++) {
		struct json_object *tc = json_object_array_get_idx(calls, i);
		const char *id;
		if (!jx_gets(tc, "id"))
			continue;
		buf_reset(&name);
		buf_reset(&args);
		buf_reset(&idb);
		/* the call's id came from the model too */
		render_preview(&idb, jx_get(tc, "id"));
		id = idb.len ? idb.data : "?";
		render_preview(&name, jx_get(tc, "name"));
		render_preview(&args, jx_get(tc, "arguments"));
		if (approval)
			fprintf(stderr,
				"[%s(%s) waits for approval, call %s]\n"
				"  answer: everruns sessions approve %s --call %s [--deny --reason TEXT]\n",
				name.len ? name.data : "?",
				args.len ? args.data : "", id,
				r->sid ? r->sid : "SESSION", id);
		else
			fprintf(stderr,
				"[client-side tool %s(%s) waits for its result, call %s]\n"
				"  answer: everruns sessions tool-results %s --call %s --result JSON (or --error TEXT)\n",
				name.len ? name.data : "?",
				args.len ? args.data : "", id,
				r->sid ? r->sid : "SESSION", id);
	}
	if (n && !approval && r->ask)
		fprintf(stderr, "  (the turn goes on once it is answered; "
				"Ctrl-C cancels it)\n");
	buf_release(&name);
	buf_release(&args);
	buf_release(&idb);
}

int render_frame(struct render *r, const struct sse_frame *f)
{
	struct json_object *seqo;
	int stop;

	if (!f->json)
		return 0;
	if (f->id && (seqo = jx_get(f->json, "sequence")))
		r->last_seq = (long)json_object_get_int64(seqo);
	if (r->json) {
		if (f->id)
			out_json(f->json);
		fflush(stdout);
		stop = !strcmp(f->event, "session.idled");
	} else {
		stop = render_text(r, f->event, f->json);
	}
	if (stop)
		r->done = 1;
	if (!strcmp(f->event, "tool.approval_requested") && r->ask) {
		struct json_object *calls =
			jx_get(jx_get(f->json, "data"), "tool_calls");
		if (r->asked)
			json_object_put(r->asked);
		r->asked = json_object_get(calls);
		if (!r->json)
			end_line(r);
		fflush(stdout);
		return 1;
	}
	if (!strcmp(f->event, "tool.approval_requested") ||
	    !strcmp(f->event, "tool.call_requested"))
		render_announce(r, f->event, jx_get(f->json, "data"));
	return stop;
}

void render_finish(struct render *r)
{
	if (r->asked)
		json_object_put(r->asked);
	r->asked = NULL;
	if (!r->json)
		end_line(r);
	fflush(stdout);
}
