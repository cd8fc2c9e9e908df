/*
 * turn_events: what a turn says. Builders of event data and of agent
 * messages, and the terminal paths (completed, failed, cancelled), all
 * through writer_event(); see turn_int.h.
 */
#include "turn_int.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void iso_now(char out[32])
{
	struct timespec ts;
	struct tm tm;
	char secs[24];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(secs, sizeof(secs), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%.19s.%03dZ", secs, (int)(ts.tv_nsec / 1000000));
}

/* Queue an event whose data is built with json-c (ownership taken). What
 * models and tools said is made storable here, once for every event: NUL
 * and invalid UTF-8 become U+FFFD, nesting past TURN_EVENT_DEPTH becomes
 * text (the objects are fixed in place, so the turn's history has the
 * same values as the log). */
void turn_emit(struct turn *t, const char *type, struct json_object *data,
	       long uin, long uout, enum ev_kind kind, const char *final)
{
	char *text;
	if (jx_storable(&data, TURN_EVENT_DEPTH))
		log_info("turn %s: %s: unstorable text replaced", t->id, type);
	text = xstrdup(jx_str(data));
	json_object_put(data);
	writer_event(t, type, text, uin, uout, kind, final);
}

struct json_object *turn_ref(struct turn *t)
{
	struct json_object *o = jx_obj();
	char id[40];
	snprintf(id, sizeof(id), "trn_%s", t->id);
	jx_put_str(o, "turn_id", id);
	return o;
}

struct json_object *turn_usage(long in, long out)
{
	struct json_object *u = jx_obj();
	jx_put_int(u, "input_tokens", in);
	jx_put_int(u, "output_tokens", out);
	return u;
}

/* An agent message {id, session_id, turn_id, role, content, created_at}
 * with content from `content` (ownership taken). */
struct json_object *turn_agent_message(struct turn *t, const char *msg_id,
				       struct json_object *content)
{
	struct json_object *m = jx_obj();
	char buf[48], ts[32];
	jx_put_str(m, "id", msg_id);
	snprintf(buf, sizeof(buf), "ses_%s", t->session);
	jx_put_str(m, "session_id", buf);
	snprintf(buf, sizeof(buf), "trn_%s", t->id);
	jx_put_str(m, "turn_id", buf);
	jx_put_str(m, "role", "agent");
	json_object_object_add(m, "content", content);
	iso_now(ts);
	jx_put_str(m, "created_at", ts);
	return m;
}

struct json_object *turn_text_content(const char *text)
{
	struct json_object *c = json_object_new_array(), *p = jx_obj();
	jx_put_str(p, "type", "text");
	jx_put_str(p, "text", text);
	json_object_array_add(c, p);
	return c;
}

/* Remember an event of this turn for the next history build. */
void turn_note_event(struct turn *t, const char *type, struct json_object *data)
{
	struct json_object *e = jx_obj();
	jx_put_str(e, "type", type);
	json_object_object_add(e, "data", json_object_get(data));
	json_object_array_add(jx_get(t->cfg, "events"), e);
}

/* turn.started, once per turn (a takeover finds it in the log). */
void turn_announce(struct turn *t)
{
	struct json_object *d;
	char mid[40];
	if (t->announced)
		return;
	d = turn_ref(t);
	snprintf(mid, sizeof(mid), "msg_%s", t->input_msg);
	if (t->input_msg[0]) /* unknown when the turn could not be loaded */
		jx_put_str(d, "input_message_id", mid);
	turn_emit(t, "turn.started", d, 0, 0, EV_NORMAL, NULL);
	t->announced = 1;
}

/* --- terminal paths ----------------------------------------------------*/

void turn_finish_idle(struct turn *t, const char *final)
{
	struct json_object *d = turn_ref(t);
	jx_put_int(d, "iterations", t->iterations);
	turn_emit(t, "session.idled", d, 0, 0, EV_NORMAL, final);
	t->phase = PH_DONE;
}

void turn_complete(struct turn *t, const char *stop_reason)
{
	struct json_object *d = turn_ref(t);
	jx_put_int(d, "iterations", t->iterations);
	jx_put_str(d, "stop_reason", stop_reason);
	jx_put_int(d, "duration_ms", now_ms() - t->started_ms);
	json_object_object_add(d, "usage", turn_usage(t->turn_in, t->turn_out));
	turn_emit(t, "turn.completed", d, 0, 0, EV_NORMAL, NULL);
	turn_finish_idle(t, "completed");
}

void turn_fail(struct turn *t, const char *code, const char *fmt, ...)
{
	char why[512], text[640], mid[IDS_MAX_LEN];
	struct json_object *d;
	struct buf w = BUF_INIT;
	va_list ap;

	/* the reason often quotes a provider's words: cut it whole */
	buf_init(&w, 0);
	va_start(ap, fmt);
	buf_vaddf(&w, fmt, ap);
	va_end(ap);
	snprintf(why, sizeof(why), "%.*s",
		 (int)utf8_cut(w.data, w.len, sizeof(why) - 1), w.data);
	buf_release(&w);
	log_info("turn %s failed: %s: %s", t->id, code, why);
	turn_announce(t);
	snprintf(text, sizeof(text), "Sorry, I could not complete this: %s",
		 why);
	ids_new("msg", mid, sizeof(mid));
	d = jx_obj();
	json_object_object_add(
		d, "message",
		turn_agent_message(t, mid, turn_text_content(text)));
	jx_put_str(d, "error_code", code);
	turn_emit(t, "output.message.completed", d, 0, 0, EV_NORMAL, NULL);
	d = turn_ref(t);
	jx_put_str(d, "error", why);
	jx_put_str(d, "error_code", code);
	turn_emit(t, "turn.failed", d, 0, 0, EV_NORMAL, NULL);
	turn_finish_idle(t, "failed");
}

void turn_finish_cancel(struct turn *t)
{
	char mid[IDS_MAX_LEN];
	struct json_object *d = jx_obj();
	ids_new("msg", mid, sizeof(mid));
	json_object_object_add(
		d, "message",
		turn_agent_message(
			t, mid,
			turn_text_content("Work was cancelled by user.")));
	turn_emit(t, "output.message.completed", d, 0, 0, EV_CANCEL, NULL);
	d = turn_ref(t);
	jx_put_int(d, "iterations", t->iterations);
	turn_emit(t, "session.idled", d, 0, 0, EV_CANCEL, "cancelled");
	t->phase = PH_DONE;
}
