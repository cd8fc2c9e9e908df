#include "evq.h"
#include "ids.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const known_types[] = {
	"session.started",
	"input.message",
	"session.activated",
	"turn.started",
	"reason.started",
	"output.message.started",
	"output.message.delta",
	"output.message.completed",
	"reason.completed",
	"reason.thinking.started",
	"reason.thinking.delta",
	"reason.thinking.completed",
	"act.started",
	"tool.started",
	"tool.output.delta",
	"tool.completed",
	"act.completed",
	"turn.completed",
	"turn.failed",
	"turn.cancelled",
	"session.idled",
	"file.written",
	/* a turn that waits for answers from outside (ARCHITECTURE 3.9) */
	"tool.call_requested",
	"tool.approval_requested",
	"tool.approval_resolved",
	"turn.resumed",
	"connected",
	"disconnecting",
	/* defined by the upstream API document, never emitted here */
	"output.message.replaced",
	"tool.progress",
	"llm.generation",
	"context.compacting",
	"context.compacted",
};

void evq_delta_id(char *out, long long c, long long m, size_t off)
{
	snprintf(out, EVQ_DELTA_ID_MAX, "dlt_%lld_%lld_%zu", c, m, off);
}

static int dec(const char **s, char end, long long *out)
{
	char *e;
	if (**s < '0' || **s > '9')
		return 0;
	errno = 0;
	*out = strtoll(*s, &e, 10);
	if (errno || *e != end)
		return 0;
	*s = e + (end ? 1 : 0);
	return 1;
}

int evq_delta_id_parse(const char *s, long long *c, long long *m, size_t *off)
{
	long long o;
	if (strncmp(s, "dlt_", 4))
		return 0;
	s += 4;
	if (!dec(&s, '_', c) || !dec(&s, '_', m) || !dec(&s, '\0', &o) ||
	    *m > *c || o > 0x7fffffff || (*m == 0 && o != 0))
		return 0;
	*off = (size_t)o;
	return 1;
}

int evq_type_known(const char *type)
{
	size_t i;
	for (i = 0; i < sizeof(known_types) / sizeof(known_types[0]); i++)
		if (!strcmp(known_types[i], type))
			return 1;
	return 0;
}

void evq_init(struct evq *q)
{
	memset(q, 0, sizeof(*q));
	q->limit = EVQ_MAX_LIMIT;
	buf_init(&q->types, 0);
	buf_init(&q->exclude, 0);
}

void evq_release(struct evq *q)
{
	buf_release(&q->types);
	buf_release(&q->exclude);
}

/* Repeated and/or comma-separated type names into a text[] literal. */
static int type_list(const struct req *rq, const char *key, struct buf *out,
		     struct apierr *e)
{
	const char *vals[64];
	size_t n = req_query_all(rq, key, vals, 64), i;
	char name[64];

	for (i = 0; i < n; i++) {
		const char *s = vals[i];
		while (*s) {
			size_t len = strcspn(s, ",");
			if (len >= sizeof(name))
				return apierr_set(e, 400, "validation_error",
						  "%s: unknown event type",
						  key);
			memcpy(name, s, len);
			name[len] = '\0';
			if (len && !evq_type_known(name))
				return apierr_set(e, 400, "validation_error",
						  "%s: unknown event type '%s'",
						  key, name);
			if (len) {
				buf_addch(out, out->len ? ',' : '{');
				buf_adds(out, name); /* known: no quoting */
			}
			s += len;
			if (*s == ',')
				s++;
		}
	}
	if (out->len)
		buf_addch(out, '}');
	return 0;
}

static int seq_param(const char *v, const char *name, long long *out,
		     struct apierr *e)
{
	char *end;
	long long n;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (!*v || *end || errno || n < 0)
		return apierr_set(e, 400, "validation_error",
				  "%s: must be a non-negative integer", name);
	*out = n;
	return 0;
}

int evq_parse(const struct req *rq, const char *cursor_header, int max_wait,
	      struct evq *q, struct apierr *e)
{
	const char *since_id = req_query(rq, "since_id");
	const char *since_seq = req_query(rq, "since_sequence");
	const char *after_seq = req_query(rq, "after_sequence");
	const char *before = req_query(rq, "before_sequence");
	long v;
	int r;

