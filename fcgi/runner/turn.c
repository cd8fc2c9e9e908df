/*
 * turn: one turn's life in the runner (ARCHITECTURE 3.3): reason (one streamed
 * LLM call, or an llmsim script) -> act (run the tools one at a time) ->
 * reason ... until an answer without tool calls, max_iterations, a
 * failure, or a cancel. What a turn says is built in turn_events.c; its
 * configuration is read in turn_load.c; it starts (a takeover, attempt
 * > 1, continuing from the log) and ends in turn_start.c.
 */
#include "turn_int.h"
#include "guard.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "mcp.h"
#include "tools/tools.h"
#include "utf8.h"
#include "tools/virtual_bash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void turn_stop_transfer(struct runner *r, struct turn *t)
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
	if (t->img_fetch) {
		image_fetch_free(r, t->img_fetch);
		t->img_fetch = NULL;
	}
	if (t->fetch) {
		curl_multi_remove_handle(r->multi, web_fetch_easy(t->fetch));
		web_fetch_free(t->fetch);
		t->fetch = NULL;
	}
	mcp_stop(r, t); /* an MCP request: removed now */
	if (t->vbash) { /* kills its whole process tree now */
		vbash_abort(t->vbash);
		t->vbash = NULL;
	}
}

void turn_cancel(struct runner *r, struct turn *t)
{
	if (t->phase == PH_DONE || t->dropped)
		return;
	log_info("turn %s: cancelled", t->id);
	turn_stop_transfer(r,
			   t); /* aborts the HTTP transfer now, not after it */
	t->cancelling = 1;
	turn_finish_cancel(t);
}

void turn_refused(struct turn *t)
{
	if (t->dropped || t->cancelling)
		return;
	log_info("turn %s: cancelled while finishing", t->id);
	turn_stop_transfer(t->r, t);
	t->cancelling = 1;
	turn_finish_cancel(t);
}

void turn_abort(struct runner *r, struct turn *t, const char *code,
		const char *why)
{
	turn_stop_transfer(r, t);
	if (t->cancelling)
		turn_finish_cancel(t);
	else
		turn_fail(t, code, "%s", why);
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
	jx_put_str(d, "thinking", t->thinking.data);
	turn_emit(t, "reason.thinking.completed", d, 0, 0, EV_NORMAL, NULL);
	t->think_done = 1;
}

static void start_message(struct turn *t)
{
	struct json_object *d;
	if (t->msg_started)
		return;
	end_thinking(t);
	d = turn_ref(t);
	jx_put_str(d, "model", t->model);
	jx_put_int(d, "iteration", t->iterations);
	jx_put_str(d, "message_id", t->msg_id);
	turn_emit(t, "output.message.started", d, 0, 0, EV_NORMAL, NULL);
	t->msg_started = 1;
}

static void on_text(void *ctx, const char *s, size_t n)
{
	struct turn *t = ctx;
	start_message(t);
	utf8_clean(&t->text, s, n); /* deltas are text rows too */
}

static void on_thinking(void *ctx, const char *s, size_t n)
{
	struct turn *t = ctx;
	if (!t->think_started) {
		struct json_object *d = turn_ref(t);
		jx_put_str(d, "model", t->model);
		turn_emit(t, "reason.thinking.started", d, 0, 0, EV_NORMAL,
			  NULL);
		t->think_started = 1;
	}
	if (!t->think_done)
		utf8_clean(&t->thinking, s, n);
}

