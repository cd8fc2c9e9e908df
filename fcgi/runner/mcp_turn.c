/*
 * mcp_turn: a turn's MCP servers (see mcp.h): their requests as transfers
 * on the runner's curl multi handle, one at a time per turn.
 *
 * An operation is a short chain of POSTs to the server's endpoint: a
 * listing is initialize, notifications/initialized, then tools/list (and
 * its next pages); a call is tools/call, preceded by the same two when
 * the turn has no session with the server yet (or the server forgot it:
 * HTTP 404). The Mcp-Session-Id the server gives at initialize and the
 * protocol version it chose go with every later request. Each request
 * goes through the address guard (guard_allow_mcp, no redirects), within
 * mcp_connect_timeout_s and the operation's deadline (mcp_list_timeout_s
 * for a whole listing, mcp_call_timeout_s for a whole call), its body
 * capped at mcp_max_response_kb. A server that fails a listing leaves the
 * turn without its tools (logged); a call that fails is a tool error.
 * A cancel removes the transfer at once (mcp_stop from
 * turn_stop_transfer).
 *
 * Tool lists are cached per url and credentials for mcp_tools_ttl_s, in
 * this process (the runner is single-threaded), at most CACHE_MAX lists.
 */
#include "mcp.h"
#include "config.h"
#include "guard.h"
#include "json.h"
#include "log.h"
#include "runner.h"
#include "turn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef PACKAGE_VERSION /* builds outside configure (the fuzz targets) */
#define PACKAGE_VERSION "0"
#endif

#define CACHE_MAX 256
#define MAX_PAGES 10
#define SESSION_ID_MAX 256

struct mcp_server {
	char *name, *url, *api_key;  /* api_key may be NULL */
	struct json_object *headers; /* {name: value} (owned) */
	char *cache_key;
	char session[SESSION_ID_MAX + 1]; /* Mcp-Session-Id, "" = none */
	char proto[32];                   /* the version the server chose */
	int listed;
};

struct mcp_tool {
	char name[MCP_TOOL_NAME_MAX + 1];
	size_t server;
	char *tool; /* its name on the server */
};

enum op_kind { OP_LIST, OP_CALL };
enum op_step { ST_INIT, ST_INITIALIZED, ST_WORK };

struct mcp_op {
	enum op_kind kind;
	enum op_step step;
	size_t server;
	long next_id;
	int reinit; /* initialized again after a 404 already */
	long long deadline_ms;
	long step_timeout_s;
	CURL *easy;
	struct guard guard;
	struct curl_slist *hdrs;
	struct buf req;
	struct mcp_reader rd;
	int rd_ready, rd_state; /* reader set up; 1 done / -1 failed */
	int cut;                /* the body was not read (on purpose) */
	char session[SESSION_ID_MAX + 1]; /* from this response's headers */
	long status;
	/* OP_CALL */
	char *tool;
	struct json_object *args;
	/* OP_LIST */
	struct json_object *found; /* raw tools so far */
	char *cursor;
	int pages;
};

struct mcp_turn {
	struct mcp_server *srv;
	size_t nsrv;
	struct mcp_tool *tools;
	size_t ntools;
	struct mcp_op *op;
};

/* --- the tool-list cache -------------------------------------------------*/

struct cache_entry {
	char *key;
	struct json_object *tools; /* the server's raw tools */
	long long until_ms;
};
static struct cache_entry cache[CACHE_MAX];

static struct json_object *cache_get(const char *key)
{
	long long now = now_ms();
	size_t i;

	for (i = 0; i < CACHE_MAX; i++)
		if (cache[i].key && !strcmp(cache[i].key, key))
			return cache[i].until_ms > now ? cache[i].tools : NULL;
	return NULL;
}

static void cache_put(const char *key, struct json_object *tools)
{
	long ttl = config_int("mcp_tools_ttl_s");
	size_t i, slot = 0;

	if (ttl <= 0)
		return;
	for (i = 0; i < CACHE_MAX; i++) {
		if (cache[i].key && !strcmp(cache[i].key, key)) {
			slot = i;
			break;
		}
		if (!cache[i].key || cache[i].until_ms < cache[slot].until_ms)
			slot = i;
	}
	free(cache[slot].key);
	json_object_put(cache[slot].tools);
	cache[slot].key = xstrdup(key);
	cache[slot].tools = json_object_get(tools);
	cache[slot].until_ms = now_ms() + ttl * 1000;
}

