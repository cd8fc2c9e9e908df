/*
 * turn: one turn's life in the runner (DESIGN 4.4): load the effective
 * configuration, then reason (one streamed LLM call) -> act (run the
 * tools one at a time) -> reason ... until an answer without tool calls,
 * max_iterations, a failure, or a cancel. Everything a turn says goes
 * through writer_event(); the event order is the reference's "typical
 * order of events". A takeover (attempt > 1) continues from the log.
 */
#include "runner.h"
#include "catalog.h"
#include "crypto.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "tools/tools.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TRIES 3

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

/* Queue an event whose data is built with json-c (ownership taken). */
static void emit(struct turn *t, const char *type, struct json_object *data,
		 long uin, long uout, enum ev_kind kind, const char *final)
{
	char *text = xstrdup(jx_str(data));
	json_object_put(data);
	writer_event(t, type, text, uin, uout, kind, final);
}

static struct json_object *obj(void)
{
	return json_object_new_object();
}

static void put_s(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static void put_i(struct json_object *o, const char *k, long long v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static struct json_object *turn_ref(struct turn *t)
{
	struct json_object *o = obj();
	char id[40];
	snprintf(id, sizeof(id), "trn_%s", t->id);
	put_s(o, "turn_id", id);
	return o;
}

static struct json_object *usage(long in, long out)
{
	struct json_object *u = obj();
	put_i(u, "input_tokens", in);
	put_i(u, "output_tokens", out);
	return u;
}

/* An agent message {id, session_id, turn_id, role, content, created_at}
 * with content from `content` (ownership taken). */
static struct json_object *agent_message(struct turn *t, const char *msg_id,
					 struct json_object *content)
{
	struct json_object *m = obj();
	char buf[48], ts[32];
	put_s(m, "id", msg_id);
	snprintf(buf, sizeof(buf), "ses_%s", t->session);
	put_s(m, "session_id", buf);
	snprintf(buf, sizeof(buf), "trn_%s", t->id);
	put_s(m, "turn_id", buf);
	put_s(m, "role", "agent");
	json_object_object_add(m, "content", content);
	iso_now(ts);
	put_s(m, "created_at", ts);
	return m;
}

static struct json_object *text_content(const char *text)
{
	struct json_object *c = json_object_new_array(), *p = obj();
	put_s(p, "type", "text");
	put_s(p, "text", text);
	json_object_array_add(c, p);
	return c;
}

/* Remember an event of this turn for the next history build. */
static void note_event(struct turn *t, const char *type,
		       struct json_object *data)
{
	struct json_object *e = obj();
	put_s(e, "type", type);
	json_object_object_add(e, "data", json_object_get(data));
	json_object_array_add(jx_get(t->cfg, "events"), e);
}

/* turn.started, once per turn (a takeover finds it in the log). */
static void announce(struct turn *t)
{
	struct json_object *d;
	char mid[40];
	if (t->announced)
		return;
	d = turn_ref(t);
	snprintf(mid, sizeof(mid), "msg_%s", t->input_msg);
	put_s(d, "input_message_id", mid);
	emit(t, "turn.started", d, 0, 0, EV_NORMAL, NULL);
	t->announced = 1;
}

/* --- terminal paths ----------------------------------------------------*/

static void finish_idle(struct turn *t, const char *final)
{
	struct json_object *d = turn_ref(t);
	put_i(d, "iterations", t->iterations);
	emit(t, "session.idled", d, 0, 0, EV_NORMAL, final);
	t->phase = PH_DONE;
}

static void complete(struct turn *t, const char *stop_reason)
{
	struct json_object *d = turn_ref(t);
	put_i(d, "iterations", t->iterations);
	put_s(d, "stop_reason", stop_reason);
	put_i(d, "duration_ms", now_ms() - t->started_ms);
	json_object_object_add(d, "usage", usage(t->turn_in, t->turn_out));
	emit(t, "turn.completed", d, 0, 0, EV_NORMAL, NULL);
	finish_idle(t, "completed");
}

static void fail(struct turn *t, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct turn *t, const char *code, const char *fmt, ...)
{
	char why[512], text[640], mid[IDS_MAX_LEN];
	struct json_object *d;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_info("turn %s failed: %s: %s", t->id, code, why);
	announce(t);
	snprintf(text, sizeof(text), "Sorry, I could not complete this: %s",
		 why);
	ids_new("msg", mid, sizeof(mid));
	d = obj();
	json_object_object_add(d, "message",
			       agent_message(t, mid, text_content(text)));
	put_s(d, "error_code", code);
	emit(t, "output.message.completed", d, 0, 0, EV_NORMAL, NULL);
	d = turn_ref(t);
	put_s(d, "error", why);
	put_s(d, "error_code", code);
	emit(t, "turn.failed", d, 0, 0, EV_NORMAL, NULL);
	finish_idle(t, "failed");
}

static void stop_transfer(struct runner *r, struct turn *t)
{
	if (t->easy) {
		curl_multi_remove_handle(r->multi, t->easy);
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
	}
	curl_slist_free_all(t->headers);
	t->headers = NULL;
	if (t->parser) {
		llm_parser_free(t->parser);
		t->parser = NULL;
	}
	if (t->sim_active) {
		llmsim_plan_free(&t->plan);
		t->sim_active = 0;
	}
}

static void finish_cancel(struct turn *t)
{
	char mid[IDS_MAX_LEN];
	struct json_object *d = obj();
	ids_new("msg", mid, sizeof(mid));
	json_object_object_add(
		d, "message",
		agent_message(t, mid, text_content("Work was cancelled by user.")));
	emit(t, "output.message.completed", d, 0, 0, EV_CANCEL, NULL);
	d = turn_ref(t);
	put_i(d, "iterations", t->iterations);
	emit(t, "session.idled", d, 0, 0, EV_CANCEL, "cancelled");
	t->phase = PH_DONE;
}

void turn_cancel(struct runner *r, struct turn *t)
{
	if (t->phase == PH_DONE || t->dropped)
		return;
	log_info("turn %s: cancelled", t->id);
	stop_transfer(r, t); /* aborts the HTTP transfer now, not after it */
	t->cancelling = 1;
	finish_cancel(t);
}

/* --- the message being streamed ------------------------------------------*/

static void end_thinking(struct turn *t)
{
	struct json_object *d;
	if (!t->think_started || t->think_done)
		return;
	/* as for text: the last thinking delta precedes the completion */
	if (t->t_seq < 0)
		t->think_sent = t->thinking.len;
	else if (t->think_sent < t->thinking.len)
		writer_deltas(t->r, t);
	d = turn_ref(t);
	put_s(d, "thinking", t->thinking.data);
	emit(t, "reason.thinking.completed", d, 0, 0, EV_NORMAL, NULL);
	t->think_done = 1;
}

static void start_message(struct turn *t)
{
	struct json_object *d;
	if (t->msg_started)
		return;
	end_thinking(t);
	d = turn_ref(t);
	put_s(d, "model", t->model);
	put_i(d, "iteration", t->iterations);
	put_s(d, "message_id", t->msg_id);
	emit(t, "output.message.started", d, 0, 0, EV_NORMAL, NULL);
	t->msg_started = 1;
}

static void on_text(void *ctx, const char *s, size_t n)
{
	struct turn *t = ctx;
	start_message(t);
	buf_add(&t->text, s, n);
}

static void on_thinking(void *ctx, const char *s, size_t n)
{
	struct turn *t = ctx;
	if (!t->think_started) {
		struct json_object *d = turn_ref(t);
		put_s(d, "model", t->model);
		emit(t, "reason.thinking.started", d, 0, 0, EV_NORMAL, NULL);
		t->think_started = 1;
	}
	if (!t->think_done)
		buf_add(&t->thinking, s, n);
}

static void on_tool_call(void *ctx, const char *id, const char *name,
			 const char *args)
{
	struct turn *t = ctx;
	struct json_object *c = obj();
	put_s(c, "id", id);
	put_s(c, "name", name);
	put_s(c, "arguments", args && *args ? args : "{}");
	json_object_array_add(t->calls, c);
}

static void on_usage(void *ctx, long in, long out)
{
	struct turn *t = ctx;
	t->call_in = in;
	t->call_out = out;
}

static void on_error(void *ctx, const char *code, const char *message,
		     int retryable)
{
	struct turn *t = ctx;
	snprintf(t->stream_error, sizeof(t->stream_error), "%s: %s",
		 code ? code : "error", message ? message : "");
	t->stream_error_retryable = retryable;
}

static const struct llm_sink sink_proto = {
	NULL, on_text, on_thinking, on_tool_call, on_usage, on_error,
};

/* --- reasoning -----------------------------------------------------------*/

static void reason_begin(struct runner *r, struct turn *t);

static void reset_message(struct turn *t)
{
	ids_new("msg", t->msg_id, sizeof(t->msg_id));
	buf_reset(&t->text);
	buf_reset(&t->thinking);
	json_object_put(t->calls);
	t->calls = json_object_new_array();
	t->msg_started = t->think_started = t->think_done = 0;
	t->m_seq = t->t_seq = -1;
	t->text_sent = t->think_sent = 0;
	t->call_in = t->call_out = 0;
	t->stream_error[0] = '\0';
	t->stream_error_retryable = 0;
	free(t->thinking_sig);
	t->thinking_sig = NULL;
	t->http_status = 0;
	buf_reset(&t->err_body);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct turn *t = ud;
	size_t n = size * nmemb;
	t->last_byte_ms = now_ms();
	if (!t->http_status)
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->http_status);
	if (t->http_status < 200 || t->http_status >= 300) {
		if (t->err_body.len < 65536)
			buf_add(&t->err_body, data, n);
		return n;
	}
	if (llm_parser_feed(t->parser, data, n) != 0) {
		snprintf(t->stream_error, sizeof(t->stream_error),
			 "malformed_response: %s", llm_parser_error(t->parser));
		return CURL_WRITEFUNC_ERROR;
	}
	return n;
}

/* Headers count as signs of life: a provider that answers with headers and
 * then goes silent is judged by the idle timeout, not the first-byte one. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct turn *t = ud;
	(void)data;
	t->last_byte_ms = now_ms();
	return size * nmemb;
}

static struct llm_request make_request(struct turn *t)
{
	struct llm_request q;
	memset(&q, 0, sizeof(q));
	q.kind = t->kind;
	q.base_url = t->base_url;
	q.api_key = t->api_key;
	q.model = t->model;
	q.messages = t->history;
	q.tools = t->tools;
	q.max_tokens = t->max_tokens;
	q.temperature = t->temperature;
	q.has_temperature = t->has_temperature;
	q.reasoning_effort = t->effort[0] ? t->effort : NULL;
	return q;
}

static void llm_begin(struct runner *r, struct turn *t)
{
	struct llm_request q = make_request(t);
	struct buf url = BUF_INIT, err = BUF_INIT;

	reset_message(t);
	t->tries++;
	t->phase = PH_REASON;
	t->call_start_ms = t->last_byte_ms = now_ms();
	if (t->kind == LLM_SIM) {
		llmsim_plan(&q, &t->plan);
		t->sim_active = 1;
		t->plan_pos = 0;
		t->next_step_ms = now_ms() + (t->plan.n ? t->plan.steps[0].delay_ms : 0);
		return;
	}
	buf_init(&url, 0);
	buf_init(&err, 0);
	buf_reset(&t->req_body);
	if (llm_build(&q, &url, &t->headers, &t->req_body, &err) != 0) {
		fail(t, "invalid_request", "%s", err.data);
		goto out;
	}
	t->sink = sink_proto;
	t->sink.ctx = t;
	t->parser = llm_parser_new(t->kind, &t->sink);
	t->easy = curl_easy_init();
	if (!t->easy)
		abort();
	curl_easy_setopt(t->easy, CURLOPT_URL, url.data);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->req_body.data);
	curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE, (long)t->req_body.len);
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT, r->llm_connect_s);
	curl_easy_setopt(t->easy, CURLOPT_TIMEOUT, r->llm_total_s);
	curl_easy_setopt(t->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_multi_add_handle(r->multi, t->easy);
out:
	buf_release(&url);
	buf_release(&err);
}

static void reason_begin(struct runner *r, struct turn *t)
{
	struct json_object *d, *md;
	int too_long = 0;

	if (t->iterations >= t->max_iterations) {
		complete(t, "max_iterations");
		return;
	}
	if (now_ms() - t->started_ms > r->turn_wall_s * 1000) {
		fail(t, "timeout", "the turn ran longer than %ld s",
		     r->turn_wall_s);
		return;
	}
	json_object_put(t->history);
	t->history = history_build(jx_get(t->cfg, "events"),
				   jx_gets(t->cfg, "_system_prompt"),
				   t->context_tokens,
				   t->max_tokens ? t->max_tokens : 4096,
				   &too_long);
	if (too_long) {
		fail(t, "context_length_exceeded",
		     "the conversation does not fit the model's context window "
		     "(%ld tokens)", t->context_tokens);
		return;
	}
	t->iterations++;
	d = obj();
	put_s(d, "harness_id", jx_gets(jx_get(t->cfg, "session"), "harness_id"));
	if (jx_gets(jx_get(t->cfg, "session"), "agent_id"))
		put_s(d, "agent_id", jx_gets(jx_get(t->cfg, "session"), "agent_id"));
	md = obj();
	put_s(md, "model", t->model);
	put_s(md, "model_id", t->model_id);
	put_s(md, "provider_id", t->provider_id);
	json_object_object_add(d, "metadata", md);
	emit(t, "reason.started", d, 0, 0, EV_NORMAL, NULL);
	t->tries = 0;
	llm_begin(r, t);
}

static void reason_complete(struct runner *r, struct turn *t)
{
	struct json_object *content, *d, *m, *md;
	size_t i, n = json_object_array_length(t->calls);
	char preview[201];

	end_thinking(t);
	start_message(t);
	/* The message's last delta goes out before its completion. If even
	 * its output.message.started is still queued, no client can be in the
	 * middle of it: the completed event alone carries the text. */
	if (t->m_seq < 0)
		t->text_sent = t->text.len;
	else if (t->text_sent < t->text.len)
		writer_deltas(r, t);
	content = json_object_new_array();
	if (t->text.len) {
		struct json_object *p = obj();
		put_s(p, "type", "text");
		put_s(p, "text", t->text.data);
		json_object_array_add(content, p);
	}
	for (i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(t->calls, i);
		struct json_object *p = obj(), *args;
		struct apierr e;
		const char *a = jx_gets(c, "arguments");
		put_s(p, "type", "tool_call");
		put_s(p, "id", jx_gets(c, "id"));
		put_s(p, "name", jx_gets(c, "name"));
		args = jx_parse(a, strlen(a), &e);
		json_object_object_add(p, "arguments",
				       args ? args : json_object_new_string(a));
		json_object_array_add(content, p);
	}
	m = agent_message(t, t->msg_id, content);
	if (t->thinking.len)
		put_s(m, "thinking", t->thinking.data);
	/* Anthropic wants its signed thinking block back in a tool loop */
	if (t->thinking_sig)
		put_s(m, "thinking_signature", t->thinking_sig);
	d = obj();
	json_object_object_add(d, "message", m);
	md = obj();
	put_s(md, "model", t->model);
	put_s(md, "model_id", t->model_id);
	put_s(md, "provider_id", t->provider_id);
	json_object_object_add(d, "metadata", md);
	json_object_object_add(d, "usage", usage(t->call_in, t->call_out));
	note_event(t, "output.message.completed", d);
	emit(t, "output.message.completed", d, t->call_in, t->call_out,
	     EV_NORMAL, NULL);
	t->turn_in += t->call_in;
	t->turn_out += t->call_out;

	d = obj();
	json_object_object_add(d, "success", json_object_new_boolean(1));
	snprintf(preview, sizeof(preview), "%s", t->text.data);
	put_s(d, "text_preview", preview);
	json_object_object_add(d, "has_tool_calls", json_object_new_boolean(n > 0));
	put_i(d, "tool_call_count", (long long)n);
	put_i(d, "duration_ms", now_ms() - t->call_start_ms);
	json_object_object_add(d, "usage", usage(t->call_in, t->call_out));
	emit(t, "reason.completed", d, 0, 0, EV_NORMAL, NULL);

	if (!n) {
		complete(t, "end_turn");
		return;
	}
	d = obj();
	json_object_object_add(d, "tool_calls", json_object_new_array());
	for (i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(t->calls, i);
		struct json_object *tc = obj();
		put_s(tc, "id", jx_gets(c, "id"));
		put_s(tc, "name", jx_gets(c, "name"));
		json_object_array_add(jx_get(d, "tool_calls"), tc);
	}
	emit(t, "act.started", d, 0, 0, EV_NORMAL, NULL);
	t->phase = PH_ACT;
	t->act_next = 0;
	t->act_ok = t->act_err = 0;
	t->act_start_ms = now_ms();
}

