/*
 * turn_start: a turn's start, when the runner claims it (a takeover,
 * attempt > 1, continues from the log: ARCHITECTURE 5.3), and its end
 * (turn_free, once its events have landed); the loop between is turn.c.
 */
#include "turn_int.h"
#include "json.h"
#include "log.h"
#include "mcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* For a takeover: the turn's last message in the log (its own events are
 * the tail) is its answer (no tool calls) or its failure message (with
 * error_code): queue the closing events that did not land and return 1. */
static int answered_in_log(struct turn *t)
{
	struct json_object *events = jx_get(t->cfg, "events"), *d, *parts;
	const char *code;
	char tid[40];
	size_t i = json_object_array_length(events), k;

	snprintf(tid, sizeof(tid), "trn_%s", t->id);
	for (d = NULL; i > 0 && !d; i--) {
		struct json_object *e =
			json_object_array_get_idx(events, i - 1);
		const char *et = jx_gets(e, "turn_id"),
			   *type = jx_gets(e, "type");
		if (!et || strcmp(et, tid))
			return 0;
		if (type && !strcmp(type, "output.message.completed"))
			d = jx_get(e, "data");
		else if (type && !strcmp(type, "reason.started"))
			return 0; /* a reasoning began after it */
	}
	if (!d)
		return 0;
	parts = jx_get(jx_get(d, "message"), "content");
	for (k = 0; parts && k < json_object_array_length(parts); k++) {
		const char *pt =
			jx_gets(json_object_array_get_idx(parts, k), "type");
		if (pt && !strcmp(pt, "tool_call"))
			return 0;
	}
	turn_announce(t);
	if ((code = jx_gets(d, "error_code"))) {
		struct json_object *f = turn_ref(t);
		jx_put_str(f, "error",
			   "the turn failed before it was taken over");
		jx_put_str(f, "error_code", code);
		turn_emit(t, "turn.failed", f, 0, 0, EV_NORMAL, NULL);
		turn_finish_idle(t, "failed");
	} else {
		turn_complete(t, "end_turn");
	}
	return 1;
}

struct turn *turn_start(struct runner *r, const char *id, const char *session,
			const char *org, const char *state, int attempt,
			long long age_ms, const char *cfg)
{
	struct turn *t = xcalloc(1, sizeof(*t));

	snprintf(t->id, sizeof(t->id), "%s", id);
	snprintf(t->session, sizeof(t->session), "%s", session);
	snprintf(t->org, sizeof(t->org), "%s", org);
	t->attempt = attempt;
	t->r = r;
	/* the wall-time limit counts from the first start, across takeovers */
	t->started_ms = now_ms() - (age_ms > 0 ? age_ms : 0);
	t->m_seq = t->t_seq = -1;
	buf_init(&t->text, 0);
	buf_init(&t->thinking, 0);
	buf_init(&t->req_body, 0);
	buf_init(&t->err_body, 0);
	t->calls = json_object_new_array();
	t->next = r->turns;
	r->turns = t;
	r->inflight++;

	if (!cfg && attempt > TURN_MAX_TRIES) {
		/* its configuration could not be read, claim after claim */
		turn_fail(t, "turn_unloadable",
			  "the turn's data could not be read %d times and it "
			  "was given up",
			  attempt - 1);
		return t;
	}
	if (turn_load(r, t, cfg) != 0 || t->phase == PH_DONE) {
		if (t->phase != PH_DONE)
			t->dropped = 1;
		return t;
	}
	log_info("turn %s: claimed (attempt %d, %s, model %s)", t->id, attempt,
		 state, t->model);
	if (!strcmp(state, "cancelling")) {
		/* the runner that held it died mid-cancel */
		turn_finish_cancel(t);
		return t;
	}
	/* a resume after a wait starts a new count (attempt_base) */
	if (attempt - t->attempt_base > TURN_MAX_TRIES) {
		turn_fail(t, "worker_lost",
			  "the turn was interrupted %d times and was given up",
			  attempt - t->attempt_base - 1);
		return t;
	}
	if (turn_resume_point(t) == 0 && answered_in_log(t)) {
		/* asking the model again would give the user a second
		 * answer: only the closing events are missing */
		log_info("turn %s: answered before the takeover; closing it",
			 t->id);
		return t;
	}
	if (json_object_array_length(t->calls) > 0) {
		struct json_object *d = jx_obj(),
				   *calls = json_object_new_array();
		size_t i;
		for (i = 0; i < json_object_array_length(t->calls); i++) {
			struct json_object *c =
				json_object_array_get_idx(t->calls, i);
			struct json_object *tc = jx_obj();
			jx_put_str(tc, "id", jx_gets(c, "id"));
			jx_put_str(tc, "name", jx_gets(c, "name"));
			json_object_array_add(calls, tc);
		}
		json_object_object_add(d, "tool_calls", calls);
		turn_emit(t, "act.started", d, 0, 0, EV_NORMAL, NULL);
		t->phase = PH_ACT;
		t->act_next = 0;
		t->act_start_ms = now_ms();
		return t;
	}
	turn_announce(t);
	turn_wait_close_act(t, attempt); /* after a wait: turn_wait.c */
	turn_reason_begin(r, t);
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
	turn_stop_transfer(r, t);
	json_object_put(t->cfg);
	json_object_put(t->history);
	json_object_put(t->tools);
	json_object_put(t->capcfg);
	json_object_put(t->calls);
	mcp_turn_free(r, t->mcp);
	turn_wait_free(t);
	free(t->thinking_sig);
	free(t->system_prompt);
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
