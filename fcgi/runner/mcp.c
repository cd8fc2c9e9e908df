/*
 * mcp: the MCP protocol of the runner's client, without I/O (see mcp.h).
 *
 * A response is read with every limit the network needs: the body is
 * capped (mcp_max_response_kb), its JSON is parsed strictly (valid UTF-8,
 * bounded depth), an SSE stream is read by the drivers' SSE parser, and
 * anything that is not the JSON-RPC response wanted (other messages,
 * comments, events that are not JSON) is skipped. Whatever arrives,
 * the answer is a response or an error text, never a crash or a wait.
 */
#include "mcp.h"
#include "json.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DESC_MAX 2048
#define SCHEMA_MAX (64 * 1024)
#define PARSE_DEPTH 64

void mcp_request(struct buf *out, long id, const char *method,
		 struct json_object *params)
{
	buf_adds(out, "{\"jsonrpc\":\"2.0\"");
	if (id > 0)
		buf_addf(out, ",\"id\":%ld", id);
	buf_adds(out, ",\"method\":");
	buf_add_json_str(out, method, strlen(method));
	if (params) {
		buf_adds(out, ",\"params\":");
		jx_append(out, params);
	}
	buf_addch(out, '}');
}

/* Is o the JSON-RPC response with id rd->id? Takes o either way. */
static int take_response(struct mcp_reader *rd, struct json_object *o)
{
	struct json_object *id = jx_get(o, "id");

	if (json_object_is_type(o, json_type_object) && id &&
	    (json_object_is_type(id, json_type_int) ||
	     json_object_is_type(id, json_type_double)) &&
	    json_object_get_int64(id) == rd->id &&
	    (jx_get(o, "result") || jx_get(o, "error")) && !rd->response) {
		rd->response = o;
		return 1;
	}
	json_object_put(o);
	return 0;
}

/* A JSON message (or a batch, the 2025-03-26 revision's arrays). 1 when
 * it holds the response. */
static int take_message(struct mcp_reader *rd, const char *s, size_t n)
{
	struct apierr e;
	struct json_object *o = jx_parse_depth(s, n, PARSE_DEPTH, &e);
	size_t i;

	if (!o)
		return 0;
	if (json_object_is_type(o, json_type_array)) {
		for (i = 0; i < json_object_array_length(o) && !rd->response;
		     i++)
			take_response(rd,
				      json_object_get(
					      json_object_array_get_idx(o, i)));
		json_object_put(o);
		return rd->response != NULL;
	}
	return take_response(rd, o);
}

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
	struct mcp_reader *rd = ctx;

	/* "message" or unnamed: a JSON-RPC message; others are skipped */
	if (*event && strcmp(event, "message"))
		return 0;
	return take_message(rd, data, len) ? 1 : 0;
}

void mcp_reader_init(struct mcp_reader *rd, long id, const char *content_type,
		     size_t cap)
{
	memset(rd, 0, sizeof(*rd));
	rd->id = id;
	rd->cap = cap;
	rd->sse = content_type &&
		  !strncasecmp(content_type, "text/event-stream", 17);
	buf_init(&rd->body, 0);
	sse_parser_init(&rd->parser, on_event, rd);
}

void mcp_reader_release(struct mcp_reader *rd)
{
	buf_release(&rd->body);
	sse_parser_release(&rd->parser);
	json_object_put(rd->response);
	rd->response = NULL;
}

int mcp_reader_feed(struct mcp_reader *rd, const char *data, size_t n)
{
	if (rd->response)
		return 1;
	if (rd->seen + n > rd->cap) {
		snprintf(rd->error, sizeof(rd->error),
			 "its response is larger than %zu KiB", rd->cap / 1024);
		return -1;
	}
	rd->seen += n;
	if (!rd->sse) {
		buf_add(&rd->body, data, n);
		return 0;
	}
	if (sse_parser_feed(&rd->parser, data, n) != 0) {
		if (rd->response)
			return 1;
		snprintf(rd->error, sizeof(rd->error),
			 "its event stream is malformed (a line too long)");
		return -1;
	}
	return 0;
}

int mcp_reader_end(struct mcp_reader *rd)
{
	if (rd->response)
		return 0;
	if (rd->sse) {
		sse_parser_end(&rd->parser);
		if (rd->response)
			return 0;
		snprintf(rd->error, sizeof(rd->error),
			 "its event stream ended without the response");
		return -1;
	}
	if (rd->body.len && take_message(rd, rd->body.data, rd->body.len))
		return 0;
	snprintf(rd->error, sizeof(rd->error),
		 rd->body.len ? "its answer is not the JSON-RPC response "
				"expected"
			      : "its answer is empty");
	return -1;
}

/* Append s (from the server, valid UTF-8 after parsing) cut to max. */
static void add_cut(struct buf *b, const char *s, size_t max)
{
	size_t n = strlen(s);
	buf_add(b, s, utf8_cut(s, n, max));
}

struct json_object *mcp_result(struct json_object *response, struct buf *why)
{
	struct json_object *err = jx_get(response, "error");
	struct json_object *res = jx_get(response, "result");