static void on_tool_call(void *ctx, const char *id, const char *name,
			 const char *args)
{
	struct turn *t = ctx;
	struct json_object *c = jx_obj();
	char buf[IDS_MAX_LEN];
	jx_put_str(c, "id", turn_wait_call_id(t, id, buf));
	jx_put_str(c, "name", name);
	jx_put_str(c, "arguments", args && *args ? args : "{}");
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
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE,
				  &t->http_status);
	if (t->http_status < 200 || t->http_status >= 300) {
		/* 64 KiB explain the error; the rest (a bomb?) is not read */
		if (t->err_body.len >= 65536)
			return CURL_WRITEFUNC_ERROR;
		buf_add(&t->err_body, data, n);
		return n;
	}
	if (llm_parser_feed(t->parser, data, n) != 0) {
		snprintf(t->stream_error, sizeof(t->stream_error), "%s: %s",
			 llm_parser_too_large(t->parser) ? "output_too_large"
							 : "malformed_response",
			 llm_parser_error(t->parser));
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
	q.input_tokens = t->history_tokens;
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
		t->next_step_ms =
			now_ms() + (t->plan.n ? t->plan.steps[0].delay_ms : 0);
		return;
	}
	buf_reset(&t->req_body);
	if (llm_build(&q, &url, &t->headers, &t->req_body, &err) != 0) {
		turn_fail(t, "invalid_request", "%s", err.data);
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
	guard_curl(&t->guard, t->easy, GUARD_PROVIDERS, 0);
	curl_easy_setopt(t->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_multi_add_handle(r->multi, t->easy);
out:
	buf_release(&url);
	buf_release(&err);
}

void turn_reason_begin(struct runner *r, struct turn *t)
{
	struct json_object *d, *md;
	struct history_prefix **pre;
	char ref[40];
	int too_long = 0;

	if (t->iterations >= t->max_iterations) {
		turn_complete(t, "max_iterations");
		return;
	}
	if (now_ms() - t->started_ms > r->turn_wall_s * 1000) {
		turn_fail(t, "timeout", "the turn ran longer than %ld s",
			  r->turn_wall_s);
		return;
	}
	/* image parts given by url are fetched first, one at a time; each
	 * fetch's end calls turn_reason_begin again */
	if ((t->img_fetch = image_fetch_next(r, t))) {
		t->phase =
			PH_REASON; /* waits for the fetch, like an LLM call */
		return;
	}
	/* the tools of its MCP servers, listed first (mcp_turn.c); the
	 * listing's end calls turn_reason_begin again */
	if (mcp_list_next(r, t)) {
		t->phase = PH_REASON;
		return;
	}
	json_object_put(t->history);
	snprintf(ref, sizeof(ref), "trn_%s", t->id);
	t->history = NULL;
	pre = history_cache_prefix(t->session);
	if (pre)
		t->history = history_build_shared(
			pre, jx_get(t->cfg, "events"), t->cached_events, ref,
			t->system_prompt, t->context_tokens,
			t->max_tokens ? t->max_tokens : 4096,
			&t->history_tokens);
	if (!t->history)
		t->history = history_build(jx_get(t->cfg, "events"), ref,
					   t->system_prompt, t->context_tokens,
					   t->max_tokens ? t->max_tokens : 4096,
					   &t->history_tokens, &too_long);
	if (too_long) {
		turn_fail(
			t, "context_length_exceeded",
			"the conversation does not fit the model's context window "
			"(%ld tokens)",
			t->context_tokens);
		return;
	}
	t->iterations++;
	d = jx_obj();
	jx_put_str(d, "harness_id",
		   jx_gets(jx_get(t->cfg, "session"), "harness_id"));
	if (jx_gets(jx_get(t->cfg, "session"), "agent_id"))
		jx_put_str(d, "agent_id",
			   jx_gets(jx_get(t->cfg, "session"), "agent_id"));
	md = jx_obj();
	jx_put_str(md, "model", t->model);
	jx_put_str(md, "model_id", t->model_id);
	jx_put_str(md, "provider_id", t->provider_id);
	json_object_object_add(d, "metadata", md);
	turn_emit(t, "reason.started", d, 0, 0, EV_NORMAL, NULL);
	t->tries = 0;
	llm_begin(r, t);
}

static void reason_complete(struct runner *r, struct turn *t)
{
	struct json_object *content, *d, *m, *md;
	size_t i, n = json_object_array_length(t->calls);

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
		struct json_object *p = jx_obj();
		jx_put_str(p, "type", "text");
		jx_put_str(p, "text", t->text.data);
		json_object_array_add(content, p);
	}
	for (i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(t->calls, i);
		struct json_object *p = jx_obj(), *args;
		struct apierr e;
		const char *a = jx_gets(c, "arguments");
		jx_put_str(p, "type", "tool_call");
		jx_put_str(p, "id", jx_gets(c, "id"));
		jx_put_str(p, "name", jx_gets(c, "name"));
		args = jx_parse(a, strlen(a), &e);
		json_object_object_add(p, "arguments",
				       args ? args : json_object_new_string(a));
		json_object_array_add(content, p);
	}
	m = turn_agent_message(t, t->msg_id, content);
	turn_wait_note_calls(t, m); /* their ids are taken in this turn */
	if (t->thinking.len)
		jx_put_str(m, "thinking", t->thinking.data);
	/* Anthropic wants its signed thinking block back in a tool loop */
	if (t->thinking_sig)
		jx_put_str(m, "thinking_signature", t->thinking_sig);
	d = jx_obj();
	json_object_object_add(d, "message", m);
	md = jx_obj();
	jx_put_str(md, "model", t->model);
	jx_put_str(md, "model_id", t->model_id);
	jx_put_str(md, "provider_id", t->provider_id);
	json_object_object_add(d, "metadata", md);
	json_object_object_add(d, "usage", turn_usage(t->call_in, t->call_out));
	turn_note_event(t, "output.message.completed", d);
	turn_emit(t, "output.message.completed", d, t->call_in, t->call_out,
		  EV_NORMAL, NULL);
	t->turn_in += t->call_in;
	t->turn_out += t->call_out;

	d = jx_obj();
	json_object_object_add(d, "success", json_object_new_boolean(1));
	json_object_object_add(
		d, "text_preview",
		json_object_new_string_len(
			t->text.data,
			(int)utf8_cut(t->text.data, t->text.len, 200)));
	json_object_object_add(d, "has_tool_calls",
			       json_object_new_boolean(n > 0));
	jx_put_int(d, "tool_call_count", (long long)n);
	jx_put_int(d, "duration_ms", now_ms() - t->call_start_ms);
	json_object_object_add(d, "usage", turn_usage(t->call_in, t->call_out));
	turn_emit(t, "reason.completed", d, 0, 0, EV_NORMAL, NULL);

	if (!n) {
		turn_complete(t, "end_turn");
		return;
	}
	d = jx_obj();
	json_object_object_add(d, "tool_calls", json_object_new_array());
	for (i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(t->calls, i);
		struct json_object *tc = jx_obj();
		jx_put_str(tc, "id", jx_gets(c, "id"));
		jx_put_str(tc, "name", jx_gets(c, "name"));
		json_object_array_add(jx_get(d, "tool_calls"), tc);
	}
	turn_emit(t, "act.started", d, 0, 0, EV_NORMAL, NULL);
	t->phase = PH_ACT;
	t->act_next = 0;
	t->act_ok = t->act_err = 0;
	t->act_start_ms = now_ms();
}

