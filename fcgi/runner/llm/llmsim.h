/*
 * llmsim: the built-in, deterministic LLM simulator (provider_type
 * "llmsim"), the out-of-the-box default model and the model of the
 * benchmarks. It makes no network call: llmsim_plan() turns a request
 * into a timed script of steps that the runner plays back on its own
 * timers, exactly as if they were streamed by a provider.
 *
 * Behaviour is chosen by the model name and by directives, which are
 * lines starting with '#' in the last user message:
 *   model "llmsim"          echo the user's text, ~10 ms per token
 *   model "llmsim-instant"  the same with no delays
 *   #tokens N               answer with N words ("token1 token2 ...")
 *   #rate R                 R tokens per second (0 = instant)
 *   #think                  stream a short thinking block first
 *   #tool NAME {json}       call tool NAME with those arguments first;
 *                           repeatable (several calls in one step);
 *                           once results are in the history, answer
 *                           with a summary of them
 *   #error CODE             fail the call (CODE: rate_limit, server,
 *                           bad_request) as a provider would
 *   #text Some words        answer exactly with these words
 * With no directive the reply is "You said: <text>".
 */
#ifndef EVR_LLMSIM_H
#define EVR_LLMSIM_H

#include "llm.h"

enum llmsim_kind {
	SIM_TEXT,
	SIM_THINKING,
	SIM_TOOL_CALL,
	SIM_ERROR,
};

struct llmsim_step {
	enum llmsim_kind kind;
	long delay_ms; /* wait before this step */
	char *text;    /* SIM_TEXT / SIM_THINKING chunk; SIM_ERROR message */
	char *id, *name, *args; /* SIM_TOOL_CALL; SIM_ERROR: name = code */
	int retryable;          /* SIM_ERROR */
};

struct llmsim_plan {
	struct llmsim_step *steps;
	size_t n;
	long input_tokens, output_tokens;
	const char *stop_reason; /* "end_turn", "tool_calls", "max_tokens"
				  * (max_tokens reached) or "error" */
};

/* Plan the response to r (kind LLM_SIM). Returns 0. */
int llmsim_plan(const struct llm_request *r, struct llmsim_plan *out);
void llmsim_plan_free(struct llmsim_plan *p);

#endif
