/*
 * mcp: the runner's MCP client (Model Context Protocol, Streamable HTTP
 * transport, spec revisions 2025-03-26 and 2025-06-18; ARCHITECTURE 6.3.1).
 *
 * mcp.c is the protocol without I/O: the JSON-RPC request bodies, the
 * reading of a response (a JSON body, or an SSE stream that carries it),
 * and what a tools/list or tools/call result becomes for the model.
 * mcp_turn.c runs the requests of a turn as transfers on the runner's
 * curl multi handle and ties them to the turn: the tool lists before
 * the turn's first reasoning (cached per server url and credentials for
 * mcp_tools_ttl_s), a tools/call in the act phase.
 *
 * Owners: a turn owns its struct mcp_turn (t->mcp), which owns its
 * servers, its tool map and the one request in flight.
 */
#ifndef EVR_RUNNER_MCP_H
#define EVR_RUNNER_MCP_H

#include <curl/curl.h>
#include <json-c/json.h>
#include <stddef.h>

#include "buf.h"
#include "llm/sse_parse.h"
#include "tools/tools.h"

struct runner;
struct turn;

/* --- mcp.c: the protocol ---------------------------------------------------*/

#define MCP_PROTOCOL_VERSION "2025-06-18"
#define MCP_TOOL_NAME_MAX 64

/* The body of a JSON-RPC request (id > 0) or notification (id 0). params
 * (may be NULL) is not taken. */
void mcp_request(struct buf *out, long id, const char *method,
		 struct json_object *params);

/* Reading one response. Feed the body as it arrives; the reader keeps at
 * most `cap` bytes of it (past that: an error). An SSE body is read event
 * by event: the JSON-RPC response with the id wanted ends the reading
 * (mcp_reader_feed returns 1: the transfer can stop), requests and
 * notifications of the server are skipped. */
struct mcp_reader {
	long id; /* the response wanted */
	int sse; /* text/event-stream, else JSON */
	size_t cap, seen;
	struct buf body; /* a JSON body */
	struct sse_parser parser;
	struct json_object *response; /* the response, once found (owned) */
	char error[200];
};

void mcp_reader_init(struct mcp_reader *rd, long id, const char *content_type,
		     size_t cap);
void mcp_reader_release(struct mcp_reader *rd);
/* 0: more wanted; 1: the response is in; -1: rd->error says why. */
int mcp_reader_feed(struct mcp_reader *rd, const char *data, size_t n);
/* The body ended: 0 with rd->response set, or -1 with rd->error. */
int mcp_reader_end(struct mcp_reader *rd);

/* The result of a JSON-RPC response: NULL with *why set (an "error"
 * member, or no object "result"). */
struct json_object *mcp_result(struct json_object *response, struct buf *why);

/* A tools/call result: its content as text for the model (text parts as
 * they are, other parts named), in result or, with isError, in error. */
enum tool_status mcp_call_result(struct json_object *result, struct buf *text,
				 struct buf *error);

/* `<server>__<tool>`: characters outside [A-Za-z0-9_-] become '_', cut to
 * MCP_TOOL_NAME_MAX bytes. out has room for MCP_TOOL_NAME_MAX + 1. */
void mcp_tool_name(const char *server, const char *tool, char *out);

/* A tool of a tools/list result as a tool definition for the model
 * {name, description, parameters} under its namespaced name, or NULL when
 * it is not a tool (no name). */
struct json_object *mcp_tool_def(const char *server, struct json_object *tool);

/* --- mcp_turn.c: a turn's MCP servers --------------------------------------*/

struct mcp_turn;

/* The turn's servers from its configuration (cfg "mcp": [{name, url,
 * headers | headers_enc, api_key_enc}]); sealed values are opened with
 * the runner's keyring. NULL when there are none. */
struct mcp_turn *mcp_turn_new(struct runner *r, struct json_object *servers);
void mcp_turn_free(struct runner *r, struct mcp_turn *m);

/* Before reasoning: the tools of the next server whose list is not known
 * yet. 1: a listing is under way (the turn waits; its end comes to
 * mcp_transfer_done, which calls turn_reason_begin again); 0: every
 * server is listed and its tools are in t->tools (a server that failed
 * has none; the log says why). */
int mcp_list_next(struct runner *r, struct turn *t);

/* Is `name` the (namespaced) name of an MCP tool of t (one listed, or
 * "<server>__..." of a server not listed yet)? For the approval mode
 * "writes": every MCP tool reaches out. */
int mcp_is_tool(const struct turn *t, const char *name);

/* Start the tools/call of `name` with args (an object; not taken): 0
 * when under way (it ends in mcp_transfer_done, which calls
 * turn_act_tool_done), -1 with the tool error in error. */
int mcp_call_start(struct runner *r, struct turn *t, const char *name,
		   struct json_object *args, struct buf *error);

/* A request of t's is in flight (t->mcp's). */
int mcp_busy(const struct turn *t);
/* Its transfer ended with rc. */
void mcp_transfer_done(struct runner *r, struct turn *t, CURLcode rc);
/* Stop it now (cancel, drop): the transfer is removed and freed. */
void mcp_stop(struct runner *r, struct turn *t);

/* Forget the cached tool lists (tests). */
void mcp_cache_clear(void);

#endif
