/*
 * llmsim: the deterministic simulator. The plan is a pure function of
 * the request (apart from the tool call ids), so a test or a benchmark
 * knows exactly what a turn will stream.
 */
#include "llmsim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "json.h"
#include "llm_int.h"
#include "utf8.h"

#define SIM_MAX_TOKENS 1000000L
#define SIM_DEFAULT_DELAY_MS 10
#define SIM_RESULT_MAX 200 /* bytes of each tool result in the summary */
#define SIM_THOUGHT "Let me think about this step by step."

struct sim_tool {
	char *name, *args;
};

/* What the last user message asks for. */
struct sim_req {
	struct buf plain; /* the lines that are not directives */
	struct buf text;  /* #text */
	long tokens;      /* #tokens, -1 if absent */
	double rate;      /* tokens per second, 0 = instant */
	int think;
	const char *error; /* #error code, borrowed from line */
	struct buf line;   /* keeps `error` alive */
	struct sim_tool *tools;
	size_t ntools;
	char *bad;    /* a directive that cannot be obeyed */
	int answered; /* tool results follow: no call is made, so the
			 #tool arguments are not parsed again */
};

static void add_step(struct llmsim_plan *pl, enum llmsim_kind kind,
		     long delay_ms, const char *text, size_t n)
{
	struct llmsim_step *s;
	pl->steps = xrealloc(pl->steps, (pl->n + 1) * sizeof(*pl->steps));
	s = &pl->steps[pl->n++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->delay_ms = delay_ms;
	if (text)
		s->text = xstrndup(text, n);
}

/* Stream s as whitespace-separated tokens (each keeping the spaces that
 * follow it, so the chunks join back to s), k tokens per step with
 * `delay` ms before each step, or all in one step when k is 0; at most
 * max tokens (<0: no limit), *cut telling whether some were left out.
 * Returns the number of tokens sent. */
static long stream_words(struct llmsim_plan *pl, enum llmsim_kind kind,
			 const char *s, long k, long delay, long max, int *cut)
{
	const char *p = s, *start = s;
	long count = 0, in_step = 0;

	while (*p && (max < 0 || count < max)) {
		while (*p && *p != ' ' && *p != '\n')
			p++;
		while (*p == ' ' || *p == '\n')
			p++;
		count++;
		if (k && (++in_step == k || !*p || count == max)) {
			add_step(pl, kind, delay, start, (size_t)(p - start));
			start = p;
			in_step = 0;
		}
	}
	if (!k && p > s)
		add_step(pl, kind, 0, s, (size_t)(p - s));
	if (cut)
		*cut = *p != '\0';
	return count;
}

static void sim_req_release(struct sim_req *q)
{
	size_t i;
	for (i = 0; i < q->ntools; i++) {
		free(q->tools[i].name);
		free(q->tools[i].args);
	}
	free(q->tools);
	free(q->bad);
	buf_release(&q->plain);
	buf_release(&q->text);
	buf_release(&q->line);
}

/* One '#' line. Returns 0 if it was a directive, -1 if it is text. */
static int directive(struct sim_req *q, const char *l, size_t n)
{
	char word[16];
	size_t w = 1, i;
	const char *arg;
	char *end;

	while (w < n && l[w] != ' ' && w < sizeof(word))
		w++;
	if (w == sizeof(word) || w < 2)
		return -1;
	memcpy(word, l + 1, w - 1);
	word[w - 1] = '\0';
	arg = l + w;
	while (*arg == ' ')
		arg++;
	if (!strcmp(word, "think")) {
		q->think = 1;
	} else if (!strcmp(word, "tokens")) {
		long t = strtol(arg, &end, 10);
		if (end == arg || t < 0)
			return -1;
		q->tokens = t > SIM_MAX_TOKENS ? SIM_MAX_TOKENS : t;
	} else if (!strcmp(word, "rate")) {
		double r = strtod(arg, &end);
		if (end == arg || !(r >= 0) || isinf(r))
			return -1;
		q->rate = r;
	} else if (!strcmp(word, "text")) {
		if (q->text.len)
			buf_addch(&q->text, ' ');
		buf_adds(&q->text, arg);
	} else if (!strcmp(word, "error")) {
		if (!*arg)
			return -1;
		buf_reset(&q->line);
		buf_adds(&q->line, arg);
		q->error = q->line.data;
	} else if (!strcmp(word, "tool")) {
		struct json_object *o;
		struct apierr e;
		struct sim_tool *t;
		for (i = 0; arg[i] && arg[i] != ' '; i++)
			;
		if (!i)
			return -1;
		q->tools = xrealloc(q->tools, (q->ntools + 1) * sizeof(*t));
		t = &q->tools[q->ntools++];
		t->name = xstrndup(arg, i);
		arg += i;
		while (*arg == ' ')
			arg++;
		t->args = xstrdup(*arg ? arg : "{}");
		if (q->answered)
			return 0;
		o = jx_parse(t->args, strlen(t->args), &e);
		if (!json_object_is_type(o, json_type_object) && !q->bad) {
			struct buf b = BUF_INIT;
			buf_addf(&b,
				 "llmsim: #tool %s: the arguments are "
				 "not a JSON object",
				 t->name);
			q->bad = buf_detach(&b, NULL);
		}
		json_object_put(o);
	} else {
		return -1;
	}
	return 0;
}

static void parse_user(struct sim_req *q, const char *s)
{
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s), len = n;
		char *line;
		/* the \r of a CRLF, and trailing blanks, are not arguments */
		while (len && (s[len - 1] == '\r' || s[len - 1] == ' '))
			len--;
		line = xstrndup(s, len);
		/* a line such as "#hashtag" is not a directive: keep it */
		if (line[0] != '#' || directive(q, line, len)) {
			if (q->plain.len)
				buf_addch(&q->plain, '\n');
			buf_add(&q->plain, s, n);
		}
		free(line);
		s += n + (nl ? 1 : 0);
	}
}