static int classify(struct turn *t, CURLcode rc, const char **code,
		    struct buf *why)
{
	/* returns 1 if the failure is worth another try */
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		*code = "timeout";
		buf_adds(why, "the model provider did not answer in time");
		return 1;
	}
	if (rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR ||
	    rc == CURLE_GOT_NOTHING) {
		*code = "connection_error";
		buf_addf(why, "the model provider's answer was cut short (%s)",
			 curl_easy_strerror(rc));
		return 1;
	}
	if (rc != CURLE_OK && rc != CURLE_WRITE_ERROR) {
		*code = "connection_error";
		buf_addf(why, "could not reach the model provider (%s)",
			 curl_easy_strerror(rc));
		return 1;
	}
	if (t->http_status && (t->http_status < 200 || t->http_status >= 300)) {
		llm_http_error(t->kind, t->http_status, t->err_body.data,
			       t->err_body.len, why);
		if (t->http_status == 429) {
			*code = "rate_limited";
			return 1;
		}
		if (t->http_status >= 500) {
			*code = "provider_error";
			return 1;
		}
		*code = t->http_status == 401 || t->http_status == 403
				? "authentication_error"
				: "invalid_request";
		return 0;
	}
	if (t->stream_error[0]) {
		buf_addf(why, "the model provider reported an error (%s)",
			 t->stream_error);
		if (!strncmp(t->stream_error, "malformed_response", 18)) {
			*code = "malformed_response";
			return 0;
		}
		*code = "provider_error";
		return t->stream_error_retryable;
	}
	*code = "connection_error";
	buf_adds(why, "the model provider's answer was cut short");
	return 1;
}

