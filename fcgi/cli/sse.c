/*
 * sse: reading /sessions/{id}/sse, and following it across drops.
 *
 * One transfer runs on a curl multi handle so that the wait can also
 * watch the SIGINT pipe: Ctrl-C reaches the command at once, not after
 * the next byte. Frames are parsed as the bytes come (any split) by the
 * drivers' incremental parser (sse_parse).
 *
 * Resume: the id of the last durable frame goes back as Last-Event-ID
 * (the server's first choice of cursor), so nothing is missed or
 * repeated across a connection cycle, a dropped connection or a restart
 * of the SSE server (nginx answers 502 meanwhile: retried). Deltas carry
 * no id; the server resends the text of a message in progress as
 * `accumulated`, which render.c uses to print only what is new.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "sse_parse.h"

#define SSE_GIVE_UP_S 120 /* reconnecting without success this long: fail */
#define SSE_IDLE_S 45     /* no byte (heartbeats are every 15 s): dropped */
#define SSE_RETRY_MS 1000 /* between attempts, unless the server says */

volatile sig_atomic_t cli_sigints;
static int sig_pipe[2] = {-1, -1};

static void on_sigint(int sig)
{
	int saved = errno;
	(void)sig;
	cli_sigints++;
	if (sig_pipe[1] >= 0 && write(sig_pipe[1], "x", 1) < 0) {
		/* pipe full: a wake-up is pending anyway */
	}
	errno = saved;
}

void cli_signals_init(void)
{
	static int done;
	struct sigaction sa;

	if (done++)
		return;
	if (pipe(sig_pipe) == 0) {
		fcntl(sig_pipe[0], F_SETFL, O_NONBLOCK);
		fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
		fcntl(sig_pipe[0], F_SETFD, FD_CLOEXEC);
		fcntl(sig_pipe[1], F_SETFD, FD_CLOEXEC);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a read at the prompt returns */
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int cli_sigfd(void)
{
	return sig_pipe[0];
}

void cli_sig_drain(void)
{
	char tmp[64];

	while (sig_pipe[0] >= 0 && read(sig_pipe[0], tmp, sizeof(tmp)) > 0)
		;
}

void cli_sleep_ms(long ms)
{
	struct pollfd p = {sig_pipe[0], POLLIN, 0};

	poll(&p, 1, (int)ms);
}

/* One connection. */
struct conn {
	struct sse_handler *h;
	struct sse_parser parser;
	long retry_ms;
	long status;
	struct buf errbody;
	int got_bytes, stopped, deleted;
	char *last_id; /* the follower's cursor, updated per durable frame */
	CURL *easy;
};

/* A complete frame from the parser; nonzero stops the stream. Durable
 * events are recognised by the id in their envelope (deltas have none),
 * which is the same value as the frame's `id:` line. */
static int on_event(void *ud, const char *event, const char *data, size_t len)
{
	struct conn *k = ud;
	struct sse_frame f;
	struct apierr e;
	struct json_object *j =
		len ? jx_parse_depth(data, len, CLI_JSON_DEPTH, &e) : NULL;
	const char *id = j ? jx_gets(j, "id") : NULL;

	f.event = *event ? event : "message";
	f.id = id && !strncmp(id, "evt_", 4) ? id : NULL;
	f.data = data;
	f.json = j;
	if (f.id)
		snprintf(k->last_id, 128, "%s", f.id);
	if (!strcmp(f.event, "disconnecting")) {
		const char *why = jx_gets(j, "reason");
		struct json_object *r = jx_get(j, "retry_ms");
		if (r)
			k->retry_ms = json_object_get_int(r);
		if (why && !strcmp(why, "session_deleted")) {
			k->deleted = 1;
			k->stopped = 1;
		}
	} else if (strcmp(f.event, "connected") && k->h->frame(k->h->ctx, &f)) {
		k->stopped = 1;
	}
	if (j)
		json_object_put(j);
	return k->stopped;
}

static size_t on_bytes(char *p, size_t sz, size_t n, void *ud)
{
	struct conn *k = ud;
	size_t len = sz * n;

	if (!k->status)
		curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &k->status);
	if (k->status != 200) {
		buf_add(&k->errbody, p, len);
		return len;
	}
	k->got_bytes = 1;
	/* a stop, or a line too long to be ours: end this transfer */
	return sse_parser_feed(&k->parser, p, len) ? 0 : len;
}

/* C_DROPPED: worth another try (a drop, a cycle, 429/502/503/504, no
 * connection); C_FAILED: not (a refusal, printed). */
enum conn_end { C_STOPPED, C_DROPPED, C_FAILED };

/* Run one connection to its end. */
static enum conn_end run_conn(struct cli *c, struct conn *k, const char *url)
{
	CURLM *m = curl_multi_init();
	struct curl_slist *hd = NULL;
	struct buf h = BUF_INIT;
	char err[CURL_ERROR_SIZE] = "";
	enum conn_end end = C_DROPPED;
	sig_atomic_t seen = cli_sigints;
	int running = 1;
	CURLcode rc = CURLE_OK;

	k->easy = curl_easy_init();
	hd = curl_slist_append(hd, "Accept: text/event-stream");
	if (*k->last_id) {
		buf_init(&h, 160);
		buf_addf(&h, "Last-Event-ID: %s", k->last_id);
		hd = curl_slist_append(hd, h.data);
		buf_release(&h);
	}
	hd = http_setup(c, k->easy, url, hd);
	curl_easy_setopt(k->easy, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(k->easy, CURLOPT_WRITEFUNCTION, on_bytes);
	curl_easy_setopt(k->easy, CURLOPT_WRITEDATA, k);
	curl_easy_setopt(k->easy, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(k->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(k->easy, CURLOPT_LOW_SPEED_TIME, (long)SSE_IDLE_S);
	curl_multi_add_handle(m, k->easy);

	while (running && !k->stopped) {
		struct curl_waitfd w = {cli_sigfd(), CURL_WAIT_POLLIN, 0};
		CURLMsg *msg;
		int left;

		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)))
			if (msg->msg == CURLMSG_DONE)
				rc = msg->data.result;
		if (!running || k->stopped)
			break;
		curl_multi_poll(m, &w, w.fd >= 0 ? 1 : 0, 1000, NULL);
		if (cli_sigints != seen) {
			seen = cli_sigints;
			cli_sig_drain();
			if (!k->h->interrupt || k->h->interrupt(k->h->ctx))
				k->stopped = 1;
		}
	}
	if (!k->status) /* an answer without a body */
		curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &k->status);
	if (k->stopped) {
		end = C_STOPPED;
	} else if (k->status && k->status != 200) {
		struct resp r;
		memset(&r, 0, sizeof(r));
		r.status = k->status;
		if (k->errbody.len)
			r.json = json_tokener_parse(k->errbody.data);
		if (k->status == 429 || k->status == 502 || k->status == 503 ||
		    k->status == 504) {
			end = C_DROPPED;
		} else {
			http_print_error(&r);
			end = C_FAILED;
		}
		if (r.json)
			json_object_put(r.json);
	} else if (rc != CURLE_OK && !k->got_bytes) {
		if (rc == CURLE_SSL_CACERT ||
		    rc == CURLE_PEER_FAILED_VERIFICATION ||
		    rc == CURLE_SSL_CONNECT_ERROR ||
		    rc == CURLE_URL_MALFORMAT) {
			fprintf(stderr, "everruns: %s: %s\n", url,
				*err ? err : curl_easy_strerror(rc));
			end = C_FAILED;
		} else {
			if (c->verbose)
				fprintf(stderr, "everruns: %s\n",
					*err ? err : curl_easy_strerror(rc));
			end = C_DROPPED;
		}
	}
	curl_multi_remove_handle(m, k->easy);
	curl_easy_cleanup(k->easy);
	curl_multi_cleanup(m);
	curl_slist_free_all(hd);
	k->easy = NULL;
	return end;
}

