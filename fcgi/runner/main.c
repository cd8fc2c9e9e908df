/*
 * everruns-runner: executes turns (ARCHITECTURE 1, 3). No HTTP server; one
 * thread; see runner.h for the shape of the loop.
 *
 * Signals: SIGTERM/SIGINT stop claiming; turns in flight get drain_s to
 * finish, then the rest are released (lease ended now, attempt not
 * counted) so another runner resumes them at once.
 */
#include "runner.h"
#include "config.h"
#include "crypto.h"
#include "guard.h"
#include "ids.h"
#include "log.h"
#include "sandbox.h"
#include "tools/virtual_bash.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static CURLM *wake_multi;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
	if (wake_multi)
		curl_multi_wakeup(wake_multi); /* async-signal-safe in 7.88 */
}

static void setup(struct runner *r)
{
	char id[IDS_MAX_LEN], def[64];
	const char *conninfo = config_str("database_url");

	ids_new("run", id, sizeof(id));
	memcpy(r->id, id + 4, 32);
	r->id[32] = '\0';
	r->max_inflight = (int)config_int("max_inflight_turns");
	r->lease_s = config_num("lease_s");
	r->renew_s = config_num("lease_renew_s");
	r->poll_s = config_num("runner_poll_s");
	r->llm_connect_s = config_int("llm_connect_timeout_s");
	r->llm_first_byte_s = config_int("llm_first_byte_timeout_s");
	r->llm_idle_s = config_int("llm_idle_timeout_s");
	r->llm_total_s = config_int("llm_call_timeout_s");
	r->turn_wall_s = config_int("turn_wall_time_s");
	r->tool_timeout_s = config_int("tool_timeout_s");
	r->tool_wait_max_s = config_int("tool_wait_max_s");
	r->tool_result_max = config_int("tool_result_max_bytes");
	r->default_max_iterations = config_int("default_max_iterations");
	keyring_init(&r->keys, config_server_key_file());
	snprintf(def, sizeof(def), "everruns-runner/%d", (int)getpid());
	db_application_name(def);
	db_connect(&r->listen, conninfo, 1);
	db_connect(&r->write, conninfo, 1);
	db_connect(&r->write2, conninfo, 1);
	db_connect(&r->deltas, conninfo, 1);
	db_connect(&r->tools, conninfo, 1);
	r->multi = curl_multi_init();
	wake_multi = r->multi;
}

static int poll_timeout(struct runner *r)
{
	long long now = now_ms(), next = now + 1000;
	struct turn *t;
	if (r->next_poll_ms < next)
		next = r->next_poll_ms;
	if (r->next_renew_ms < next)
		next = r->next_renew_ms;
	for (t = r->turns; t; t = t->next) {
		if (t->phase == PH_RETRY && t->retry_at_ms < next)
			next = t->retry_at_ms;
		if (t->phase == PH_REASON && t->sim_active &&
		    t->next_step_ms < next)
			next = t->next_step_ms;
		/* tools to run, or a finished turn to free (once its events
		 * have landed: the write socket wakes us for those) */
		if (t->vbash && vbash_deadline(t->vbash) < next)
			next = vbash_deadline(t->vbash);
		if ((t->phase == PH_ACT && !t->fetch && !t->vbash) ||
		    (t->phase == PH_WAIT && !t->pending &&
		     t->wait_retry_ms <= now) ||
		    ((t->phase == PH_DONE || t->dropped) && !t->pending))
			next = now;
		if (t->phase == PH_REASON &&
		    (t->text.len > t->text_sent ||
		     t->thinking.len > t->think_sent) &&
		    r->next_delta_ms < next)
			next = r->next_delta_ms;
	}
	if (writer_pending())
		next = now;
	return next <= now ? 0 : (int)(next - now);
}

static void reap_transfers(struct runner *r)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(r->multi, &left))) {
		struct turn *t = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
				  (char **)&t);
		if (t)
			turn_transfer_done(r, t, m->data.result);
	}
}