/* An LLM call ended (curl transfer, or an llmsim script). */
void turn_transfer_done(struct runner *r, struct turn *t, CURLcode rc)
{
	struct buf why = BUF_INIT;
	const char *code = NULL;
	int ok;

	if (t->easy && !t->http_status)
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->http_status);
	ok = rc == CURLE_OK && !t->stream_error[0] &&
	     (t->kind == LLM_SIM ||
	      (t->http_status >= 200 && t->http_status < 300 &&
	       llm_parser_finish(t->parser) == 0));
	if (ok && t->parser && llm_parser_thinking_signature(t->parser))
		t->thinking_sig =
			xstrdup(llm_parser_thinking_signature(t->parser));
	stop_transfer(r, t);
	if (t->dropped || t->phase == PH_DONE)
		return;
	if (ok) {
		reason_complete(r, t);
		return;
	}
	buf_init(&why, 0);
	if (classify(t, rc, &code, &why) && t->tries < MAX_TRIES) {
		long backoff = 250L << t->tries;
		log_info("turn %s: try %d failed (%s); retrying in %ld ms",
			 t->id, t->tries, why.data, backoff);
		t->phase = PH_RETRY;
		t->retry_at_ms = now_ms() + backoff;
	} else {
		fail(t, code, "%s", why.data);
	}
	buf_release(&why);
}