	if (!since_seq) /* the later upstream document's name */
		since_seq = after_seq;
	if (cursor_header && *cursor_header) {
		since_id = cursor_header;
		since_seq = NULL;
	}
	if (since_id && !strncmp(since_id, "dlt_", 4)) {
		if (!evq_delta_id_parse(since_id, &q->after, &q->dm, &q->doff))
			return apierr_set(e, 400, "invalid_cursor",
					  "since_id: malformed delta id");
		q->has_cursor = 1;
		q->delta_cursor = 1;
	} else if (since_id) {
		if (!ids_parse(since_id, "evt", q->since_id))
			return apierr_set(e, 400, "invalid_cursor",
					  "since_id: malformed event id");
		q->has_cursor = 1;
	} else if (since_seq) {
		if (seq_param(since_seq, "since_sequence", &q->after, e))
			return -1;
		q->has_cursor = 1;
	}
	if (before) {
		if (seq_param(before, "before_sequence", &q->before, e))
			return -1;
		if (q->before == 0)
			return apierr_field(e, "before_sequence",
					    "must be at least 1");
	}
	r = req_query_long(rq, "limit", 1, EVQ_MAX_LIMIT, &q->limit, e);
	if (r < 0)
		return -1;
	/* the document's backward pagination: `limit` without a cursor is
	 * the newest `limit` events */
	if (r > 0 && !q->has_cursor && !q->before)
		q->newest = 1;
	if (type_list(rq, "types", &q->types, e) ||
	    type_list(rq, "exclude", &q->exclude, e))
		return -1;
	r = max_wait ? req_query_long(rq, "wait", 0, max_wait, &v, e) : 0;
	if (r < 0)
		return -1;
	if (!max_wait && req_query(rq, "wait"))
		return apierr_field(e, "wait",
				    "long-poll is not available here");
	if (r > 0) {
		if (!q->has_cursor)
			return apierr_field(
				e, "wait",
				"requires since_id or since_sequence");
		q->wait_s = (int)v;
	}
	return 0;
}

/* Both forms return (last_seq, seq of since_id); the one without since_id
 * does not read the events table. */
static const char resolve_id_sql[] =
	"SELECT s.last_seq, (SELECT seq FROM events WHERE id = $3 AND session_id = s.id) "
	"FROM sessions s WHERE s.id = $1 AND s.org_id = $2";
static const char resolve_sql[] =
	"SELECT s.last_seq, NULL::bigint FROM sessions s "
	"WHERE s.id = $1 AND s.org_id = $2";

const char *evq_resolve_query(const struct evq *q, const char *p[3],
			      int *nparams)
{
	p[0] = q->session;
	p[1] = q->org;
	p[2] = q->since_id;
	*nparams = q->since_id[0] ? 3 : 2;
	return q->since_id[0] ? resolve_id_sql : resolve_sql;
}

int evq_resolve_result(struct evq *q, const PGresult *res, long long *last_seq,
		       struct apierr *e)
{
	if (PQntuples(res) == 0)
		return 1;
	*last_seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (q->delta_cursor && q->after > *last_seq) {
		apierr_set(e, 400, "invalid_cursor",
			   "since_id: not a delta of this session");
		return 2;
	}
	if (q->since_id[0]) {
		if (PQgetisnull(res, 0, 1)) {
			apierr_set(e, 400, "invalid_cursor",
				   "since_id: not an event of this session");
			return 2;
		}
		q->after = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	}
	return 0;
}

/* newest-first for before_sequence, re-sorted ascending in SQL */
static const char fetch_sql[] =
	"SELECT j, seq FROM (SELECT api_event(e) AS j, e.seq FROM events e "
	"WHERE e.session_id = $1 AND e.seq > $2 "
	"AND ($3::bigint IS NULL OR e.seq < $3) "
	"AND ($4::text[] IS NULL OR e.type = ANY($4::text[])) "
	"AND ($5::text[] IS NULL OR e.type <> ALL($5::text[])) "
	"ORDER BY CASE WHEN $3::bigint IS NULL THEN e.seq ELSE -e.seq END "
	"LIMIT $6) page ORDER BY seq";

const char *evq_fetch_query(const struct evq *q, struct evq_nums *nums,
			    const char *p[6])
{
	snprintf(nums->after, sizeof(nums->after), "%lld", q->after);
	snprintf(nums->before, sizeof(nums->before), "%lld", q->before);
	snprintf(nums->limit, sizeof(nums->limit), "%ld", q->limit + 1);
	p[0] = q->session;
	p[1] = nums->after;
	p[2] = q->before   ? nums->before
	       : q->newest ? "9223372036854775807"
			   : NULL;
	p[3] = q->types.len ? q->types.data : NULL;
	p[4] = q->exclude.len ? q->exclude.data : NULL;
	p[5] = nums->limit;
	return fetch_sql;
}

void evq_page(const struct evq *q, const PGresult *res, struct buf *out,
	      long *count, long long *last)
{
	int i, n = PQntuples(res);
	int more = n > q->limit;
	int from = 0, to = n;

	if (more) {
		/* the extra row is the oldest for before_sequence (dropped
		 * from the front), the newest otherwise */
		if (q->before || q->newest)
			from = 1;
		else
			to = n - 1;
	}
	buf_adds(out, "{\"data\":[");
	for (i = from; i < to; i++) {
		if (i > from)
			buf_addch(out, ',');
		buf_add(out, PQgetvalue(res, i, 0),
			(size_t)PQgetlength(res, i, 0));
	}
	buf_addf(out, "],\"has_more\":%s}", more ? "true" : "false");
	*count = to - from;
	*last = to > from ? strtoll(PQgetvalue(res, to - 1, 1), NULL, 10)
			  : q->after;
}
