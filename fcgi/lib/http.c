#include "http.h"
#include "crypto.h"
#include "utf8.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void req_init(struct req *rq, struct arena *a)
{
	memset(rq, 0, sizeof(*rq));
	rq->arena = a;
	rq->query = "";
	rq->content_length = -1;
	rq->status = 200;
	buf_init(&rq->res_headers, 0);
	buf_init(&rq->res_body, 0);
}

void req_release(struct req *rq)
{
	buf_release(&rq->res_headers);
	buf_release(&rq->res_body);
}

char *http_decode(struct arena *a, const char *s, size_t len, int plus_space,
		  size_t *outlen)
{
	char *out = arena_alloc(a, len + 1), *p = out;
	size_t i;
	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			unsigned char byte;
			if (i + 2 >= len || crypto_unhex(s + i + 1, &byte, 1))
				return NULL;
			*p++ = (char)byte;
			i += 2;
		} else if (plus_space && s[i] == '+') {
			*p++ = ' ';
		} else {
			*p++ = s[i];
		}
	}
	*p = '\0';
	if (outlen)
		*outlen = (size_t)(p - out);
	return out;
}

int http_utf8_ok(const char *s)
{
	return utf8_valid(s, strlen(s), 0);
}

int http_is_json(const char *ct)
{
	size_t n = strlen("application/json");
	if (!ct)
		return 0;
	while (*ct == ' ')
		ct++;
	return !strncasecmp(ct, "application/json", n) &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

void req_parse_query(struct req *rq)
{
	const char *s = rq->query;
	rq->nqp = 0;
	while (s && *s) {
		const char *amp = strchr(s, '&');
		size_t len = amp ? (size_t)(amp - s) : strlen(s);
		const char *eq = memchr(s, '=', len);
		if (len) {
			size_t klen = eq ? (size_t)(eq - s) : len;
			char *k = http_decode(rq->arena, s, klen, 1, NULL);
			char *v = eq ? http_decode(rq->arena, eq + 1,
						   len - klen - 1, 1, NULL)
				     : arena_strdup(rq->arena, "");
			if ((k && !http_utf8_ok(k)) || (v && !http_utf8_ok(v)))
				rq->qp_bad = k && http_utf8_ok(k) ? k : "query";
			if (rq->nqp == REQ_MAX_QP) {
				rq->qp_overflow = 1;
			} else if (k) {
				rq->qp[rq->nqp].key = k;
				/* a malformed escape in a value is kept as
				 * the raw text; validators reject it */
				rq->qp[rq->nqp].value =
					v ? v
					  : arena_strndup(rq->arena, eq + 1,
							  len - klen - 1);
				rq->nqp++;
			}
		}
		s = amp ? amp + 1 : NULL;
	}
}

const char *req_query(const struct req *rq, const char *key)
{
	size_t i;
	for (i = 0; i < rq->nqp; i++)
		if (!strcmp(rq->qp[i].key, key))
			return rq->qp[i].value;
	return NULL;
}

size_t req_query_all(const struct req *rq, const char *key, const char **out,
		     size_t max)
{
	size_t i, n = 0;
	for (i = 0; i < rq->nqp && n < max; i++)
		if (!strcmp(rq->qp[i].key, key))
			out[n++] = rq->qp[i].value;
	return n;
}

int req_query_long(const struct req *rq, const char *key, long min, long max,
		   long *out, struct apierr *e)
{
	const char *v = req_query(rq, key);
	char *end;
	long n;
	if (!v)
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (!*v || *end || errno || n < min || n > max)
		return apierr_set(e, 400, "validation_error",
				  "%s: must be an integer between %ld and %ld",
				  key, min, max);
	*out = n;
	return 1;
}

int req_query_bool(const struct req *rq, const char *key, int *out,
		   struct apierr *e)
{
	const char *v = req_query(rq, key);
	if (!v)
		return 0;
	if (!strcmp(v, "true") || !strcmp(v, "1")) {
		*out = 1;
	} else if (!strcmp(v, "false") || !strcmp(v, "0")) {
		*out = 0;
	} else {
		return apierr_field(e, key, "must be true or false");
	}
	return 1;
}

int req_page(const struct req *rq, long *offset, long *limit, struct apierr *e)
{
	*offset = 0;
	*limit = 20;
	if (req_query_long(rq, "offset", 0, 1000000000L, offset, e) < 0)
		return -1;
	if (req_query_long(rq, "limit", 1, 100, limit, e) < 0)
		return -1;
	return 0;
}

void res_json(struct req *rq, int status, const char *json, size_t len)
{
	rq->status = status;
	rq->res_type = "application/json";
	buf_reset(&rq->res_body);
	buf_add(&rq->res_body, json, len);
}

void res_jsonf(struct req *rq, int status, const char *fmt, ...)
{
	va_list ap;
	rq->status = status;
	rq->res_type = "application/json";
	buf_reset(&rq->res_body);
	va_start(ap, fmt);
	buf_vaddf(&rq->res_body, fmt, ap);
	va_end(ap);
}

void res_error(struct req *rq, int status, const char *code, const char *fmt,
	       ...)
{
	struct apierr e;
	va_list ap;
	e.status = status;
	e.code = code;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
	va_end(ap);
	res_apierr(rq, &e);
}

void res_apierr(struct req *rq, const struct apierr *e)
{
	rq->status = e->status;
	rq->res_type = "application/json";
	buf_reset(&rq->res_body);
	buf_adds(&rq->res_body, "{\"error\":");
	buf_add_json_str(&rq->res_body, e->msg, strlen(e->msg));
	buf_adds(&rq->res_body, ",\"code\":");
	buf_add_json_str(&rq->res_body, e->code, strlen(e->code));
	/* the later upstream document's problem fields (RFC 9457) */
	buf_addf(&rq->res_body,
		 ",\"status\":%d,\"title\":\"%s\",\"detail\":", e->status,
		 http_reason(e->status));
	buf_add_json_str(&rq->res_body, e->msg, strlen(e->msg));
	buf_addch(&rq->res_body, '}');
}

void res_internal(struct req *rq)
{
	res_error(rq, 500, "internal_error", "Internal server error");
}

void res_raw(struct req *rq, int status, const char *type, const void *data,
	     size_t len)
{
	rq->status = status;
	rq->res_type = type;
	buf_reset(&rq->res_body);
	buf_add(&rq->res_body, data, len);
}

void res_empty(struct req *rq, int status)
{
	rq->status = status;
	rq->res_type = NULL;
	buf_reset(&rq->res_body);
}

void res_header(struct req *rq, const char *name, const char *value)
{
	buf_addf(&rq->res_headers, "%s: %s\r\n", name, value);
}

void res_head(const struct req *rq, struct buf *out)
{
	buf_addf(out, "Status: %d %s\r\n", rq->status, http_reason(rq->status));
	if (rq->res_type)
		buf_addf(out, "Content-Type: %s\r\n", rq->res_type);
	if (rq->status != 204)
		buf_addf(out, "Content-Length: %zu\r\n", rq->res_body.len);
	buf_add(out, rq->res_headers.data, rq->res_headers.len);
	buf_adds(out, "\r\n");
}
