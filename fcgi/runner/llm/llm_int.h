/*
 * llm_int: what llm.c shares with the wire-format drivers (openai.c,
 * anthropic.c). Not for use outside fcgi/runner/llm.
 *
 * llm.c owns the parser and its SSE framing; a driver supplies the event
 * handler and keeps its own state behind `drv`. A handler returns 0, or
 * -1 after llm_parser_fail() for a stream that cannot be understood.
 * Once the parser failed, or a provider error was reported, further
 * events are ignored.
 */
#ifndef EVR_LLM_INT_H
#define EVR_LLM_INT_H

#include "llm.h"
#include "sse_parse.h"

struct llm_parser {
	enum llm_kind kind;
	struct llm_sink sink;
	struct sse_parser sse;
	void *drv;          /* driver state */
	char *stop;         /* stop reason, or NULL */
	char *signature;    /* see llm_parser_thinking_signature() */
	struct buf err;     /* why it failed, for llm_parser_error() */
	int complete;       /* an end marker was seen */
	int failed;         /* malformed: feed returns -1 from now on */
	int errored;        /* the provider reported an error in the stream */
	sse_event_fn event; /* the driver's */
	struct llm_limits lim;
	size_t got, text, thinking, tool_args; /* bytes so far */
	size_t tool_calls;                     /* calls so far */
	const char *too_large; /* the limit's config key, once past it */
};

/* Count n more bytes of tool-call arguments: 0, or -1 once past the
 * limit (the parser failed, llm_parser_too_large() says which). */
int llm_count_tool_args(struct llm_parser *p, size_t n);
/* Count one more tool call (llm_max_tool_calls): every call of a
 * response becomes a tool card, and those the client or a person must
 * answer, one question each of one wait. 0, or -1 past the limit. */
int llm_count_tool_call(struct llm_parser *p);

/* Record the failure message (first one wins) and return -1. */
int llm_parser_fail(struct llm_parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void llm_parser_set_stop(struct llm_parser *p, const char *reason);
/* Parse one data payload as a JSON object; NULL after llm_parser_fail().
 * The caller owns the result (json_object_put). */
struct json_object *llm_parse_chunk(struct llm_parser *p, const char *data,
				    size_t len);

/* Sink calls that tolerate absent callbacks. An error also marks the
 * parser as errored, so the rest of the stream is ignored and finish
 * fails with the provider's message. */
void llm_emit_text(struct llm_parser *p, const char *s, size_t n);
void llm_emit_thinking(struct llm_parser *p, const char *s, size_t n);
void llm_emit_tool_call(struct llm_parser *p, const char *id, const char *name,
			const char *args);
void llm_emit_usage(struct llm_parser *p, long in, long out);
void llm_emit_error(struct llm_parser *p, const char *code, const char *msg,
		    int retryable);

/* Should a provider error code (OpenAI error.type/code, Anthropic
 * error.type) be retried? */
int llm_error_retryable(const char *code);

/* A number member of o as a long, 0 when absent or of another type
 * (objects and strings: jx_get / jx_gets of json.h). */
long llm_jlong(struct json_object *o, const char *key);
/* url = base (def when NULL or empty) without trailing slashes, then
 * path. */
void llm_url_join(struct buf *url, const char *base, const char *def,
		  const char *path);

/* Append one "Name: value" header; allocation failure aborts. */
void llm_header(struct curl_slist **h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The drivers. A build function fills url, headers and body as
 * llm_build() documents; an event function is the SSE callback (ctx is
 * the parser). */
int llm_openai_build(const struct llm_request *r, struct buf *url,
		     struct curl_slist **headers, struct buf *body,
		     struct buf *err);
void llm_openai_parser_init(struct llm_parser *p);
int llm_openai_event(void *ctx, const char *event, const char *data,
		     size_t len);
void llm_openai_parser_release(struct llm_parser *p);

int llm_anthropic_build(const struct llm_request *r, struct buf *url,
			struct curl_slist **headers, struct buf *body,
			struct buf *err);
void llm_anthropic_parser_init(struct llm_parser *p);
int llm_anthropic_event(void *ctx, const char *event, const char *data,
			size_t len);
void llm_anthropic_parser_release(struct llm_parser *p);

/* Both drivers need the user-visible text of a user message: a string
 * content or its text parts joined by "\n". Appends to out. */
void llm_user_text(struct json_object *msg, struct buf *out);

#endif
