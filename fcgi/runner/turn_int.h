/*
 * turn_int: what the parts of a turn share inside the runner. turn.c runs
 * the loop (reason, the LLM transfer, llmsim playback), turn_act.c the
 * act phase (the tools), turn_events.c
 * builds what a turn says (events, messages, the terminal paths), and
 * turn_load.c reads a claimed turn's configuration and, for a takeover,
 * where it stands. Every function takes the turn it speaks for; the JSON
 * objects passed to turn_emit() are owned by it.
 */
#ifndef EVR_TURN_INT_H
#define EVR_TURN_INT_H

#include "json.h"
#include "runner.h"
#include "tools/tools.h"

#define TURN_MAX_TRIES 3

/* Nesting. The API accepts JX_MAX_DEPTH levels; the turn's configuration
 * wraps stored event data in 3 more (document, events array, event), so
 * the runner reads it with a bound twice the API's, and every event it
 * writes is kept within TURN_EVENT_DEPTH so that it can read it back. */
#define TURN_CFG_DEPTH (2 * JX_MAX_DEPTH)
#define TURN_EVENT_DEPTH (TURN_CFG_DEPTH - 8)

/* Queue an event (data: built with json-c; ownership taken). */
void turn_emit(struct turn *t, const char *type, struct json_object *data,
	       long uin, long uout, enum ev_kind kind, const char *final);
/* {"turn_id": "trn_..."}, to build event data on. */
struct json_object *turn_ref(struct turn *t);
struct json_object *turn_usage(long in, long out);
/* An agent message object; content (a parts array) is taken. */
struct json_object *turn_agent_message(struct turn *t, const char *msg_id,
				       struct json_object *content);
struct json_object *turn_text_content(const char *text);
/* Remember an event of this turn for the next history build. */
void turn_note_event(struct turn *t, const char *type,
		     struct json_object *data);
/* turn.started, once per turn (a takeover finds it in the log). */
void turn_announce(struct turn *t);
void turn_finish_idle(struct turn *t, const char *final);
void turn_complete(struct turn *t, const char *stop_reason);
/* An agent message explaining it, turn.failed {error, error_code} and
 * session.idled. */
void turn_fail(struct turn *t, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The two events that close a cancelled turn. */
void turn_finish_cancel(struct turn *t);

/* Stop whatever the turn has in flight (LLM transfer, llmsim script,
 * image fetch, fetch_url, a sandboxed command) and free it (turn.c). */
void turn_stop_transfer(struct runner *r, struct turn *t);

/* Parse the turn's configuration (cfg: evr_turn_config's JSON) and set up
 * model, prompt, tools and controls; a turn that cannot run is failed
 * here (phase PH_DONE). 0, or -1 if the turn is to be dropped. */
int turn_load(struct runner *r, struct turn *t, const char *cfg);
/* Reason: the next LLM call (or llmsim script) of the turn. */
void turn_reason_begin(struct runner *r, struct turn *t);
/* The act phase: start the next tool call; the end of its fetch_url
 * transfer (from turn_transfer_done). */
void turn_act_step(struct runner *r, struct turn *t);
void turn_act_fetch_done(struct runner *r, struct turn *t, CURLcode rc);
/* The outcome of the current tool, when it ran outside turn_act_step
 * (bash: tools/virtual_bash.c). */
void turn_act_tool_done(struct runner *r, struct turn *t, enum tool_status st,
			struct buf *result, struct buf *error);
/* turn_wait.c: waiting for answers from outside (ARCHITECTURE 3.9) */
enum call_disposition {
	CALL_RUN,      /* the runner runs it now */
	CALL_CLIENT,   /* a client-side tool: the client runs it */
	CALL_APPROVAL, /* asks for approval before it runs */
};
/* After turn_load's layers: client-side tools (added to t->tools),
 * policies, the approval mode, approvals in the log, attempt_base, and
 * the waited time taken off the wall-time clock. */
void turn_wait_load(struct turn *t);
enum call_disposition turn_call_disposition(struct turn *t, const char *name,
					    const char *id);
/* A call that is not CALL_RUN is set aside for the wait: 1, else 0. */
int turn_wait_defer(struct turn *t, struct json_object *call);
/* Calls were set aside in this act phase. */
int turn_wait_wanted(struct turn *t);
/* End the act phase by waiting (phase PH_WAIT); turn_wait_step (from
 * turn_step) starts the wait once the turn's events have landed. */
void turn_wait_begin(struct turn *t);
void turn_wait_step(struct runner *r, struct turn *t);
void turn_wait_free(struct turn *t);
/* The id a model's tool call gets: its own when it is 1..CALL_ID_MAX
 * bytes of [A-Za-z0-9_.:-] and no other call of the turn (of its
 * completed messages, or of this response so far) has it, else a new
 * one (into buf, IDS_MAX_LEN). An approval and an answer name a call by
 * its id: a model that sends no id, or an id of an earlier call of the
 * turn (an approved one), must not make two calls one. */
const char *turn_wait_call_id(struct turn *t, const char *id, char *buf);
/* Note the tool calls of a message of the turn (its
 * output.message.completed, in the log or being written). */
void turn_wait_note_calls(struct turn *t, struct json_object *message);
/* A resumed turn whose waited calls are all answered: the act.completed
 * of the act phase the wait ended (its counts from the log), at the
 * first claim after the resume only. */
void turn_wait_close_act(struct turn *t, int attempt);

/* For a takeover: iterations so far and, in t->calls, the tool calls of
 * its last message still without a result; returns how many. */
int turn_resume_point(struct turn *t);

#endif