enum sse_end sse_follow(struct cli *c, const char *sid, const char *filters,
			long since_seq, struct sse_handler *h)
{
	char last_id[128] = "";
	time_t failing_since = 0;

	cli_signals_init();
	for (;;) {
		struct conn k;
		struct buf path;
		char *url;
		enum conn_end end;
		sig_atomic_t seen;

		memset(&k, 0, sizeof(k));
		k.h = h;
		k.last_id = last_id;
		k.retry_ms = SSE_RETRY_MS;
		sse_parser_init(&k.parser, on_event, &k);
		buf_init(&k.errbody, 0);
		cli_session_path(&path, sid, "/sse");
		if (filters && *filters)
			buf_addf(&path, "?%s", filters);
		if (!*last_id && since_seq >= 0)
			buf_addf(&path, "%csince_sequence=%ld",
				 filters && *filters ? '&' : '?', since_seq);
		url = http_url(c, path.data);
		end = run_conn(c, &k, url);
		free(url);
		buf_release(&path);
		sse_parser_release(&k.parser);
		buf_release(&k.errbody);
		if (end == C_STOPPED)
			return k.deleted ? SSE_DELETED : SSE_STOPPED;
		if (end == C_FAILED)
			return SSE_FAILED;
		/* a cycle or a drop after a working connection: back at once
		 * (the server's retry_ms); an unreachable stream: every
		 * second, for a while */
		if (k.got_bytes) {
			failing_since = 0;
		} else if (!failing_since) {
			failing_since = time(NULL);
			fprintf(stderr,
				"everruns: event stream lost, reconnecting...\n");
		} else if (time(NULL) - failing_since > SSE_GIVE_UP_S) {
			fprintf(stderr,
				"everruns: the event stream is unreachable; giving up\n");
			return SSE_FAILED;
		}
		seen = cli_sigints;
		cli_sleep_ms(k.got_bytes ? k.retry_ms : SSE_RETRY_MS);
		if (cli_sigints != seen) {
			cli_sig_drain();
			if (!h->interrupt || h->interrupt(h->ctx))
				return SSE_STOPPED;
		}
	}
}
