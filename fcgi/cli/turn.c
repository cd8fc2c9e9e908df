/*
 * turn: sending a message and following the turn it starts, shared by
 * `chat` and `messages send --wait`.
 *
 * The turn is streamed from the message's own sequence
 * (since_sequence=<message.sequence>), so no event of it is missed
 * however fast the runner is. The first Ctrl-C asks the server to cancel
 * the turn and keeps streaming until the session is idle again (the
 * cancel's closing events arrive on the stream); a second one leaves at
 * once.
 *
 * A turn that waits for approval (tool.approval_requested): in chat the
 * stream stops there, the questions are asked and answered
 * (cli_ask_approvals), and the stream goes on after the last event
 * shown; Ctrl-C at a question cancels the turn as it does while it runs.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int cli_send_message(struct cli *c, const char *sid, const char *text,
		     const struct args *a, long *seq, struct resp *r)
{
	struct json_object *body, *msg, *parts;
	struct buf path = BUF_INIT;
	const char *img, *model = a ? args_get(a, "model") : NULL;
	char *model_id = NULL;
	int i, rc;

	memset(r, 0, sizeof(*r));
	if (model && !(model_id = cli_resolve(c, "models", model)))
		return CLI_API;
	body = jx_obj();
	msg = jx_obj();
	parts = json_object_new_array();
	if (text && *text) {
		struct json_object *p = jx_obj();
		jx_put_str(p, "type", "text");
		jx_put_str(p, "text", text);
		json_object_array_add(parts, p);
	}
	for (i = 0; a && (img = args_nth(a, "image", i)); i++) {
		struct json_object *p = jx_obj();
		jx_put_str(p, "type", "image_file");
		jx_put_str(p, "image_id", img);
		json_object_array_add(parts, p);
	}
	jx_put_str(msg, "role", "user");
	json_object_object_add(msg, "content", parts);
	if (model_id) {
		struct json_object *ctl = jx_obj();
		jx_put_str(ctl, "model_id", model_id);
		json_object_object_add(msg, "controls", ctl);
	}
	json_object_object_add(body, "message", msg);
	cli_session_path(&path, sid, "/messages");
	rc = http_json(c, "POST", path.data, body, r);
	if (!rc) {
		struct json_object *s = jx_get(r->json, "sequence");
		*seq = s ? (long)json_object_get_int64(s) : 0;
	}
	buf_release(&path);
	json_object_put(body);
	free(model_id);
	return rc;
}

struct follow_ctx {
	struct cli *c;
	const char *sid;
	struct render r;
	int cancel_sent, exit_now;
};

static int on_frame(void *ud, const struct sse_frame *f)
{
	struct follow_ctx *fc = ud;

	return render_frame(&fc->r, f);
}

static int on_interrupt(void *ud)
{
	struct follow_ctx *fc = ud;
	struct buf path = BUF_INIT;
	struct resp r;

	if (fc->cancel_sent) {
		fc->exit_now = 1;
		return 1;
	}
	fc->cancel_sent = 1;
	render_finish(&fc->r);
	fprintf(stderr, "[cancelling the turn; Ctrl-C again to quit]\n");
	cli_session_path(&path, fc->sid, "/cancel");
	http_raw(fc->c, "POST", path.data, NULL, NULL, 0, &r);
	resp_release(&r);
	buf_release(&path);
	return 0;
}

int cli_follow_turn(struct cli *c, const char *sid, long seq, int ask,
		    int *exit_now)
{
	struct follow_ctx fc;
	struct sse_handler h = {on_frame, on_interrupt, &fc};
	enum sse_end end;
	int rc = CLI_OK;

	memset(&fc, 0, sizeof(fc));
	fc.c = c;
	fc.sid = sid;
	render_init(&fc.r, c->json);
	fc.r.sid = sid;
	fc.r.ask = ask;
	cli_sig_drain();
	for (;;) {
		struct json_object *calls;
		int interrupted = 0;

		end = sse_follow(c, sid, "", seq, &h);
		if (end != SSE_STOPPED || fc.r.done || fc.exit_now ||
		    !fc.r.asked)
			break;
		calls = fc.r.asked;
		fc.r.asked = NULL;
		cli_sig_drain();
		cli_ask_approvals(c, sid, calls, &interrupted);
		json_object_put(calls);
		if (interrupted || cli_sigints) {
			cli_sigints = 0;
			cli_sig_drain();
			if (on_interrupt(&fc))
				break;
		}
		if (fc.r.last_seq >= 0)
			seq = fc.r.last_seq;
	}
	render_finish(&fc.r);
	*exit_now = fc.exit_now;
	if (end == SSE_DELETED) {
		fprintf(stderr, "everruns: the session was deleted\n");
		rc = CLI_API;
	} else if (end == SSE_FAILED || fc.exit_now) {
		rc = CLI_API;
	} else if (fc.r.failed || fc.r.cancelled) {
		rc = CLI_API;
	}
	return rc;
}
