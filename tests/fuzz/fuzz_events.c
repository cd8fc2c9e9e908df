/*
 * libFuzzer target: the runner's event building, from what a model and a
 * tool say to what goes to the event writer. The input's first byte picks
 * the wire format (OpenAI or Anthropic); the rest is cut at "\n\x1e\n"
 * into a first response stream, a tool result and a second response
 * stream. A turn (turn.c and turn_act.c, compiled in here so that their
 * sink callbacks and act_complete() are reachable) is given the first
 * stream through its own parser and sink, runs its first tool call for
 * real (test_math, or an unknown tool), records the fuzzed bytes as the
 * result of the next ones, then takes the second stream. writer_event()
 * and writer_deltas() stand in for writer.c and check that every event
 * is storable and readable again: valid UTF-8 without NUL, no \u0000 or
 * lone surrogate escape (what PostgreSQL's jsonb refuses), and nesting
 * the runner can parse back inside its turn documents; and that deltas
 * (live_text rows) are valid text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turn.c"
#include "turn_act.c"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_storable(const char *type, const char *s, size_t n)
{
	struct apierr e;
	struct json_object *o;

	if (!utf8_valid(s, n, 0)) {
		fprintf(stderr, "%s: not storable text: %.*s\n", type, (int)n,
			s);
		abort();
	}
	if (jx_check_text(s, n, NULL, 0, &e) != 0) {
		fprintf(stderr, "%s: %s\n", type, e.msg);
		abort();
	}
	/* the turn document puts event data 3 levels down */
	o = jx_parse_depth(s, n, TURN_CFG_DEPTH - 3, &e);
	if (!o) {
		fprintf(stderr, "%s: the runner cannot read it back: %s\n",
			type, e.msg);
		abort();
	}
	json_object_put(o);
}

void writer_event(struct turn *t, const char *type, char *data, long uin,
		  long uout, enum ev_kind kind, const char *final)
{
	(void)uin;
	(void)uout;
	(void)kind;
	(void) final;
	check_storable(type, data, strlen(data));
	if (getenv("FUZZ_EVENTS_PRINT")) /* replaying: what was written */
		printf("%s %s\n", type, data);
	free(data);
	(void)t;
}

int writer_deltas(struct runner *r, struct turn *only)
{
	(void)r;
	if (!utf8_valid(only->text.data, only->text.len, 0) ||
	    !utf8_valid(only->thinking.data, only->thinking.len, 0))
		abort();
	only->text_sent = only->text.len;
	only->think_sent = only->thinking.len;
	return 0;
}

/* Not reached here: no url images, no housekeeping. */
struct image_fetch *image_fetch_next(struct runner *r, struct turn *t)
{
	(void)r;
	(void)t;
	return NULL;
}

int image_fetch_done(struct runner *r, struct image_fetch *f, CURLcode rc,
		     struct buf *why)
{
	(void)r;
	(void)f;
	(void)rc;
	(void)why;
	return -1;
}

void image_fetch_free(struct runner *r, struct image_fetch *f)
{
	(void)r;
	(void)f;
}

static const char cfg_json[] =
	"{\"events\":[{\"seq\":1,\"type\":\"input.message\",\"turn_id\":"
	"\"trn_00000000000000000000000000000001\",\"data\":{\"message\":{"
	"\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}}}],"
	"\"session\":{\"harness_id\":\"hns_1\"}}";

/* Give the turn's current LLM call a response stream, as on_body would. */
static void respond(struct runner *r, struct turn *t, const char *s, size_t n)
{
	int ok;
	if (t->phase != PH_REASON || !t->parser)
		return;
	ok = llm_parser_feed(t->parser, s, n) == 0;
	t->http_status = 200;
	if (!ok)
		snprintf(t->stream_error, sizeof(t->stream_error),
			 "malformed_response: %s", llm_parser_error(t->parser));
	turn_transfer_done(r, t, CURLE_OK);
}

static const char *piece(const char **s, const char *end, size_t *n)
{
	const char *p = *s, *q;
	for (q = p; q + 3 <= end; q++)
		if (q[0] == '\n' && q[1] == '\x1e' && q[2] == '\n')
			break;
	if (q + 3 > end)
		q = end;
	*n = (size_t)(q - p);
	*s = q < end ? q + 3 : end;
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct runner r;
	static int init;
	const char *s = (const char *)data + 1,
		   *end = (const char *)data + size;
	const char *a, *b, *c;
	size_t na, nb, nc;
	struct turn *t;
	struct apierr e;
	struct buf result = BUF_INIT, error = BUF_INIT;
	int guard = 0;

	if (size < 1)
		return 0;
	if (!init) {
		log_init("fuzz_events", LOG_ERROR);
		r.multi = curl_multi_init();
		r.llm_connect_s = r.llm_first_byte_s = r.llm_idle_s = 5;
		r.llm_total_s = 10;
		r.turn_wall_s = 3600;
		r.tool_result_max = 2048;
		r.default_max_iterations = 4;
		init = 1;
	}
	a = piece(&s, end, &na);
	b = piece(&s, end, &nb);
	c = piece(&s, end, &nc);

	t = xcalloc(1, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "00000000000000000000000000000001");
	snprintf(t->session, sizeof(t->session),
		 "00000000000000000000000000000002");
	snprintf(t->input_msg, sizeof(t->input_msg),
		 "00000000000000000000000000000003");
	t->r = &r;
	t->attempt = 1;
	t->started_ms = now_ms();
	t->m_seq = t->t_seq = -1;
	buf_init(&t->text, 0);
	buf_init(&t->thinking, 0);
	buf_init(&t->req_body, 0);
	buf_init(&t->err_body, 0);
	t->calls = json_object_new_array();
	t->cfg = jx_parse(cfg_json, strlen(cfg_json), &e);
	t->system_prompt = xstrdup(""); /* what turn_load's load_prompt sets */
	t->capcfg = jx_obj();
	json_object_object_add(t->capcfg, "test_math", jx_obj());
	t->tools = json_object_new_array();
	t->kind = data[0] & 1 ? LLM_ANTHROPIC : LLM_OPENAI;
	t->model = xstrdup("m");
	t->model_id = xstrdup("mod_1");
	t->provider_id = xstrdup("prv_1");
	t->base_url = xstrdup("http://127.0.0.1:9");
	t->max_iterations = 4;
	t->next = r.turns;
	r.turns = t;
	r.inflight++;
	t->announced = 1;

	turn_reason_begin(&r, t);
	respond(&r, t, a, na);
	/* the act phase: the first tool for real, the others get the bytes */
	while (t->phase == PH_ACT && guard++ < 64) {
		if (t->act_next == 0) {
			turn_act_step(&r, t);
			continue;
		}
		buf_init(&result, nb + 1);
		buf_init(&error, 0);
		buf_add(&result, b, nb);
		act_complete(&r, t, TOOL_OK, &result, &error);
		buf_release(&result);
		buf_release(&error);
	}
	respond(&r, t, c, nc);
	if (t->phase != PH_DONE)
		turn_fail(t, "fuzz", "%.*s", (int)(nb < 300 ? nb : 300), b);
	turn_free(&r, t);
	return 0;
}
