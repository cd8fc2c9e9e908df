/*
 * everruns: the command-line client. Shared declarations of its modules.
 *
 *   main.c       command table, global options, dispatch, help
 *   args.c       option parsing (struct args)
 *   config.c     API URL / key / TLS from flags, environment, config file
 *   http.c       requests with libcurl (struct resp), error reporting
 *   sse.c        Server-Sent Events reading and the resuming follow loop
 *   output.c     tables, key: value views, JSON output
 *   render.c     a turn's events as text (chat, messages send --wait)
 *   sessions.c chat.c messages.c events.c fs.c images.c resources.c:
 *                one noun group each
 *   answers.c    answers to a waiting turn: tool results, approvals
 *
 * Exit codes: CLI_OK 0, CLI_API 1 (the server refused, or could not be
 * reached; the message is printed), CLI_USAGE 2 (bad command line or
 * configuration). Every command returns one of them.
 *
 * Ownership: a `struct resp` owns its body and parsed JSON until
 * resp_release(). Strings in `struct args` point into argv.
 */
#ifndef EVR_CLI_H
#define EVR_CLI_H

#include <curl/curl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stddef.h>

#include "buf.h"

enum { CLI_OK = 0, CLI_API = 1, CLI_USAGE = 2 };

/* ---- args.c ---- */
enum { OPT_FLAG, OPT_VALUE, OPT_LIST };

struct optdef {
	const char *name; /* long name without "--" */
	int kind;         /* OPT_FLAG, OPT_VALUE, OPT_LIST (repeatable value) */
};

#define ARGS_MAX 128
/* Nesting the CLI reads in the server's answers: an event's data may
 * nest as deep as the runner stores it (tool arguments of a model), well
 * past json-c's default of 32. */
#define CLI_JSON_DEPTH 128

struct args {
	int npos;
	const char *pos[ARGS_MAX];
	int nopt;
	struct {
		const char *name;
		const char *val; /* "" for flags */
	} opt[ARGS_MAX];
};

/* Parse argv[0..argc) (after the noun and verb) against the command's
 * options plus the global ones. Returns 0, or CLI_USAGE after printing
 * what is wrong. */
int args_parse(struct args *a, int argc, char **argv,
	       const struct optdef *cmd_opts);
const char *args_get(const struct args *a, const char *name);
int args_has(const struct args *a, const char *name);
/* The i-th value of a repeatable option, NULL past the last. */
const char *args_nth(const struct args *a, const char *name, int i);
/* An integer option: 0 when absent or valid (in *out), CLI_USAGE when not
 * a number in [min, max] (printed). */
int args_long(const struct args *a, const char *name, long min, long max,
	      long *out);
extern const struct optdef global_opts[];

/* ---- config.c ---- */
struct cli {
	char *api_url; /* "http(s)://host[:port]", no trailing slash */
	char *api_key;
	char *cacert;
	int insecure;
	int json; /* --json */
	int verbose;
	CURL *curl; /* reused for plain requests */
};

/* Resolve the configuration: flags > environment > config file. Returns
 * 0 or CLI_USAGE (printed). need_key: a missing key is an error. */
int config_load(struct cli *c, const struct args *a, int need_key);
void config_release(struct cli *c);

/* ---- http.c ---- */
struct resp {
	long status;
	struct buf body;
	struct json_object *json; /* parsed body, or NULL */
};

void resp_release(struct resp *r);
/* Apply URL, TLS and auth options shared by every handle. Returns the
 * header list the caller frees (curl_slist_free_all). */
struct curl_slist *http_setup(struct cli *c, CURL *h, const char *url,
			      struct curl_slist *extra);
/* "<api_url>/api/v1" + path (path starts with '/'); caller frees. */
char *http_url(struct cli *c, const char *path);
/* Append s percent-encoded as one path segment (or, with keep_slash,
 * as a path whose '/' separators are kept). */
void http_path_add(struct buf *b, const char *s, int keep_slash);
/* Append "?k=v" or "&k=v" (encoded); nothing when v is NULL. */
void http_query_add(struct buf *b, const char *k, const char *v);