void mcp_cache_clear(void)
{
	size_t i;

	for (i = 0; i < CACHE_MAX; i++) {
		free(cache[i].key);
		json_object_put(cache[i].tools);
		cache[i].key = NULL;
		cache[i].tools = NULL;
	}
}

/* --- servers ---------------------------------------------------------------*/

/* A sealed value opened with the runner's keyring, or NULL (logged). */
static char *unseal(struct runner *r, const char *sealed, const char *what,
		    const char *server)
{
	struct buf b = BUF_INIT;
	char *s;

	if (keyring_open(&r->keys, sealed, &b) != 0) {
		log_warn("MCP server %s: its %s cannot be decrypted with this "
			 "server's key; the server is left out",
			 server, what);
		buf_release(&b);
		return NULL;
	}
	s = buf_detach(&b, NULL);
	return s;
}

struct mcp_turn *mcp_turn_new(struct runner *r, struct json_object *servers)
{
	struct mcp_turn *m;
	size_t i, n = json_object_is_type(servers, json_type_array)
			      ? json_object_array_length(servers)
			      : 0;

	if (!n)
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->srv = xcalloc(n, sizeof(*m->srv));
	for (i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(servers, i);
		struct mcp_server *v = &m->srv[m->nsrv];
		const char *name = jx_gets(s, "name"), *url = jx_gets(s, "url");
		struct buf key = BUF_INIT;
		struct apierr e;
		char *plain;

		if (!name || !url)
			continue;
		v->headers = NULL;
		if (jx_gets(s, "headers_enc")) {
			plain = unseal(r, jx_gets(s, "headers_enc"), "headers",
				       name);
			if (!plain)
				continue;
			v->headers = jx_parse(plain, strlen(plain), &e);
			free(plain);
		} else if (json_object_is_type(jx_get(s, "headers"),
					       json_type_object)) {
			v->headers = json_object_get(jx_get(s, "headers"));
		}
		if (!json_object_is_type(v->headers, json_type_object)) {
			json_object_put(v->headers);
			v->headers = jx_obj();
		}
		if (jx_gets(s, "api_key_enc")) {
			v->api_key = unseal(r, jx_gets(s, "api_key_enc"),
					    "api key", name);
			if (!v->api_key) {
				json_object_put(v->headers);
				continue;
			}
		}
		v->name = xstrdup(name);
		v->url = xstrdup(url);
		/* the cache key: what decides the list the server gives */
		buf_init(&key, 256);
		buf_adds(&key, url);
		buf_addch(&key, '\n');
		buf_adds(&key, v->api_key ? v->api_key : "");
		buf_addch(&key, '\n');
		jx_append(&key, v->headers);
		v->cache_key = buf_detach(&key, NULL);
		m->nsrv++;
	}
	return m;
}

static void op_free(struct runner *r, struct mcp_op *op)
{
	if (!op)
		return;
	if (op->easy) {
		curl_multi_remove_handle(r->multi, op->easy);
		curl_easy_cleanup(op->easy);
	}
	curl_slist_free_all(op->hdrs);
	buf_release(&op->req);
	if (op->rd_ready)
		mcp_reader_release(&op->rd);
	free(op->tool);
	json_object_put(op->args);
	json_object_put(op->found);
	free(op->cursor);
	free(op);
}

void mcp_turn_free(struct runner *r, struct mcp_turn *m)
{
	size_t i;

	if (!m)
		return;
	op_free(r, m->op);
	for (i = 0; i < m->nsrv; i++) {
		free(m->srv[i].name);
		free(m->srv[i].url);
		free(m->srv[i].api_key);
		free(m->srv[i].cache_key);
		json_object_put(m->srv[i].headers);
	}
	for (i = 0; i < m->ntools; i++)
		free(m->tools[i].tool);
	free(m->srv);
	free(m->tools);
	free(m);
}

int mcp_busy(const struct turn *t)
{
	return t->mcp && t->mcp->op;
}

void mcp_stop(struct runner *r, struct turn *t)
{
	if (!t->mcp)
		return;
	op_free(r, t->mcp->op);
	t->mcp->op = NULL;
}

