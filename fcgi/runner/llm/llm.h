/*
 * llm: the provider drivers. A driver turns one reasoning step (the
 * conversation so far, the tools, the controls) into an HTTP request, and
 * parses the provider's streamed response incrementally into calls on a
 * `struct llm_sink`. Drivers do no I/O themselves: the runner owns the
 * curl easy handles (on one curl multi) and feeds whatever bytes arrive,
 * split anywhere, to llm_parser_feed(). llmsim, the built-in simulator,
 * has no HTTP at all: see llmsim.h.
 *
 * The conversation uses one internal format (OpenAI Chat Completions
 * style), converted by each driver to its wire format:
 *   [{"role":"system","content":"..."},
 *    {"role":"user","content":"..." | [parts]},
 *    {"role":"assistant","content":"...","tool_calls":[{"id","name","arguments"}],
 *     "thinking":"...","thinking_signature":"..."},
 *    {"role":"tool","tool_call_id":"...","content":"...","is_error":bool}]
 * where user parts are {"type":"text","text"} and
 * {"type":"image","media_type","data" (base64)} (or {"type":"image","url"});
 * "arguments" is a JSON text. "thinking_signature" and "is_error" are
 * optional; only the Anthropic driver uses them.
 * Tools are [{"name","description","parameters"}].
 *
 * Ownership: llm_build() borrows the request; the parser borrows the sink
 * context for its lifetime. Strings passed to sink callbacks are borrowed
 * for the duration of the call only.
 */
#ifndef EVR_LLM_H
#define EVR_LLM_H

#include <curl/curl.h>
#include <json-c/json.h>
#include <stddef.h>

#include "buf.h"

enum llm_kind { LLM_OPENAI, LLM_ANTHROPIC, LLM_SIM };

/* provider_type text -> kind; -1 if unknown */
int llm_kind_from_type(const char *provider_type);

struct llm_request {
	enum llm_kind kind;
	const char *base_url;         /* e.g. https://api.openai.com/v1 */
	const char *api_key;          /* may be NULL (local servers) */
	const char *model;            /* provider's model name */
	struct json_object *messages; /* internal format, see above */
	struct json_object *tools;    /* may be NULL or empty */
	long max_tokens;              /* 0 = driver default */
	double temperature;
	int has_temperature;
	const char *reasoning_effort; /* NULL, "low", "medium", "high" */
	long input_tokens; /* the caller's estimate of the messages; 0 = none */
};

/* Build URL, headers and JSON body of a streaming request. Returns 0, or
 * -1 with a message in err (e.g. an image part for a driver that cannot
 * send it). *headers is a new list the caller frees. */
int llm_build(const struct llm_request *r, struct buf *url,
	      struct curl_slist **headers, struct buf *body, struct buf *err);

struct llm_sink {
	void *ctx;
	/* visible answer text, in order */
	void (*text)(void *ctx, const char *s, size_t n);
	/* reasoning / thinking text */
	void (*thinking)(void *ctx, const char *s, size_t n);
	/* one complete tool call, emitted in the model's order once its
	 * arguments are complete (args: JSON text, "{}" if empty) */
	void (*tool_call)(void *ctx, const char *id, const char *name,
			  const char *args);
	/* token usage; may be called more than once (values are totals so
	 * far for this call: the latest wins) */
	void (*usage)(void *ctx, long input_tokens, long output_tokens);
	/* an error reported inside the stream (e.g. Anthropic "error"
	 * event, overloaded); retryable if the provider says so */
	void (*error)(void *ctx, const char *code, const char *message,
		      int retryable);
};

struct llm_parser;

struct llm_parser *llm_parser_new(enum llm_kind kind,
				  const struct llm_sink *sink);
/* What one response may bring, in bytes (every parser starts with
 * llm_limits_config()): the body as received (after any content
 * decoding: a compressed bomb is judged on what it expands to), the
 * answer text, the thinking text, and the tool calls' arguments
 * together. Past one, the parser fails and llm_parser_too_large() names
 * the config key. */
struct llm_limits {
	size_t response, text, thinking, tool_args;
	size_t tool_calls; /* calls of one response (a count) */
};
/* llm_max_response_mb (default 16, 1..1024), llm_max_text_kb (2048),
 * llm_max_thinking_kb (2048), llm_max_tool_args_kb (4096); the KiB ones
 * take 1..65536; llm_max_tool_calls (256, 1..4096). */
struct llm_limits llm_limits_config(void);
void llm_parser_set_limits(struct llm_parser *p, const struct llm_limits *l);
/* The config key of the limit the response went past, or NULL. */
const char *llm_parser_too_large(const struct llm_parser *p);

/* Feed response bytes (any split). Returns 0, or -1 if the stream is
 * malformed beyond recovery or too large (message in llm_parser_error). */
int llm_parser_feed(struct llm_parser *p, const char *data, size_t n);
/* The body ended. Returns 0 if the response was complete (a finish
 * reason / message_stop / [DONE] was seen), -1 if it was cut short. */
int llm_parser_finish(struct llm_parser *p);
/* Why the model stopped ("stop", "tool_calls", "end_turn", "length",
 * "max_tokens" ...), or NULL if not known yet. */
const char *llm_parser_stop_reason(const struct llm_parser *p);
const char *llm_parser_error(const struct llm_parser *p);
/* The signature of the response's thinking (Anthropic), or NULL. Store
 * it as the assistant message's "thinking_signature": Anthropic only
 * accepts a thinking block back with it, and with thinking on it needs
 * that block in an unfinished tool loop (without it, the driver sends
 * that step without thinking). NULL when there were several thinking
 * blocks, since one signature cannot cover their joined text. */
const char *llm_parser_thinking_signature(const struct llm_parser *p);
void llm_parser_free(struct llm_parser *p);

/* A readable one-line explanation of a non-2xx provider answer from its
 * status and (possibly partial) body, e.g. "rate limited (429): Rate
 * limit reached for gpt-4o", appended to out. */
void llm_http_error(enum llm_kind kind, long status, const char *body,
		    size_t len, struct buf *out);

#endif
