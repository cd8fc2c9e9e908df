/*
 * http: the request and response of one FastCGI request, independent of
 * libfcgi so that handlers and the router can be unit-tested with a
 * request built from literals.
 *
 * Ownership: every string in `struct req` is borrowed from rq->arena (or
 * from literals in tests) and lives until the request ends. The response
 * body and extra headers are `struct buf`s owned by the request and
 * released by req_release(). A handler answers by calling exactly one of
 * res_json / res_jsonf / res_error / res_apierr / res_raw / res_empty.
 */
#ifndef EVR_HTTP_H
#define EVR_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "apierr.h"
#include "arena.h"
#include "buf.h"

struct db;

#define REQ_MAX_CAPS 4
#define REQ_MAX_QP 64

struct qparam {
	const char *key, *value; /* percent-decoded */
};

struct req {
	struct arena *arena;
	struct db *db;

	const char *method;
	const char *path;  /* raw path of REQUEST_URI, without the query */
	const char *query; /* raw QUERY_STRING, "" if none */
	struct qparam qp[REQ_MAX_QP];
	size_t nqp;
	int qp_overflow;
	const char *qp_bad; /* a parameter that is not valid UTF-8 */

	const char *content_type;  /* NULL if absent */
	const char *authorization; /* NULL if absent */
	const char *idempotency_key;
	const char *last_event_id;
	const char *remote_addr;
	const char *body;
	size_t body_len;
	long content_length; /* -1 if absent */
	/* a body left to the handler to read as it arrives (everruns-api's
	 * ROUTE_STREAM_BODY): body is NULL, body_len its length, body_in
	 * the program's input stream, body_read its read function and
	 * body_got the bytes read so far */
	void *body_in;
	int (*body_read)(void *in, char *p, int n);
	size_t body_got;

	/* router captures, percent-decoded */
	const char *cap[REQ_MAX_CAPS];
	size_t ncap;

	/* filled by auth: 32-hex uuids; empty when not authenticated */
	char org[33], user[33], key[33];
	char role[8]; /* the key's: "admin" or "member" */

	/* response */
	int status;
	const char *res_type;
	struct buf res_headers; /* extra "Name: value\r\n" lines */
	struct buf res_body;
};

void req_init(struct req *rq, struct arena *a);
void req_release(struct req *rq);

/* Is s (NUL-terminated) valid UTF-8, without overlong forms or
 * surrogates? PostgreSQL refuses anything else, so the edge checks every
 * path segment and query value once. */
int http_utf8_ok(const char *s);

/* Is the Content-Type application/json (parameters allowed)? */
int http_is_json(const char *content_type);

/* Parse rq->query into rq->qp (decoded into the arena); a value that is
 * not valid UTF-8 sets rq->qp_bad to its parameter name. */
void req_parse_query(struct req *rq);
/* First value of a query parameter, or NULL. */
const char *req_query(const struct req *rq, const char *key);
/* All values of a repeated parameter; returns how many (up to max). */
size_t req_query_all(const struct req *rq, const char *key, const char **out,
		     size_t max);

/* Percent-decode into the arena. Returns NULL on a malformed escape.
 * With plus_space, '+' decodes to ' ' (query strings). */
char *http_decode(struct arena *a, const char *s, size_t len, int plus_space,
		  size_t *outlen);

/* Query-parameter parsers: 0 if absent, 1 if parsed, -1 with a 400 naming
 * the parameter in e. */
int req_query_long(const struct req *rq, const char *key, long min, long max,
		   long *out, struct apierr *e);
int req_query_bool(const struct req *rq, const char *key, int *out,
		   struct apierr *e);
/* ?offset=&limit= for resource collections: offset >= 0 (default 0),
 * limit 1..100 (default 20). */
int req_page(const struct req *rq, long *offset, long *limit, struct apierr *e);

void res_json(struct req *rq, int status, const char *json, size_t len);
void res_jsonf(struct req *rq, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void res_error(struct req *rq, int status, const char *code, const char *fmt,
	       ...) __attribute__((format(printf, 4, 5)));
void res_apierr(struct req *rq, const struct apierr *e);
void res_raw(struct req *rq, int status, const char *type, const void *data,
	     size_t len);
void res_empty(struct req *rq, int status);
void res_header(struct req *rq, const char *name, const char *value);
/* The generic 500 (details are logged by whoever failed). */
void res_internal(struct req *rq);

/* The CGI header block for the response ("Status: ...\r\n...\r\n\r\n"). */
void res_head(const struct req *rq, struct buf *out);

#endif