/* --- one request -----------------------------------------------------------*/

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct mcp_op *op = ud;
	size_t n = size * nmemb, k = 15, e;

	if (n > k && !strncasecmp(data, "mcp-session-id:", k)) {
		while (k < n && (data[k] == ' ' || data[k] == '\t'))
			k++;
		e = n;
		while (e > k && (unsigned char)data[e - 1] <= ' ')
			e--;
		/* visible ASCII only (the spec's rule), else none */
		op->session[0] = '\0';
		if (e > k && e - k <= SESSION_ID_MAX) {
			size_t i;
			for (i = k; i < e; i++)
				if ((unsigned char)data[i] < 0x21 ||
				    (unsigned char)data[i] > 0x7e)
					return n;
			memcpy(op->session, data + k, e - k);
			op->session[e - k] = '\0';
		}
	}
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct mcp_op *op = ud;
	size_t n = size * nmemb;

	if (!op->rd_ready) {
		char *ct = NULL;
		curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE,
				  &op->status);
		curl_easy_getinfo(op->easy, CURLINFO_CONTENT_TYPE, &ct);
		mcp_reader_init(
			&op->rd, op->step == ST_INITIALIZED ? -1 : op->next_id,
			ct, (size_t)config_int("mcp_max_response_kb") * 1024);
		op->rd_ready = 1;
	}
	if (op->status < 200 || op->status > 299 ||
	    op->step == ST_INITIALIZED) {
		op->cut = 1; /* not read: the status says it all */
		return CURL_WRITEFUNC_ERROR;
	}
	op->rd_state = mcp_reader_feed(&op->rd, data, n);
	/* the response is in (an SSE stream may stay open) or it failed:
	 * the transfer ends here */
	return op->rd_state ? CURL_WRITEFUNC_ERROR : n;
}

static void add_header(struct mcp_op *op, const char *name, const char *v)
{
	struct buf h = BUF_INIT;
	buf_init(&h, strlen(name) + strlen(v) + 4);
	buf_addf(&h, "%s: %s", name, v);
	op->hdrs = curl_slist_append(op->hdrs, h.data);
	buf_release(&h);
}

/* The body of the current step's request into op->req. */
static void build(struct mcp_turn *m, struct mcp_op *op)
{
	struct json_object *p = jx_obj(), *ci;

	buf_reset(&op->req);
	op->next_id++;
	switch (op->step) {
	case ST_INIT:
		jx_put_str(p, "protocolVersion", MCP_PROTOCOL_VERSION);
		json_object_object_add(p, "capabilities", jx_obj());
		ci = jx_obj();
		jx_put_str(ci, "name", "everruns");
		jx_put_str(ci, "version", PACKAGE_VERSION);
		json_object_object_add(p, "clientInfo", ci);
		mcp_request(&op->req, op->next_id, "initialize", p);
		break;
	case ST_INITIALIZED:
		mcp_request(&op->req, 0, "notifications/initialized", NULL);
		break;
	case ST_WORK:
		if (op->kind == OP_LIST) {
			if (op->cursor)
				jx_put_str(p, "cursor", op->cursor);
			mcp_request(&op->req, op->next_id, "tools/list", p);
		} else {
			jx_put_str(p, "name", op->tool);
			json_object_object_add(p, "arguments",
					       json_object_get(op->args));
			mcp_request(&op->req, op->next_id, "tools/call", p);
		}
		break;
	}
	json_object_put(p);
	(void)m;
}

