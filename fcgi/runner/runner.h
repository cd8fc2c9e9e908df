/*
 * runner: the everruns-runner daemon's shared state.
 *
 * One thread runs everything on one curl multi handle (ARCHITECTURE 1): LLM
 * transfers stream into per-turn parsers, llmsim plays its scripts on
 * timers, PostgreSQL wake-ups (LISTEN turns/cancels) arrive on an extra
 * fd of curl_multi_poll(), and events are written in batches across all
 * turns (writer.c). Nothing holds a transaction across an LLM call or a
 * tool: a turn only *queues* events; the loop flushes them.
 *
 * Connections: `listen` (LISTEN, claims, renewals: short statements),
 * `write` and `write2` (event batches, asynchronous, up to two in flight
 * on disjoint sessions), `deltas` (delta transactions),
 * `tools` (tool queries).
 * Ownership: struct runner owns every struct turn on its list; a turn owns
 * its curl handle, parser, buffers and JSON.
 */
#ifndef EVR_RUNNER_H
#define EVR_RUNNER_H

#include "keyring.h"
#include <curl/curl.h>
#include <json-c/json.h>

#include "buf.h"
#include "db.h"
#include "guard.h"
#include "llm/llm.h"
#include "llm/llmsim.h"

enum turn_phase {
	PH_REASON, /* an LLM call is (about to be) in flight */
	PH_RETRY,  /* waiting for the backoff before another try */
	PH_ACT,    /* tools to run */
	PH_WAIT,   /* about to wait for answers from outside (turn_wait.c) */
	PH_DONE,   /* terminal events queued; freed after the flush */
};

struct turn {
	struct turn *next;
	struct runner *r; /* the owner (for writes from sink callbacks) */
	char id[33], session[33], org[33], input_msg[33];
	int attempt;
	enum turn_phase phase;
	int dropped;    /* fenced or deleted: write nothing more */
	int cancelling; /* a cancel arrived: finish with the cancel pair */
	int announced;  /* turn.started written (or found in the log) */
	int pending;    /* its events queued or in flight: not freed before 0 */
	int in_flight;  /* 1 + the flight its events are in, or 0 (writer.c) */
	int store_failed;   /* writer.c: PostgreSQL refused its events once */
	unsigned held_pass; /* writer.c: an event of it stayed queued */

	/* configuration (from evr_turn_config) */
	struct json_object *cfg;     /* owned */
	size_t plain_events;         /* leading cfg events without images */
	size_t cached_events;        /* leading cfg events of the cache */
	struct json_object *history; /* owned: provider-neutral messages */
	long history_tokens;         /* its estimated size */
	struct json_object *tools;   /* owned: tool definitions */
	struct json_object *capcfg;  /* owned: ref -> config */
	char *system_prompt;         /* owned: the layers' and capabilities' */
	enum llm_kind kind;
	char *model, *model_id, *provider_id, *base_url, *api_key;
	long context_tokens, max_tokens;
	double temperature;
	int has_temperature;
	char effort[8];
	int iterations, max_iterations;
	long long started_ms; /* the turn's first start (its wall-time limit) */

	/* tools from outside (turn_wait.c, ARCHITECTURE 3.9) */
	struct json_object *ctools;   /* owned: client-side tools by name */
	struct json_object *policy;   /* owned: tool name -> its policy */
	int approval_mode;            /* 0 auto, 1 writes, 2 all */
	struct json_object *approved; /* owned: call id -> approved (log) */
	struct json_object *waits;    /* owned: calls deferred this act */
	struct json_object *call_ids; /* owned: this turn's call ids (set) */
	int attempt_base;             /* the attempt at the last resume */
	long long wait_retry_ms;      /* evr_turn_wait failed: retry then */

	/* the current LLM call */
	CURL *easy;
	struct guard guard; /* of easy */
	struct curl_slist *headers;
	struct buf req_body, err_body;
	struct llm_parser *parser;
	struct llm_sink sink;
	long http_status;
	int tries;
	long long call_start_ms, last_byte_ms, retry_at_ms;
	struct llmsim_plan plan;
	size_t plan_pos;
	int sim_active;
	long long next_step_ms;

	/* the assistant message being built */
	char msg_id[48];
	struct buf text, thinking;
	char *thinking_sig; /* owned; Anthropic's signature of the thinking */
	struct json_object *calls; /* owned: [{id,name,arguments}] */
	int msg_started, think_started, think_done;
	long long m_seq, t_seq;       /* sequences of the *.started events */
	size_t text_sent, think_sent; /* bytes already sent as deltas */
	long call_in, call_out, turn_in, turn_out;
	char stream_error[256];
	int stream_error_retryable;

	/* a url image being fetched before reasoning (image_fetch.c) */
	struct image_fetch *img_fetch;

	/* tools of the current act phase */
	struct web_fetch *fetch; /* fetch_url in flight on the multi (owned) */
	struct vbash *vbash;     /* bash running in the sandbox (owned) */
	struct mcp_turn *mcp;    /* its MCP servers, tools, request (mcp.h) */
	long long tool_t0;       /* when the current tool started */
	size_t act_next;
	int act_ok, act_err;
	long long act_start_ms;
};