/* One request. body: JSON (NULL = none) sent as application/json; raw
 * (ctype, data, len) instead when ctype is non-NULL; mime for multipart.
 * Returns CLI_OK for 2xx, else CLI_API after printing the server's error
 * (r is filled either way). */
int http_json(struct cli *c, const char *method, const char *path,
	      struct json_object *body, struct resp *r);
int http_raw(struct cli *c, const char *method, const char *path,
	     const char *ctype, const void *data, size_t len, struct resp *r);
int http_mime(struct cli *c, const char *path, curl_mime *mime, struct resp *r);
/* Print the error of a non-2xx answer ("everruns: <error> (<code>)"). */
void http_print_error(const struct resp *r);
curl_mime *http_mime_new(struct cli *c);

/* ---- sse.c ---- */
struct sse_frame {
	const char *event; /* "message" when the frame had none */
	const char *id;    /* NULL for frames without id: */
	const char *data;
	struct json_object *json; /* data parsed (borrowed), or NULL */
};

/* Callbacks return 0 to go on, 1 to stop the stream. */
struct sse_handler {
	int (*frame)(void *ctx, const struct sse_frame *f);
	int (*interrupt)(void *ctx); /* on SIGINT; NULL: stop */
	void *ctx;
};

enum sse_end { SSE_STOPPED, SSE_DELETED, SSE_FAILED };

/* Follow /sessions/{sid}/sse with the filter query `filters` ("" or
 * "types=a&exclude=b"), from since_seq (< 0: only new events) or, once
 * a durable event was seen, its id (Last-Event-ID). Reconnects after
 * drops, cycles and server restarts until a callback stops it, the
 * session is deleted, or a non-retryable error (printed). */
enum sse_end sse_follow(struct cli *c, const char *sid, const char *filters,
			long since_seq, struct sse_handler *h);

/* SIGINT: counted, and a byte on a pipe so waits wake at once. Only the
 * streaming commands catch it (sse_follow() and chat call init); for
 * the others Ctrl-C keeps its default, immediate effect. */
extern volatile sig_atomic_t cli_sigints;
void cli_signals_init(void);
int cli_sigfd(void);      /* the read end, to poll */
void cli_sig_drain(void); /* empty the pipe */
/* Sleep ms, or less when SIGINT arrives. */
void cli_sleep_ms(long ms);

/* ---- output.c ---- */
struct col {
	const char *head;
	const char *key; /* member name; "a.b" for nested */
	int max;         /* truncate to this many characters (0 = no limit) */
};

/* A table of the objects of array arr (borrowed), one column each. */
void out_table(struct json_object *arr, const struct col *cols);
/* "key: value" lines for every member of object o. */
void out_fields(struct json_object *o);
/* The value of o.key as text ("-" for absent/null; arrays joined by ","). */
void out_value(struct buf *b, struct json_object *o, const char *key);
/* The response body as it came (with a final newline). */
void out_json_body(const struct resp *r);
void out_json(struct json_object *o);
/* Standard output of a request: --json the body, else fields or table
 * (cols NULL: fields; else a table of .data). */
void out_resp(struct cli *c, const struct resp *r, const struct col *cols);
/* A one-line account of message content parts (text, [tool_call x]...). */
void out_parts(struct buf *b, struct json_object *parts);
/* A log page (messages, events): --json the body, else the table of
 * .data with a "summary" member filled in by summarize for each entry. */
void out_log(struct cli *c, const struct resp *r, const struct col *cols,
	     void (*summarize)(struct buf *, struct json_object *));
/* What a successful DELETE of id prints. */
void out_deleted(struct cli *c, const char *id);

/* ---- render.c ---- */
struct render {
	int json;
	int ask;                   /* chat: stop at tool.approval_requested */
	struct json_object *asked; /* its tool_calls, owned, until taken */
	long last_seq;             /* the last durable event shown */
	long msg_seq, think_seq;   /* message being streamed */
	long closed_seq;           /* messages up to this one have ended */
	size_t printed, think_printed;
	int open_line; /* a line of text is not finished */
	int failed, cancelled, done;
	const char *sid;
};