/* Start the current step's request on the multi. 0, or -1 with why. */
static int start(struct runner *r, struct turn *t, struct buf *why)
{
	struct mcp_turn *m = t->mcp;
	struct mcp_op *op = m->op;
	struct mcp_server *s = &m->srv[op->server];
	struct json_object_iterator it, end;
	long long left = op->deadline_ms - now_ms();

	if (left <= 0) {
		buf_addf(why, "it did not answer within %ld s",
			 op->step_timeout_s);
		return -1;
	}
	build(m, op);
	if (op->easy) {
		curl_multi_remove_handle(r->multi, op->easy);
		curl_easy_cleanup(op->easy);
	}
	curl_slist_free_all(op->hdrs);
	op->hdrs = NULL;
	if (op->rd_ready)
		mcp_reader_release(&op->rd);
	op->rd_ready = op->rd_state = op->cut = 0;
	op->status = 0;
	op->session[0] = '\0';

	add_header(op, "Content-Type", "application/json");
	add_header(op, "Accept", "application/json, text/event-stream");
	op->hdrs = curl_slist_append(op->hdrs, "Expect:");
	if (s->session[0])
		add_header(op, "Mcp-Session-Id", s->session);
	if (s->proto[0])
		add_header(op, "MCP-Protocol-Version", s->proto);
	if (s->api_key) {
		struct buf a = BUF_INIT;
		buf_init(&a, strlen(s->api_key) + 8);
		buf_addf(&a, "Bearer %s", s->api_key);
		add_header(op, "Authorization", a.data);
		buf_release(&a);
	}
	it = json_object_iter_begin(s->headers);
	end = json_object_iter_end(s->headers);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		add_header(op, json_object_iter_peek_name(&it),
			   json_object_get_string(
				   json_object_iter_peek_value(&it)));

	op->easy = curl_easy_init();
	if (!op->easy)
		abort();
	curl_easy_setopt(op->easy, CURLOPT_URL, s->url);
	curl_easy_setopt(op->easy, CURLOPT_HTTPHEADER, op->hdrs);
	curl_easy_setopt(op->easy, CURLOPT_POSTFIELDS, op->req.data);
	curl_easy_setopt(op->easy, CURLOPT_POSTFIELDSIZE, (long)op->req.len);
	curl_easy_setopt(op->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(op->easy, CURLOPT_WRITEDATA, op);
	curl_easy_setopt(op->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(op->easy, CURLOPT_HEADERDATA, op);
	curl_easy_setopt(op->easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(op->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(op->easy, CURLOPT_CONNECTTIMEOUT,
			 config_int("mcp_connect_timeout_s"));
	curl_easy_setopt(op->easy, CURLOPT_TIMEOUT_MS, (long)left);
	curl_easy_setopt(op->easy, CURLOPT_ACCEPT_ENCODING, "");
	guard_curl(&op->guard, op->easy, GUARD_MCP, 0);
	curl_multi_add_handle(r->multi, op->easy);
	return 0;
}

static struct mcp_op *op_new(struct mcp_turn *m, enum op_kind kind,
			     size_t server)
{
	struct mcp_op *op = xcalloc(1, sizeof(*op));

	op->kind = kind;
	op->server = server;
	op->step = m->srv[server].session[0] ? ST_WORK : ST_INIT;
	op->step_timeout_s = config_int(kind == OP_LIST ? "mcp_list_timeout_s"
							: "mcp_call_timeout_s");
	op->deadline_ms = now_ms() + op->step_timeout_s * 1000;
	buf_init(&op->req, 256);
	m->op = op;
	return op;
}

/* --- listing ---------------------------------------------------------------*/

/* Add server i's tools (raw, from its list) to the turn: t->tools gets
 * their definitions, the map their names. */
static void add_tools(struct turn *t, size_t i, struct json_object *raw)
{
	struct mcp_turn *m = t->mcp;
	size_t k, j, n = json_object_array_length(raw);
	long max = config_int("mcp_max_tools");

	for (k = 0; k < n && (long)k < max; k++) {
		struct json_object *d = mcp_tool_def(
			m->srv[i].name, json_object_array_get_idx(raw, k));
		const char *name;
		int dup = 0;
		if (!d)
			continue;
		name = jx_gets(d, "name");
		for (j = 0; j < json_object_array_length(t->tools); j++)
			if (!strcmp(jx_gets(json_object_array_get_idx(t->tools,
								      j),
					    "name"),
				    name))
				dup = 1;
		if (dup) {
			log_warn("turn %s: MCP server %s: a tool named %s is "
				 "there already; this one is left out",
				 t->id, m->srv[i].name, name);
			json_object_put(d);
			continue;
		}
		m->tools =
			xrealloc(m->tools, (m->ntools + 1) * sizeof(*m->tools));
		snprintf(m->tools[m->ntools].name,
			 sizeof(m->tools[m->ntools].name), "%s", name);
		m->tools[m->ntools].server = i;
		m->tools[m->ntools].tool = xstrdup(
			jx_gets(json_object_array_get_idx(raw, k), "name"));
		m->ntools++;
		json_object_array_add(t->tools, d);
	}
}

int mcp_list_next(struct runner *r, struct turn *t)
{
	struct mcp_turn *m = t->mcp;
	struct buf why = BUF_INIT;
	size_t i;

	if (!m || m->op)
		return m && m->op;
	for (i = 0; i < m->nsrv; i++) {
		struct json_object *cached;
		if (m->srv[i].listed)
			continue;
		if ((cached = cache_get(m->srv[i].cache_key))) {
			m->srv[i].listed = 1;
			add_tools(t, i, cached);
			continue;
		}
		op_new(m, OP_LIST, i)->found = json_object_new_array();
		if (start(r, t, &why) == 0)
			return 1;
		log_warn("turn %s: MCP server %s (%s): no tools: %s", t->id,
			 m->srv[i].name, m->srv[i].url, why.data);
		buf_reset(&why);
		op_free(r, m->op);
		m->op = NULL;
		m->srv[i].listed = 1;
	}
	buf_release(&why);
	return 0;
}

/* A server not listed yet whose tool `name` may be, by its prefix
 * "<server>__" (a taken-over turn acts on the calls its last step left
 * before it reasons, so before any listing): its index, *tool the rest
 * of the name; or -1. */
static long by_prefix(const struct mcp_turn *m, const char *name,
		      const char **tool)
{
	char pfx[MCP_TOOL_NAME_MAX + 1];
	size_t i, n;

	for (i = 0; i < m->nsrv; i++) {
		if (m->srv[i].listed)
			continue;
		mcp_tool_name(m->srv[i].name, "", pfx);
		n = strlen(pfx);
		if (!strncmp(name, pfx, n) && name[n]) {
			*tool = name + n;
			return (long)i;
		}
	}
	return -1;
}

int mcp_is_tool(const struct turn *t, const char *name)
{
	const struct mcp_turn *m = t->mcp;
	const char *tool;
	size_t i;

	if (!m || !name)
		return 0;
	for (i = 0; i < m->ntools; i++)
		if (!strcmp(m->tools[i].name, name))
			return 1;
	return by_prefix(m, name, &tool) >= 0;
}

int mcp_call_start(struct runner *r, struct turn *t, const char *name,
		   struct json_object *args, struct buf *error)
{
	struct mcp_turn *m = t->mcp;
	struct mcp_op *op;
	struct buf why = BUF_INIT;
	const char *tool = NULL;
	long server = -1;
	size_t i;

	for (i = 0; m && i < m->ntools; i++)
		if (!strcmp(m->tools[i].name, name)) {
			server = (long)m->tools[i].server;
			tool = m->tools[i].tool;
			break;
		}
	if (m && server < 0)
		server = by_prefix(m, name, &tool);
	if (!m || server < 0 || m->op) {
		buf_addf(error, "no tool named '%s' is available", name);
		return -1;
	}
	op = op_new(m, OP_CALL, (size_t)server);
	op->tool = xstrdup(tool);
	op->args = json_object_get(args);
	if (start(r, t, &why) == 0) {
		buf_release(&why);
		return 0;
	}
	buf_addf(error, "The MCP server %s could not be called: %s",
		 m->srv[op->server].name, why.data);
	buf_release(&why);
	op_free(r, op);
	m->op = NULL;
	return -1;
}

/* --- the end of a request --------------------------------------------------*/

/* Why the request failed, from curl and HTTP; 0 if it did not. */
static int failed(struct mcp_op *op, CURLcode rc, struct buf *why)
{
	if (!op->status)
		curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE,
				  &op->status);
	if (guard_refused(&op->guard, rc)) {
		buf_addf(why,
			 "the address guard refused its address (%s); an "
			 "operator can allow it with guard_allow_mcp",
			 op->guard.why);
		return 1;
	}
	if (op->rd_state < 0) {
		buf_adds(why, op->rd.error);
		return 1;
	}
	if (op->status && (op->status < 200 || op->status > 299)) {
		buf_addf(why, "it answered HTTP %ld", op->status);
		return 1;
	}
	if (rc == CURLE_WRITE_ERROR && (op->rd_state == 1 || op->cut))
		return 0; /* we ended it: what we need is in */
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		buf_addf(why, "it did not answer within %ld s",
			 op->step_timeout_s);
		return 1;
	}
	if (rc != CURLE_OK) {
		buf_addf(why, "the request failed (%s)",
			 curl_easy_strerror(rc));
		return 1;
	}
	if (op->status < 200 || op->status > 299) {
		buf_addf(why, "it answered HTTP %ld", op->status);
		return 1;
	}
	return 0;
}

/* The response of a request with an id, or NULL with why. */
static struct json_object *result_of(struct mcp_op *op, struct buf *why)
{
	if (!op->rd_ready) {
		buf_adds(why, "its answer is empty");
		return NULL;
	}
	if (op->rd_state != 1 && mcp_reader_end(&op->rd) != 0) {
		buf_adds(why, op->rd.error);
		return NULL;
	}
	return mcp_result(op->rd.response, why);
}

/* The operation ended (why empty: it succeeded). */
static void finish(struct runner *r, struct turn *t, struct buf *why,
		   struct json_object *result)
{
	struct mcp_turn *m = t->mcp;
	struct mcp_op *op = m->op;
	struct mcp_server *s = &m->srv[op->server];
	struct buf text = BUF_INIT, error = BUF_INIT;
	enum tool_status st;

	m->op = NULL;
	if (op->kind == OP_LIST) {
		s->listed = 1;
		if (why->len) {
			log_warn("turn %s: MCP server %s (%s): no tools: %s",
				 t->id, s->name, s->url, why->data);
		} else {
			cache_put(s->cache_key, op->found);
			add_tools(t, op->server, op->found);
			log_info("turn %s: MCP server %s: %zu tools", t->id,
				 s->name, json_object_array_length(op->found));
		}
		op_free(r, op);
		if (!t->dropped && t->phase != PH_DONE)
			turn_reason_begin(r, t);
		return;
	}
	if (why->len) {
		buf_addf(&error, "The MCP server %s failed: %s.", s->name,
			 why->data);
		st = TOOL_ERROR;
	} else {
		st = mcp_call_result(result, &text, &error);
	}
	op_free(r, op);
	if (!t->dropped && t->phase == PH_ACT)
		turn_act_tool_done(r, t, st, &text, &error);
	buf_release(&text);
	buf_release(&error);
}

void mcp_transfer_done(struct runner *r, struct turn *t, CURLcode rc)
{
	struct mcp_turn *m = t->mcp;
	struct mcp_op *op = m->op;
	struct mcp_server *s = &m->srv[op->server];
	struct buf why = BUF_INIT;
	struct json_object *res = NULL, *tools, *next;
	size_t i;

	curl_multi_remove_handle(r->multi, op->easy);
	if (failed(op, rc, &why)) {
		/* a session the server forgot: initialize again, once */
		if (op->status == 404 && op->step == ST_WORK && s->session[0] &&
		    !op->reinit) {
			op->reinit = 1;
			s->session[0] = s->proto[0] = '\0';
			op->step = ST_INIT;
			buf_reset(&why);
			if (start(r, t, &why) == 0)
				goto out;
		}
		finish(r, t, &why, NULL);
		goto out;
	}
	if (op->step == ST_INITIALIZED) {
		op->step = ST_WORK;
	} else {
		if (!(res = result_of(op, &why))) {
			finish(r, t, &why, NULL);
			goto out;
		}
		if (op->step == ST_INIT) {
			const char *v = jx_gets(res, "protocolVersion");
			snprintf(s->proto, sizeof(s->proto), "%s",
				 v && strlen(v) < sizeof(s->proto) &&
						 strspn(v, "0123456789-") ==
							 strlen(v)
					 ? v
					 : MCP_PROTOCOL_VERSION);
			snprintf(s->session, sizeof(s->session), "%s",
				 op->session);
			op->step = ST_INITIALIZED;
		} else if (op->kind == OP_CALL) {
			finish(r, t, &why, res);
			goto out;
		} else {
			tools = jx_get(res, "tools");
			if (!json_object_is_type(tools, json_type_array)) {
				buf_adds(&why, "its tools/list result has no "
					       "tools array");
				finish(r, t, &why, NULL);
				goto out;
			}
			for (i = 0; i < json_object_array_length(tools); i++)
				json_object_array_add(
					op->found,
					json_object_get(
						json_object_array_get_idx(tools,
									  i)));
			next = jx_get(res, "nextCursor");
			free(op->cursor);
			op->cursor = NULL;
			if (json_object_is_type(next, json_type_string) &&
			    ++op->pages < MAX_PAGES &&
			    (long)json_object_array_length(op->found) <
				    config_int("mcp_max_tools"))
				op->cursor =
					xstrdup(json_object_get_string(next));
			if (!op->cursor) {
				finish(r, t, &why, NULL);
				goto out;
			}
		}
	}
	if (start(r, t, &why) != 0)
		finish(r, t, &why, NULL);
out:
	buf_release(&why);
}