/* Play the llmsim steps that are due. */
static void sim_play(struct runner *r, struct turn *t)
{
	while (t->sim_active && t->plan_pos < t->plan.n &&
	       now_ms() >= t->next_step_ms) {
		struct llmsim_step *s = &t->plan.steps[t->plan_pos++];
		switch (s->kind) {
		case SIM_TEXT:
			on_text(t, s->text, strlen(s->text));
			break;
		case SIM_THINKING:
			on_thinking(t, s->text, strlen(s->text));
			break;
		case SIM_TOOL_CALL:
			on_tool_call(t, s->id, s->name, s->args);
			break;
		case SIM_ERROR:
			t->http_status = !strcmp(s->name, "rate_limit") ? 429
					 : !strcmp(s->name, "server")	? 500
									: 400;
			buf_reset(&t->err_body);
			buf_adds(&t->err_body, s->text ? s->text : "simulated error");
			t->sim_active = 0;
			llmsim_plan_free(&t->plan);
			turn_transfer_done(r, t, CURLE_OK);
			return;
		}
		t->last_byte_ms = now_ms();
		if (t->plan_pos < t->plan.n)
			t->next_step_ms += t->plan.steps[t->plan_pos].delay_ms;
	}
	if (t->sim_active && t->plan_pos >= t->plan.n) {
		on_usage(t, t->plan.input_tokens, t->plan.output_tokens);
		t->http_status = 200;
		turn_transfer_done(r, t, CURLE_OK);
	}
}