struct runner {
	char id[33]; /* this runner's uuid (runners table, lease owner) */
	struct db listen, write, write2, deltas, tools;
	/* the listen connection's generation that LISTENs (claims run on
	 * that connection too, and may reconnect it without LISTEN) */
	unsigned listen_gen;
	long long listen_retry_ms; /* no new LISTEN attempt before this */
	CURLM *multi;
	struct turn *turns;
	int inflight, max_inflight;
	int draining;
	double lease_s, renew_s, poll_s;
	long llm_connect_s, llm_first_byte_s, llm_idle_s, llm_total_s;
	long turn_wall_s, tool_result_max, default_max_iterations;
	long tool_timeout_s, tool_wait_max_s;
	long long next_renew_ms, next_poll_ms, next_housekeeping_ms,
		next_delta_ms;
	struct keyring keys; /* the server key; rotation needs no restart */
};

long long now_ms(void);

/* queue.c */
int queue_listen(struct runner *r);
void queue_drain_notifies(struct runner *r, int *want_claim);
int queue_claim(struct runner *r);
void queue_renew(struct runner *r);
void queue_release_all(struct runner *r);
void queue_heartbeat(struct runner *r);
void queue_goodbye(struct runner *r); /* a clean stop: no heartbeat row */

/* turn.c */
/* cfg: the JSON of evr_turn_config() (NULL: the turn is gone). */
/* age_ms: how long ago the turn was first started (0: now). */
struct turn *turn_start(struct runner *r, const char *id, const char *session,
			const char *org, const char *state, int attempt,
			long long age_ms, const char *cfg);
void turn_step(struct runner *r, struct turn *t); /* advance timers/phases */
void turn_cancel(struct runner *r, struct turn *t);
/* The writer saw an event of t refused because t is cancelling: close it
 * with the cancel pair, once. */
void turn_refused(struct turn *t);
/* Stop t at once and close it: turn.failed {code, why}, or the cancel
 * pair when it is being cancelled. */
void turn_abort(struct runner *r, struct turn *t, const char *code,
		const char *why);
void turn_transfer_done(struct runner *r, struct turn *t, CURLcode rc);
void turn_free(struct runner *r, struct turn *t);
struct turn *turn_find(struct runner *r, const char *id);

/* history.c: messages for the provider from the session's events.
 * current_turn ("trn_..."): events of other turns are finished and their
 * messages are built once and kept on the event objects. *tokens: the
 * estimate of what is sent. */
struct json_object *history_build(struct json_object *events,
				  const char *current_turn,
				  const char *system_prompt,
				  long context_tokens, long reserve_tokens,
				  long *tokens, int *too_long);
/* The messages of a session's cached events, built once and grown as the
 * cache grows (kept by history_cache.c): with it, a step of a turn builds
 * only the messages of the events after the cached ones. */
struct history_prefix;
void history_prefix_free(struct history_prefix *pre);
/* history_build with the session's prefix: the first `cached` events
 * are those of the history cache. Returns an array shared with the
 * prefix (valid until the session's next build), or NULL when the
 * conversation needs trimming or has no system prompt: then call
 * history_build. */
struct json_object *
history_build_shared(struct history_prefix **pre, struct json_object *events,
		     size_t cached, const char *current_turn,
		     const char *system_prompt, long context_tokens,
		     long reserve_tokens, long *tokens);

/* history_cache.c: a session's earlier conversation events */
long long history_cache_after(const char *session);
/* Cached events + fresh (events after history_cache_after), as a new
 * array; remembers those of turns before `turn`. *plain (if not NULL):
 * how many leading events of the result are known to hold no non-text
 * message part (image parts need looking at only after them). */
struct json_object *history_cache_merge(const char *session, const char *turn,
					struct json_object *fresh,
					size_t *plain, size_t *cached);
/* The session's built messages, or NULL when it is not cached. */
struct history_prefix **history_cache_prefix(const char *session);
void history_cache_free(void);

/* writer.c */
enum ev_kind { EV_NORMAL, EV_CANCEL };
void writer_init(void);
/* Queue one event of t (data: owned JSON text). final: the turn state it
 * ends in, or NULL. */
void writer_event(struct turn *t, const char *type, char *data, long uin,
		  long uout, enum ev_kind kind, const char *final);
/* Start writing queued events (one transaction, asynchronous) unless a
 * flush is in flight. 0 or -1. */
int writer_flush(struct runner *r);
/* Collect the in-flight flush's result if it is there (call when the
 * write connection is readable, or any time). 0 or -1. */
int writer_poll(struct runner *r);
/* Events wait and no flush is in flight: the loop should not sleep. */
int writer_pending(void);
/* The sockets of the write connections with a flush in flight, into
 * fds[] (room for 2); returns how many. */
int writer_busy_fds(struct runner *r, int fds[]);
/* Write everything queued and wait for it (shutdown). */
void writer_wait(struct runner *r);
/* Send the new text of every turn as deltas (one transaction). */
int writer_deltas(struct runner *r, struct turn *only);

/* image_fetch.c: the next url image part of t's messages without bytes,
 * its transfer started on r->multi (CURLOPT_PRIVATE = t), or NULL when
 * there is none. When the transfer ends, image_fetch_done() puts the bytes
 * on the part: 0, or -1 with the reason in `why` (this turn's own image
 * could not be had). image_fetch_free() also removes it from the multi. */
struct image_fetch;
struct image_fetch *image_fetch_next(struct runner *r, struct turn *t);
int image_fetch_done(struct runner *r, struct image_fetch *f, CURLcode rc,
		     struct buf *why);
void image_fetch_free(struct runner *r, struct image_fetch *f);

/* turn_wait.c: fail the waits past tool_wait_max_s (evr_expire_waits) */
void turn_wait_expire(struct runner *r);

/* housekeeping.c */
void housekeeping_run(struct runner *r);

#endif