	if (err) {
		const char *m = jx_gets(err, "message");
		struct json_object *code = jx_get(err, "code");
		buf_adds(why, "it answered with an error: ");
		add_cut(why, m ? m : "(no message)", 1000);
		if (code && json_object_is_type(code, json_type_int))
			buf_addf(why, " (code %lld)",
				 (long long)json_object_get_int64(code));
		return NULL;
	}
	if (!json_object_is_type(res, json_type_object)) {
		buf_adds(why, "its response has no result object");
		return NULL;
	}
	return res;
}

enum tool_status mcp_call_result(struct json_object *result, struct buf *text,
				 struct buf *error)
{
	struct json_object *content = jx_get(result, "content");
	struct json_object *is_err = jx_get(result, "isError");
	struct buf out = BUF_INIT;
	size_t i, n = json_object_is_type(content, json_type_array)
			      ? json_object_array_length(content)
			      : 0;
	int bad = is_err && json_object_get_boolean(is_err);

	buf_init(&out, 256);
	for (i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(content, i);
		const char *type = jx_gets(p, "type"), *s;
		if (out.len)
			buf_addch(&out, '\n');
		if (!type) {
			buf_adds(&out, "[a content part without a type]");
		} else if (!strcmp(type, "text")) {
			s = jx_gets(p, "text");
			buf_adds(&out, s ? s : "");
		} else if (!strcmp(type, "resource")) {
			struct json_object *r = jx_get(p, "resource");
			if ((s = jx_gets(r, "text")))
				buf_adds(&out, s);
			else
				buf_addf(&out,
					 "[resource %s (binary, not shown)]",
					 jx_gets(r, "uri") ? jx_gets(r, "uri")
							   : "");
		} else if (!strcmp(type, "resource_link")) {
			buf_adds(&out, "[resource link ");
			add_cut(&out,
				jx_gets(p, "uri") ? jx_gets(p, "uri") : "",
				2048);
			if ((s = jx_gets(p, "name"))) {
				buf_adds(&out, " ");
				add_cut(&out, s, 256);
			}
			buf_addch(&out, ']');
		} else if (!strcmp(type, "image") || !strcmp(type, "audio")) {
			s = jx_gets(p, "mimeType");
			buf_addf(&out, "[%s ",
				 !strcmp(type, "image") ? "image" : "audio");
			add_cut(&out, s ? s : "of an unknown type", 100);
			buf_adds(&out, " (not shown)]");
		} else {
			buf_adds(&out, "[a content part of type ");
			add_cut(&out, type, 64);
			buf_addch(&out, ']');
		}
	}
	if (!n && jx_get(result, "structuredContent"))
		jx_append(&out, jx_get(result, "structuredContent"));
	if (bad) {
		buf_adds(error, "The tool reported an error: ");
		buf_add(error, out.data ? out.data : "", out.len);
		if (!out.len)
			buf_adds(error, "(no details)");
		buf_release(&out);
		return TOOL_ERROR;
	}
	buf_add(text, out.data ? out.data : "", out.len);
	buf_release(&out);
	return TOOL_OK;
}

static void sanitize(const char *s, struct buf *b)
{
	for (; *s; s++) {
		char c = *s;
		buf_addch(b, (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					     (c >= '0' && c <= '9') ||
					     c == '_' || c == '-'
				     ? c
				     : '_');
	}
}

void mcp_tool_name(const char *server, const char *tool, char *out)
{
	struct buf b = BUF_INIT;
	size_t n;

	buf_init(&b, 80);
	sanitize(server, &b);
	buf_adds(&b, "__");
	sanitize(tool, &b);
	n = b.len > MCP_TOOL_NAME_MAX ? MCP_TOOL_NAME_MAX : b.len;
	memcpy(out, b.data, n);
	out[n] = '\0';
	buf_release(&b);
}

struct json_object *mcp_tool_def(const char *server, struct json_object *tool)
{
	const char *name = jx_gets(tool, "name"), *desc;
	struct json_object *schema = jx_get(tool, "inputSchema"), *d;
	char full[MCP_TOOL_NAME_MAX + 1];
	struct buf b = BUF_INIT;

	if (!name || !*name)
		return NULL;
	mcp_tool_name(server, name, full);
	d = jx_obj();
	jx_put_str(d, "name", full);
	desc = jx_gets(tool, "description");
	buf_init(&b, 256);
	add_cut(&b,
		desc ? desc
		     : (jx_gets(tool, "title") ? jx_gets(tool, "title") : ""),
		DESC_MAX);
	jx_put_str(d, "description", b.data);
	buf_release(&b);
	/* a schema the provider can take: an object of bounded size */
	if (json_object_is_type(schema, json_type_object) &&
	    strlen(json_object_to_json_string_ext(
		    schema, JSON_C_TO_STRING_PLAIN)) <= SCHEMA_MAX) {
		json_object_object_add(d, "parameters",
				       json_object_get(schema));
	} else {
		struct json_object *s = jx_obj();
		jx_put_str(s, "type", "object");
		json_object_object_add(s, "properties", jx_obj());
		json_object_object_add(d, "parameters", s);
	}
	return d;
}