static const char *call_name(struct json_object *msgs, size_t from,
			     const char *id)
{
	size_t i, k, n = json_object_array_length(msgs);
	for (i = from; i < n && id; i++) {
		struct json_object *calls = jx_get(
			json_object_array_get_idx(msgs, i), "tool_calls");
		for (k = 0; json_object_is_type(calls, json_type_array) &&
			    k < json_object_array_length(calls);
		     k++) {
			struct json_object *c;
			const char *cid;
			c = json_object_array_get_idx(calls, k);
			cid = jx_gets(c, "id");
			if (cid && !strcmp(cid, id) && jx_gets(c, "name"))
				return jx_gets(c, "name");
		}
	}
	return "tool";
}

/* "Tool results: NAME: CONTENT; ..." for the results after the last user
 * message. Returns the number of results. */
static int summarize(struct json_object *msgs, size_t from, struct buf *out)
{
	size_t i, n = json_object_array_length(msgs);
	int count = 0;
	struct buf t = BUF_INIT;

	for (i = from; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(msgs, i);
		struct json_object *c = jx_get(m, "content");
		const char *role = jx_gets(m, "role");
		size_t len;
		if (!role || strcmp(role, "tool"))
			continue;
		buf_reset(&t);
		if (json_object_is_type(c, json_type_string))
			buf_adds(&t, json_object_get_string(c));
		else if (c)
			jx_append(&t, c);
		len = utf8_cut(t.data, t.len, SIM_RESULT_MAX);
		buf_adds(out, count ? "; " : "Tool results: ");
		buf_addf(out, "%s: %.*s%s",
			 call_name(msgs, from, jx_gets(m, "tool_call_id")),
			 (int)len, t.data, len < t.len ? "..." : "");
		count++;
	}
	buf_release(&t);
	return count;
}

static long count_input(struct json_object *msgs)
{
	size_t i, n = json_object_array_length(msgs);
	long bytes = 0;
	for (i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(msgs, i);
		bytes += (long)strlen(jx_str(m));
	}
	return bytes / 4 + 1;
}

static void sim_error(struct llmsim_plan *pl, const char *code, long delay)
{
	static const struct {
		const char *code, *message;
		int retryable;
	} known[] = {
		{"rate_limit", "Rate limit reached (simulated)", 1},
		{"server", "Internal server error (simulated)", 1},
		{"bad_request", "Bad request (simulated)", 0},
	};
	size_t i;
	const char *msg = "Simulated error";
	int retryable = 0;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(code, known[i].code)) {
			msg = known[i].message;
			retryable = known[i].retryable;
		}
	add_step(pl, SIM_ERROR, delay, msg, strlen(msg));
	pl->steps[pl->n - 1].name = xstrdup(code);
	pl->steps[pl->n - 1].retryable = retryable;
	pl->stop_reason = "error";
}

