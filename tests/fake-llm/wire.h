/*
 * wire: fake-llm's scripted responses (see fake_llm.c) rendered in the
 * wire format of the endpoint that was called.
 */
#ifndef FAKE_LLM_WIRE_H
#define FAKE_LLM_WIRE_H

#include <json-c/json.h>
#include <stddef.h>

#include "buf.h"

enum wire { W_OPENAI, W_ANTHROPIC };

/* One SSE event to send, after a pause. */
struct wire_piece {
	char *data;
	size_t len;
	long delay_ms;
};

struct wire_stream {
	struct wire_piece *v;
	size_t n;
};

/* Append to s the events of scripted response r for a request whose
 * body is req and model is model (all borrowed). */
void wire_render(struct wire_stream *s, enum wire w, struct json_object *r,
		 struct json_object *req, const char *model);
void wire_stream_clear(struct wire_stream *s);
/* The body of an HTTP error answer: r's "body" if it has one, else what
 * the provider sends for that status. Appended to out. */
void wire_error_body(enum wire w, int status, struct json_object *r,
		     struct buf *out);

/* r[key] as a number (def if absent), or as a string (NULL if absent or
 * not a string); borrowed from r. */
long wire_int(struct json_object *r, const char *key, long def);
const char *wire_str(struct json_object *r, const char *key);

#endif