/* The effective config of the capability that provides tool `name`, or
 * NULL if no capability of this turn provides it. */
static struct json_object *tool_config(struct turn *t, const char *name)
{
	const char *cap = tools_capability_of(name);
	return cap ? jx_get(t->capcfg, cap) : NULL;
}

/* Run the next tool of the act phase (one per loop pass, so cancels are
 * seen between tools). */
static void act_step(struct runner *r, struct turn *t)
{
	struct json_object *c = json_object_array_get_idx(t->calls, t->act_next);
	const char *id = jx_gets(c, "id"), *name = jx_gets(c, "name");
	const char *a = jx_gets(c, "arguments");
	struct json_object *d, *tc, *args = NULL, *cfg;
	struct buf result = BUF_INIT, error = BUF_INIT;
	struct apierr e;
	enum tool_status st = TOOL_ERROR;
	long long t0 = now_ms();

	buf_init(&result, 0);
	buf_init(&error, 0);
	d = obj();
	tc = obj();
	put_s(tc, "id", id);
	put_s(tc, "name", name);
	/* models often send "" for a tool without parameters */
	args = *a ? jx_parse(a, strlen(a), &e) : json_object_new_object();
	json_object_object_add(tc, "arguments",
			       args ? json_object_get(args) : json_object_new_string(a));
	json_object_object_add(d, "tool_call", tc);
	emit(t, "tool.started", d, 0, 0, EV_NORMAL, NULL);

	cfg = tool_config(t, name);
	if (!args || !json_object_is_type(args, json_type_object)) {
		buf_adds(&error, "the arguments are not a JSON object");
	} else if (!cfg) {
		buf_addf(&error, "no tool named '%s' is available", name);
	} else {
		struct tool_ctx ctx = {&r->tools, t->org, t->session, t->id, cfg};
		st = tools_run(&ctx, name, args, &result, &error);
		if (st == TOOL_UNKNOWN) {
			buf_reset(&error);
			buf_addf(&error, "the tool '%s' cannot run here", name);
			st = TOOL_ERROR;
		}
	}
	d = obj();
	put_s(d, "tool_call_id", id);
	put_s(d, "tool_name", name);
	json_object_object_add(d, "success", json_object_new_boolean(st == TOOL_OK));
	put_s(d, "status", st == TOOL_OK ? "success" : "error");
	if (st == TOOL_OK) {
		struct json_object *rv = NULL;
		if (result.len > (size_t)r->tool_result_max) {
			put_i(d, "size_bytes", (long long)result.len);
			json_object_object_add(d, "truncated", json_object_new_boolean(1));
			result.len = (size_t)r->tool_result_max;
			while (result.len && ((unsigned char)result.data[result.len] & 0xC0) == 0x80)
				result.len--;
			result.data[result.len] = '\0';
			rv = json_object_new_string(result.data);
		} else {
			rv = jx_parse(result.data, result.len, &e);
			if (!rv)
				rv = json_object_new_string(result.data);
		}
		json_object_object_add(d, "result", rv);
		t->act_ok++;
	} else {
		put_s(d, "error", error.data);
		t->act_err++;
	}
	put_i(d, "duration_ms", now_ms() - t0);
	note_event(t, "tool.completed", d);
	emit(t, "tool.completed", d, 0, 0, EV_NORMAL, NULL);
	json_object_put(args);
	buf_release(&result);
	buf_release(&error);

	if (++t->act_next < json_object_array_length(t->calls))
		return;
	d = obj();
	json_object_object_add(d, "completed", json_object_new_boolean(1));
	put_i(d, "success_count", t->act_ok);
	put_i(d, "error_count", t->act_err);
	put_i(d, "duration_ms", now_ms() - t->act_start_ms);
	emit(t, "act.completed", d, 0, 0, EV_NORMAL, NULL);
	reason_begin(r, t);
}

