/*
 * session_ext: the upstream document's extra fields of a session create
 * (agent_name, harness_name, locale, parallel_tool_calls, initial_files,
 * mcpServers) and the client-side tools and approval mode (tools,
 * approval);
 * see session_ext.c. Used by sessions.c's create path only.
 */
#ifndef EVR_API_SESSION_EXT_H
#define EVR_API_SESSION_EXT_H

#include "buf.h"
#include "http.h"

#include <json-c/json.h>

struct session_ext {
	const char *locale;        /* borrowed from the body */
	int has_ptc, ptc;          /* parallel_tool_calls */
	struct json_object *files; /* initial_files (borrowed), or NULL */
	struct json_object *mcp;   /* mcpServers (borrowed, checked), or NULL */
	struct json_object *tools; /* tools (borrowed, checked), or NULL */
	const char *approval;      /* approval (borrowed), or NULL */
};

/* Check the fields (400s), then turn agent_name / harness_name into
 * agent_id / harness_id members of body (404 when there is none by that
 * name). 0, or -1 when answered. */
int session_ext_read(struct req *rq, struct json_object *body,
		     struct session_ext *x);
/* In the create's transaction, after evr_session_create answered *json:
 * write the files, store locale, parallel_tool_calls, tools, approval
 * and the creating user (a client-side tool named as one of the agent's
 * or harness's is a 400), and point *json
 * at the session rendered again (in out). 0, or -1 when answered (the
 * caller rolls back). */
int session_ext_apply(struct req *rq, const struct session_ext *x,
		      const char **json, struct buf *out);

#endif