static void loop(struct runner *r)
{
	long long drain_deadline = 0;
	long long drain_ms = config_int("drain_s") * 1000;
	int want_claim = 1, woke = 0, running;

	static struct curl_waitfd *wfd; /* grows with the running commands */
	static size_t wcap;

	while (!(r->draining &&
		 (r->inflight == 0 || now_ms() >= drain_deadline))) {
		int fds[3];
		unsigned nfd = 0, nfds;
		struct turn *t, *next;
		long long now;

		if (stop_requested && !r->draining) {
			r->draining = 1;
			drain_deadline = now_ms() + drain_ms;
			log_info("stopping: %d turn(s) in flight, draining up "
				 "to %lld ms",
				 r->inflight, drain_ms);
		}
		fds[0] = PQsocket(r->listen.conn);
		nfds = 1 + (unsigned)writer_busy_fds(r, fds + 1);
		if (wcap < 3 + 3 * (size_t)r->inflight) {
			wcap = 3 + 3 * (size_t)r->inflight + 32;
			wfd = xrealloc(wfd, wcap * sizeof(*wfd));
		}
		for (t = r->turns; t; t = t->next) { /* bash's pipes, exit */
			int vf[3], nv = t->vbash ? vbash_fds(t->vbash, vf) : 0;
			for (int k = 0; k < nv; k++) {
				wfd[nfd].fd = vf[k];
				wfd[nfd].events = CURL_WAIT_POLLIN;
				wfd[nfd].revents = 0;
				nfd++;
			}
		}
		for (unsigned k = 0; k < nfds; k++) {
			if (fds[k] < 0)
				continue;
			wfd[nfd].fd = fds[k];
			wfd[nfd].events = CURL_WAIT_POLLIN;
			wfd[nfd].revents = 0;
			nfd++;
		}
		/* woke: notifications that libpq read while a query ran on
		 * the listen connection are already off its socket */
		curl_multi_poll(r->multi, nfd ? wfd : NULL, nfd,
				woke ? 0 : poll_timeout(r), NULL);
		woke = 0;
		writer_poll(r);
		curl_multi_perform(r->multi, &running);
		reap_transfers(r);
		queue_drain_notifies(r, &want_claim);

		for (t = r->turns; t; t = t->next)
			turn_step(r, t);

		now = now_ms();
		sandbox_reap();
		if (now >= r->next_delta_ms) {
			writer_deltas(r, NULL);
			vbash_deltas(r, NULL);
			r->next_delta_ms = now + 50;
		}
		writer_flush(r);
		for (t = r->turns; t; t = next) {
			next = t->next;
			if ((t->phase == PH_DONE || t->dropped) &&
			    !t->pending) {
				turn_free(r, t);
				want_claim = 1; /* capacity freed */
			}
		}
		now = now_ms();
		if (now >= r->next_renew_ms) {
			queue_renew(r);
			queue_heartbeat(r);
			r->next_renew_ms = now + (long long)(r->renew_s * 1000);
		}
		if (now >= r->next_poll_ms) {
			want_claim = 1;
			turn_wait_expire(r);
			r->next_poll_ms = now + (long long)(r->poll_s * 1000);
		}
		if (want_claim && !r->draining) {
			want_claim = 0;
			if (queue_claim(r) < 0)
				want_claim = 1;
		}
		if (now >= r->next_housekeeping_ms) {
			housekeeping_run(r);
			r->next_housekeeping_ms =
				now + config_int("housekeeping_s") * 1000;
		}
		/* what the renewal, heartbeat and claim above read besides
		 * their results: cancels act now, new turns are claimed in the
		 * next pass without sleeping */
		queue_drain_notifies(r, &woke);
		if (woke)
			want_claim = 1;
	}
	writer_wait(r);
	if (r->inflight) {
		queue_release_all(r);
		while (r->turns)
			turn_free(r, r->turns);
	}
}

int main(int argc, char **argv)
{
	static struct runner r;
	struct sigaction sa;

	if (argc > 1) {
		fprintf(stderr,
			"usage: everruns-runner (configured by "
			"$EVERRUNS_HOME/everruns.conf and EVERRUNS_*)\n");
		return 2;
	}
	log_init("runner", LOG_INFO);
	if (config_load(NULL) != 0)
		return 1;
	if (!strcmp(config_str("log_level"), "debug"))
		log_init("runner", LOG_DEBUG);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	setup(&r);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	writer_init();
	sandbox_init(); /* says whether virtual_bash can work here */
	if (queue_listen(&r) != 0)
		log_warn("LISTEN failed; relying on polling until the "
			 "database is back");
	queue_heartbeat(&r);
	log_info("started: runner %s, max_inflight_turns=%d, lease %gs", r.id,
		 r.max_inflight, r.lease_s);
	guard_warn_config();
	loop(&r);
	queue_goodbye(&r);
	history_cache_free();
	curl_multi_cleanup(r.multi);
	db_close(&r.listen);
	db_close(&r.write);
	db_close(&r.write2);
	db_close(&r.deltas);
	db_close(&r.tools);
	keyring_release(&r.keys);
	curl_global_cleanup();
	config_free();
	log_info("stopped");
	return 0;
}