void turn_step(struct runner *r, struct turn *t)
{
	long long now = now_ms();
	if (t->dropped) {
		stop_transfer(r, t);
		return;
	}
	switch (t->phase) {
	case PH_RETRY:
		if (now >= t->retry_at_ms)
			llm_begin(r, t);
		break;
	case PH_REASON:
		if (t->sim_active) {
			sim_play(r, t);
		} else if (t->easy) {
			int got = t->last_byte_ms > t->call_start_ms;
			long limit = got ? r->llm_idle_s : r->llm_first_byte_s;
			if (now - t->last_byte_ms > limit * 1000) {
				log_info("turn %s: provider silent for %ld s",
					 t->id, limit);
				turn_transfer_done(r, t, CURLE_OPERATION_TIMEDOUT);
			}
		}
		break;
	case PH_ACT:
		act_step(r, t);
		break;
	case PH_DONE:
		break;
	}
}

/* --- loading a turn ------------------------------------------------------*/

/* Merge capability lists by ref (first appearance keeps its place, a later
 * layer's config wins) into t->capcfg, and collect the prompt additions
 * and tool definitions of the catalogue. */
static void merge_capabilities(struct turn *t, struct buf *prompt)
{
	static const char *layers[] = {"harness", "agent", "session"};
	struct json_object *order = json_object_new_array();
	size_t i, j;

	t->capcfg = obj();
	for (i = 0; i < 3; i++) {
		struct json_object *caps = jx_get(jx_get(t->cfg, layers[i]), "capabilities");
		size_t n = caps ? json_object_array_length(caps) : 0;
		for (j = 0; j < n; j++) {
			struct json_object *c = json_object_array_get_idx(caps, j);
			const char *ref = jx_gets(c, "ref");
			struct json_object *cfg = jx_get(c, "config");
			if (!ref || !catalog_find(ref))
				continue;
			if (!jx_get(t->capcfg, ref))
				json_object_array_add(order, json_object_new_string(ref));
			json_object_object_add(t->capcfg, ref,
					       cfg ? json_object_get(cfg) : obj());
		}
	}
	t->tools = json_object_new_array();
	for (i = 0; i < json_object_array_length(order); i++) {
		const struct catalog_cap *cap = catalog_find(
			json_object_get_string(json_object_array_get_idx(order, i)));
		struct json_object *defs = json_tokener_parse(cap->tools_json);
		for (j = 0; defs && j < json_object_array_length(defs); j++)
			json_object_array_add(t->tools, json_object_get(
				json_object_array_get_idx(defs, j)));
		json_object_put(defs);
		if (cap->system_prompt && *cap->system_prompt) {
			if (prompt->len)
				buf_adds(prompt, "\n\n");
			buf_adds(prompt, cap->system_prompt);
		}
	}
	json_object_put(order);
}

/* image_file parts get their bytes (base64) from the images table. */
static int resolve_images(struct runner *r, struct turn *t, int *any)
{
	static const char q[] =
		"SELECT media_type, encode(data, 'base64') FROM images "
		"WHERE id = $1 AND org_id = $2";
	struct json_object *events = jx_get(t->cfg, "events");
	size_t i, j;

	*any = 0;
	for (i = 0; i < json_object_array_length(events); i++) {
		struct json_object *e = json_object_array_get_idx(events, i);
		struct json_object *parts = jx_get(jx_get(jx_get(e, "data"), "message"), "content");
		if (!jx_gets(e, "type") || strcmp(jx_gets(e, "type"), "input.message") ||
		    !parts || !json_object_is_type(parts, json_type_array))
			continue;
		for (j = 0; j < json_object_array_length(parts); j++) {
			struct json_object *p = json_object_array_get_idx(parts, j);
			const char *type = jx_gets(p, "type"), *img = jx_gets(p, "image_id");
			char hex[33];
			const char *prm[2] = {hex, t->org};
			PGresult *res;
			if (!type || strcmp(type, "text"))
				*any = 1;
			if (!type || strcmp(type, "image_file") || !img ||
			    !ids_parse(img, "img", hex))
				continue;
			res = db_exec(&r->tools, q, 2, prm);
			if (!res)
				return -1;
			if (PQntuples(res)) {
				put_s(p, "media_type", PQgetvalue(res, 0, 0));
				/* encode() wraps lines; providers want none */
				struct buf b = BUF_INIT;
				const char *s = PQgetvalue(res, 0, 1);
				buf_init(&b, (size_t)PQgetlength(res, 0, 1));
				for (; *s; s++)
					if (*s != '\n')
						buf_addch(&b, *s);
				put_s(p, "base64", b.data);
				buf_release(&b);
			}
			PQclear(res);
		}
	}
	return 0;
}