int llmsim_plan(const struct llm_request *r, struct llmsim_plan *out)
{
	struct sim_req q;
	struct buf user = BUF_INIT, answer = BUF_INIT;
	struct json_object *msgs = r->messages, *none = NULL;
	size_t i, n, last;
	long delay, k, sent;
	int results = 0, cut = 0;
	char idbuf[IDS_MAX_LEN];

	if (!json_object_is_type(msgs, json_type_array))
		msgs = none = json_object_new_array();
	n = last = json_object_array_length(msgs);
	memset(out, 0, sizeof(*out));
	memset(&q, 0, sizeof(q));
	buf_init(&q.plain, 0);
	buf_init(&q.text, 0);
	buf_init(&q.line, 0);
	q.tokens = -1;
	q.rate = r->model && !strcmp(r->model, "llmsim-instant")
			 ? 0
			 : 1000.0 / SIM_DEFAULT_DELAY_MS;
	for (i = n; i-- > 0;) {
		struct json_object *m;
		const char *role;
		m = json_object_array_get_idx(msgs, i);
		role = jx_gets(m, "role");
		if (role && !strcmp(role, "user")) {
			llm_user_text(m, &user);
			last = i;
			break;
		}
	}
	for (i = last + 1; i < n && !q.answered; i++) {
		const char *role =
			jx_gets(json_object_array_get_idx(msgs, i), "role");
		q.answered = role && !strcmp(role, "tool");
	}
	parse_user(&q, user.data);

	/* R tokens per second: one token per step up to 1000/s, beyond
	 * that several, since steps are timed in whole milliseconds */
	k = q.rate > 0 ? (long)ceil(q.rate / 1000.0) : 0;
	delay = k ? lround(1000.0 * (double)k / q.rate) : 0;
	/* the caller's estimate spares a second pass over a long history */
	out->input_tokens =
		r->input_tokens > 0 ? r->input_tokens : count_input(msgs);
	out->stop_reason = "end_turn";
	if (q.error || q.bad) {
		if (q.bad) {
			sim_error(out, "bad_request", delay);
			free(out->steps[0].text);
			out->steps[0].text = xstrdup(q.bad);
		} else {
			sim_error(out, q.error, delay);
		}
		goto out;
	}
	if (q.think)
		out->output_tokens += stream_words(
			out, SIM_THINKING, SIM_THOUGHT, k, delay, -1, NULL);
	if (last < n)
		results = summarize(msgs, last + 1, &answer);
	if (q.ntools && !results) {
		for (i = 0; i < q.ntools; i++) {
			struct llmsim_step *s;
			add_step(out, SIM_TOOL_CALL, delay, NULL, 0);
			s = &out->steps[out->n - 1];
			ids_new("call", idbuf, sizeof(idbuf));
			s->id = xstrdup(idbuf);
			s->name = xstrdup(q.tools[i].name);
			s->args = xstrdup(q.tools[i].args);
			out->output_tokens += (long)strlen(s->args) / 4 + 1;
		}
		out->stop_reason = "tool_calls";
		goto out;
	}
	if (!results) {
		if (q.text.len) {
			buf_add(&answer, q.text.data, q.text.len);
		} else if (q.tokens >= 0) {
			long t;
			for (t = 1; t <= q.tokens; t++)
				buf_addf(&answer, "%stoken%ld",
					 t > 1 ? " " : "", t);
		} else {
			const char *p = q.plain.data;
			size_t len = q.plain.len;
			while (len && (*p == ' ' || *p == '\n')) {
				p++;
				len--;
			}
			while (len && (p[len - 1] == ' ' || p[len - 1] == '\n'))
				len--;
			if (len) {
				buf_adds(&answer, "You said: ");
				buf_add(&answer, p, len);
			} else {
				buf_adds(&answer, "You said nothing.");
			}
		}
	}
	sent = stream_words(out, SIM_TEXT, answer.data, k, delay,
			    r->max_tokens > 0 ? r->max_tokens : -1, &cut);
	out->output_tokens += sent;
	if (cut)
		out->stop_reason = "max_tokens";
out:
	sim_req_release(&q);
	buf_release(&user);
	buf_release(&answer);
	json_object_put(none);
	return 0;
}

void llmsim_plan_free(struct llmsim_plan *p)
{
	size_t i;
	for (i = 0; i < p->n; i++) {
		free(p->steps[i].text);
		free(p->steps[i].id);
		free(p->steps[i].name);
		free(p->steps[i].args);
	}
	free(p->steps);
	p->steps = NULL;
	p->n = 0;
}