static int classify(struct turn *t, CURLcode rc, const char **code,
		    struct buf *why)
{
	/* returns 1 if the failure is worth another try */
	if (guard_refused(&t->guard, rc)) {
		*code = "address_refused";
		buf_addf(why,
			 "the model provider's address is refused by the "
			 "address guard (%s); an operator can allow it "
			 "with guard_allow_providers",
			 t->guard.why);
		return 0;
	}
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
	if (!strncmp(t->stream_error, "output_too_large: ", 18)) {
		*code = "output_too_large";
		buf_adds(why, t->stream_error + 18);
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

/* A transfer ended: an LLM call (curl, or an llmsim script) or the
 * fetch_url of the act phase. */
void turn_transfer_done(struct runner *r, struct turn *t, CURLcode rc)
{
	struct buf why = BUF_INIT;
	const char *code = NULL;
	int ok;

	if (t->fetch) { /* the act phase's transfer, not an LLM call */
		turn_act_fetch_done(r, t, rc);
		return;
	}
	if (mcp_busy(t)) { /* an MCP listing or tools/call */
		mcp_transfer_done(r, t, rc);
		return;
	}
	if (t->img_fetch) { /* a url image before reasoning */
		struct image_fetch *f = t->img_fetch;
		t->img_fetch = NULL;
		if (image_fetch_done(r, f, rc, &why) == 0)
			turn_reason_begin(r, t);
		else
			turn_fail(t, "image_unavailable", "%s", why.data);
		image_fetch_free(r, f);
		buf_release(&why);
		return;
	}
	if (t->easy && !t->http_status)
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE,
				  &t->http_status);
	/* llmsim sets http_status as a provider would answer (a simulated
	 * error is a 4xx/5xx) and has no parser to finish */
	ok = rc == CURLE_OK && !t->stream_error[0] && t->http_status >= 200 &&
	     t->http_status < 300 &&
	     (t->kind == LLM_SIM || llm_parser_finish(t->parser) == 0);
	if (ok && t->parser && llm_parser_thinking_signature(t->parser))
		t->thinking_sig =
			xstrdup(llm_parser_thinking_signature(t->parser));
	turn_stop_transfer(r, t);
	if (t->dropped || t->phase == PH_DONE)
		return;
	if (ok) {
		reason_complete(r, t);
		return;
	}
	buf_init(&why, 0);
	if (classify(t, rc, &code, &why) && t->tries < TURN_MAX_TRIES) {
		long backoff = 250L << t->tries;
		log_info("turn %s: try %d failed (%s); retrying in %ld ms",
			 t->id, t->tries, why.data, backoff);
		t->phase = PH_RETRY;
		t->retry_at_ms = now_ms() + backoff;
	} else {
		turn_fail(t, code, "%s", why.data);
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
					 : !strcmp(s->name, "server")   ? 500
									: 400;
			buf_reset(&t->err_body);
			buf_adds(&t->err_body,
				 s->text ? s->text : "simulated error");
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

void turn_step(struct runner *r, struct turn *t)
{
	long long now = now_ms();
	if (t->dropped) {
		turn_stop_transfer(r, t);
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
				turn_transfer_done(r, t,
						   CURLE_OPERATION_TIMEDOUT);
			}
		}
		break;
	case PH_ACT:
		if (t->vbash)
			vbash_step(r, t);
		else if (!t->fetch && !mcp_busy(t))
			turn_act_step(r, t);
		break;
	case PH_WAIT:
		turn_wait_step(r, t);
		break;
	case PH_DONE:
		break;
	}
}