static int load(struct runner *r, struct turn *t, const char *cfg)
{
	struct json_object *model, *ctl, *caps, *sess, *agent;
	struct buf prompt = BUF_INIT, key = BUF_INIT;
	struct apierr e;
	const char *v, *layers[] = {"harness", "agent", "session"};
	int i, any_image = 0, vision = 0, ret = -1;
	int64_t n64;
	double dv;

	t->cfg = cfg ? jx_parse(cfg, strlen(cfg), &e) : NULL;
	if (!t->cfg) {
		t->dropped = 1; /* the turn or its session is gone */
		return -1;
	}
	json_object_object_add(t->cfg, "events",
			       history_cache_merge(t->session, t->id,
						   jx_get(t->cfg, "events")));
	if (jx_gets(t->cfg, "input_message_id"))
		ids_parse(jx_gets(t->cfg, "input_message_id"), "msg", t->input_msg);
	{
		struct json_object *ev = jx_get(t->cfg, "events");
		char tid[40];
		size_t k;
		snprintf(tid, sizeof(tid), "trn_%s", t->id);
		for (k = 0; k < json_object_array_length(ev); k++) {
			struct json_object *x = json_object_array_get_idx(ev, k);
			if (jx_gets(x, "type") && !strcmp(jx_gets(x, "type"), "turn.started") &&
			    jx_gets(x, "turn_id") && !strcmp(jx_gets(x, "turn_id"), tid))
				t->announced = 1;
		}
	}

	buf_init(&prompt, 0);
	buf_init(&key, 0);
	for (i = 0; i < 3; i++) {
		const char *sp = jx_gets(jx_get(t->cfg, layers[i]), "system_prompt");
		if (sp && *sp) {
			if (prompt.len)
				buf_adds(&prompt, "\n\n");
			buf_adds(&prompt, sp);
		}
	}
	merge_capabilities(t, &prompt);
	json_object_object_add(t->cfg, "_system_prompt",
			       json_object_new_string(prompt.data));

	ctl = jx_get(t->cfg, "controls");
	if (jx_get_int(ctl, "max_tokens", 1, 1000000, &n64, &e) > 0)
		t->max_tokens = (long)n64;
	if (jx_get_double(ctl, "temperature", 0, 2, &dv, &e) > 0) {
		t->temperature = dv;
		t->has_temperature = 1;
	}
	v = jx_gets(jx_get(ctl, "reasoning"), "effort");
	snprintf(t->effort, sizeof(t->effort), "%s", v ? v : "");
	sess = jx_get(t->cfg, "session");
	agent = jx_get(t->cfg, "agent");
	t->max_iterations = (int)r->default_max_iterations;
	if (jx_get(agent, "max_iterations"))
		t->max_iterations = json_object_get_int(jx_get(agent, "max_iterations"));
	if (jx_get(sess, "max_iterations"))
		t->max_iterations = json_object_get_int(jx_get(sess, "max_iterations"));

	model = jx_get(t->cfg, "model");
	if (!model) {
		fail(t, "model_not_found",
		     "no model is configured for this session");
		goto done;
	}
	t->model = xstrdup(jx_gets(model, "model_id"));
	t->model_id = xstrdup(jx_gets(model, "id"));
	t->provider_id = xstrdup(jx_gets(model, "provider_id"));
	t->base_url = jx_gets(model, "base_url") ? xstrdup(jx_gets(model, "base_url")) : NULL;
	t->context_tokens = json_object_get_int64(jx_get(model, "context_tokens"));
	t->kind = (enum llm_kind)llm_kind_from_type(jx_gets(model, "provider_type"));
	caps = jx_get(model, "capabilities");
	for (size_t k = 0; caps && k < json_object_array_length(caps); k++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(caps, k)), "vision"))
			vision = 1;
	if (!json_object_get_boolean(jx_get(model, "enabled")) ||
	    strcmp(jx_gets(model, "provider_status"), "active")) {
		fail(t, "model_disabled", "the model %s is disabled", t->model);
		goto done;
	}
	if (jx_gets(model, "api_key_enc")) {
		if (!r->have_server_key ||
		    crypto_open(r->server_key, jx_gets(model, "api_key_enc"), &key) != 0) {
			fail(t, "provider_key_unreadable",
			     "the provider's API key cannot be decrypted with "
			     "this server's key");
			goto done;
		}
		t->api_key = xstrdup(key.data);
	}
	if (resolve_images(r, t, &any_image) != 0)
		goto out;
	if (any_image && !vision) {
		fail(t, "unsupported_input",
		     "the model %s does not accept images", t->model);
		goto done;
	}
done:
	ret = 0;
out:
	buf_release(&prompt);
	buf_release(&key);
	return ret;
}