void render_init(struct render *r, int json);
/* Model text (a tool's name or arguments) on one line: JSON compact,
 * control characters as spaces, cut to 200 characters. */
void render_preview(struct buf *b, struct json_object *v);
/* The data of a tool.call_requested / tool.approval_requested event (ev):
 * each call, and the command that answers it, on stderr (stdout keeps
 * the conversation or its JSON). */
void render_announce(struct render *r, const char *ev, struct json_object *d);
/* Show one frame; returns 1 at session.idled (the turn is over), and
 * with r->ask at tool.approval_requested (r->asked holds the calls). */
int render_frame(struct render *r, const struct sse_frame *f);
void render_finish(struct render *r);

/* ---- commands ---- */
struct cmd {
	const char *verb; /* NULL: the noun takes no verb */
	int (*run)(struct cli *c, struct args *a);
	const struct optdef *opts;
	const char *synopsis; /* after "everruns " */
	const char *help;     /* description and options */
	int min_pos, max_pos;
	int no_key; /* runs without an API key */
};

struct noun {
	const char *name;
	const char *summary;
	const struct cmd *cmds; /* terminated by a zero entry */
	const char *default_verb;
};

/* answers.c: sessions tool-results / approve, and chat's question */
int cmd_tool_results(struct cli *c, struct args *a);
int cmd_approve(struct cli *c, struct args *a);
extern const struct optdef tool_results_opts[], approve_opts[];
/* Ask "Allow <tool>(<args>)? [y/N]" on stderr for each call of calls (the
 * tool_calls of tool.approval_requested, borrowed), read the answers from
 * standard input ("y" approves; "n REASON" denies with a reason; anything
 * else, or the end of input, denies) and POST them. *interrupted: Ctrl-C
 * at a question (nothing is sent). */
int cli_ask_approvals(struct cli *c, const char *sid, struct json_object *calls,
		      int *interrupted);
/* chat in a session that already waits: ask about the calls of its turn
 * still waiting for approval, announce the client-side ones still
 * waiting for a result, then follow the turn (cli_follow_turn). */
int cli_resume_waiting(struct cli *c, const char *sid, int *exit_now);

extern const struct cmd sessions_cmds[], chat_cmds[], messages_cmds[],
	events_cmds[], fs_cmds[], images_cmds[], agents_cmds[],
	harnesses_cmds[], models_cmds[], providers_cmds[], capabilities_cmds[],
	apikeys_cmds[], me_cmds[];

/* Shared by command files. */
/* The id of an agent, harness or model given by id or by name
 * (kind "agents", "harnesses", "models"); NULL after printing. */
char *cli_resolve(struct cli *c, const char *kind, const char *v);
/* "/sessions/<sid>" + tail, encoded, in a new buffer the caller releases */
void cli_session_path(struct buf *b, const char *sid, const char *tail);
/* Request body members from options: "capabilities" from --capability
 * REF[:JSON] (CLI_USAGE, printed, on a bad config), "tags" from --tag,
 * and field = the id of an agent/harness/model given by id or name
 * (nothing when v is NULL; CLI_API, printed, when unknown). */
int cli_put_caps(struct json_object *o, const struct args *a);
void cli_put_tags(struct json_object *o, const struct args *a);
int cli_put_ref(struct cli *c, struct json_object *o, const char *field,
		const char *kind, const char *v);
/* POST a message with the given text (and image ids); fills *seq with the
 * message's sequence. */
int cli_send_message(struct cli *c, const char *sid, const char *text,
		     const struct args *a, long *seq, struct resp *r);
/* Stream a turn after sequence seq to its session.idled, rendering it;
 * Ctrl-C cancels the turn, a second one returns CLI_API. ask: calls that
 * need approval are asked about (cli_ask_approvals) and the stream goes
 * on; without it the way to answer is printed. A client-side tool's call
 * is only announced, with the command that answers it. *exit_now: the
 * user asked to quit. */
int cli_follow_turn(struct cli *c, const char *sid, long seq, int ask,
		    int *exit_now);
/* Read a whole file ("-": stdin) into b; CLI_OK or CLI_USAGE (printed). */
int cli_read_file(const char *path, struct buf *b);

#endif