/* Where a taken-over turn stands: iterations so far and the tool calls
 * of its last message that have no result yet. */
static int resume_point(struct turn *t)
{
	struct json_object *events = jx_get(t->cfg, "events"), *last = NULL;
	struct json_object *done = obj();
	char tid[40];
	size_t i, n = json_object_array_length(events);
	int pending = 0;

	snprintf(tid, sizeof(tid), "trn_%s", t->id);
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(events, i);
		const char *type = jx_gets(e, "type"), *et = jx_gets(e, "turn_id");
		if (!type || !et || strcmp(et, tid))
			continue;
		if (!strcmp(type, "reason.started"))
			t->iterations++;
		else if (!strcmp(type, "output.message.completed"))
			last = jx_get(jx_get(e, "data"), "message");
		else if (!strcmp(type, "tool.completed"))
			json_object_object_add(done, jx_gets(jx_get(e, "data"), "tool_call_id"),
					       json_object_new_boolean(1));
	}
	json_object_put(t->calls);
	t->calls = json_object_new_array();
	if (last) {
		struct json_object *parts = jx_get(last, "content");
		for (i = 0; parts && i < json_object_array_length(parts); i++) {
			struct json_object *p = json_object_array_get_idx(parts, i), *c;
			if (!jx_gets(p, "type") || strcmp(jx_gets(p, "type"), "tool_call") ||
			    jx_get(done, jx_gets(p, "id")))
				continue;
			c = obj();
			put_s(c, "id", jx_gets(p, "id"));
			put_s(c, "name", jx_gets(p, "name"));
			put_s(c, "arguments", jx_get(p, "arguments")
				? json_object_to_json_string_ext(jx_get(p, "arguments"),
								 JSON_C_TO_STRING_PLAIN)
				: "{}");
			json_object_array_add(t->calls, c);
			pending++;
		}
	}
	json_object_put(done);
	return pending;
}

struct turn *turn_start(struct runner *r, const char *id, const char *session,
			const char *org, const char *state, int attempt,
			const char *cfg)
{
	struct turn *t = xcalloc(1, sizeof(*t));

	snprintf(t->id, sizeof(t->id), "%s", id);
	snprintf(t->session, sizeof(t->session), "%s", session);
	snprintf(t->org, sizeof(t->org), "%s", org);
	t->attempt = attempt;
	t->r = r;
	t->started_ms = now_ms();
	t->m_seq = t->t_seq = -1;
	buf_init(&t->text, 0);
	buf_init(&t->thinking, 0);
	buf_init(&t->req_body, 0);
	buf_init(&t->err_body, 0);
	t->calls = json_object_new_array();
	t->next = r->turns;
	r->turns = t;
	r->inflight++;

	if (load(r, t, cfg) != 0 || t->phase == PH_DONE) {
		if (t->phase != PH_DONE)
			t->dropped = 1;
		return t;
	}
	log_info("turn %s: claimed (attempt %d, %s, model %s)", t->id,
		 attempt, state, t->model);
	if (!strcmp(state, "cancelling")) {
		/* the runner that held it died mid-cancel */
		finish_cancel(t);
		return t;
	}
	if (attempt > MAX_TRIES) {
		fail(t, "worker_lost",
		     "the turn was interrupted %d times and was given up",
		     attempt - 1);
		return t;
	}
	if (resume_point(t) > 0) {
		struct json_object *d = obj(), *calls = json_object_new_array();
		size_t i;
		for (i = 0; i < json_object_array_length(t->calls); i++) {
			struct json_object *c = json_object_array_get_idx(t->calls, i);
			struct json_object *tc = obj();
			put_s(tc, "id", jx_gets(c, "id"));
			put_s(tc, "name", jx_gets(c, "name"));
			json_object_array_add(calls, tc);
		}
		json_object_object_add(d, "tool_calls", calls);
		emit(t, "act.started", d, 0, 0, EV_NORMAL, NULL);
		t->phase = PH_ACT;
		t->act_next = 0;
		t->act_start_ms = now_ms();
		return t;
	}
	announce(t);
	reason_begin(r, t);
	return t;
}

struct turn *turn_find(struct runner *r, const char *id)
{
	struct turn *t;
	for (t = r->turns; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

void turn_free(struct runner *r, struct turn *t)
{
	struct turn **pp;
	for (pp = &r->turns; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	r->inflight--;
	stop_transfer(r, t);
	json_object_put(t->cfg);
	json_object_put(t->history);
	json_object_put(t->tools);
	json_object_put(t->capcfg);
	json_object_put(t->calls);
	free(t->thinking_sig);
	free(t->model);
	free(t->model_id);
	free(t->provider_id);
	free(t->base_url);
	if (t->api_key) {
		memset(t->api_key, 0, strlen(t->api_key));
		free(t->api_key);
	}
	buf_release(&t->text);
	buf_release(&t->thinking);
	buf_release(&t->req_body);
	buf_release(&t->err_body);
	free(t);
}
