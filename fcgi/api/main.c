/*
 * everruns-api: the REST program. libfcgi's thread-safe (_r) API, N worker
 * threads per process, each with its own PostgreSQL connection, arena and
 * FCGX_Request. The listening socket is fd 0 as spawn-fcgi hands it over,
 * or the path given with --socket.
 *
 * Per request: match the route (404/405/400), enforce the body limit
 * before reading (413), check the Content-Type of a JSON body (415),
 * authenticate (401), then call the handler and write its response.
 * SIGTERM/SIGINT stop this process only: the main thread takes the
 * signal (sigwait), then interrupts the worker blocked in accept() with
 * SIGUSR2 (FCGI_FAIL_ACCEPT_ON_INTR); requests in flight finish first.
 * The listening socket is shared with the other processes spawn-fcgi
 * started, so it is never shut down here.
 */
#include "api.h"
#include "auth.h"
#include "config.h"
#include "fs.h"
#include "log.h"

#include <errno.h>
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int listen_fd;
static pthread_mutex_t accept_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *conninfo;
static int prepared_mode;
static volatile sig_atomic_t stopping;
static int alive; /* workers still running (atomic builtins) */
static long statement_timeout_ms;

static const char *param(FCGX_Request *r, const char *name)
{
	return FCGX_GetParam(name, r->envp);
}

static const char *copy_param(struct req *rq, FCGX_Request *r, const char *name)
{
	const char *v = param(r, name);
	return v ? arena_strdup(rq->arena, v) : NULL;
}

/* Read exactly content_length bytes of body into the arena. */
static int read_body(struct req *rq, FCGX_Request *r, size_t len)
{
	char *b = arena_alloc(rq->arena, len + 1);
	size_t got = 0;
	while (got < len) {
		int n = FCGX_GetStr(b + got, (int)(len - got), r->in);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	b[got] = '\0';
	rq->body = b;
	rq->body_len = got;
	return got == len ? 0 : -1;
}

static int fcgi_read(void *in, char *p, int n)
{
	return FCGX_GetStr(p, n, in);
}

/* The rest of a streamed body, read and dropped: nginx is still sending
 * it. */
static void drain_body(struct req *rq)
{
	char sink[16384];
	while (api_body_read(rq, sink, sizeof(sink)) > 0)
		;
}

static void dispatch(struct req *rq, FCGX_Request *r)
{
	struct buf allow = BUF_INIT;
	const struct route *rt;
	int bad_path;
	size_t max;
	const char *cl;

	rt = router_match(rq, &allow, &bad_path);
	if (!rt) {
		if (bad_path) {
			char name[64];
			router_cap_name(rq->cap[0], (size_t)bad_path - 1, name,
					sizeof(name));
			res_error(rq, 400, "invalid_path",
				  "%s: malformed percent-encoding, an encoded "
				  "NUL, or bytes that are not UTF-8",
				  name);
		} else if (allow.len) {
			res_header(rq, "Allow", allow.data);
			res_error(rq, 405, "method_not_allowed",
				  "Method %s not allowed here; allowed: %s",
				  rq->method, allow.data);
		} else {
			res_error(rq, 404, "not_found", "No such route");
		}
		goto out;
	}
	req_parse_query(rq);
	if (rq->qp_bad) {
		res_error(rq, 400, "validation_error", "%s: not valid UTF-8",
			  rq->qp_bad);
		goto out;
	}
	if (rq->qp_overflow) {
		res_error(rq, 400, "validation_error",
			  "Too many query parameters (at most %d)", REQ_MAX_QP);
		goto out;
	}

	cl = param(r, "CONTENT_LENGTH");
	rq->content_length = cl && *cl ? strtol(cl, NULL, 10) : 0;
	max = rt->flags & ROUTE_FS_BODY ? fs_body_max()
	      : rt->max_body            ? rt->max_body
					: API_MAX_BODY;
	if (rq->content_length < 0 || (size_t)rq->content_length > max) {
		res_error(rq, 413, "payload_too_large",
			  "Request body larger than %zu bytes", max);
		goto out;
	}
	if (rq->content_length > 0) {
		if ((rt->flags & ROUTE_JSON_BODY) &&
		    !http_is_json(rq->content_type)) {
			res_error(rq, 415, "unsupported_media_type",
				  "Content-Type must be application/json");
			goto out;
		}
		if ((rt->flags & ROUTE_STREAM_BODY) &&
		    rq->content_length >= API_STREAM_MIN &&
		    !http_is_json(rq->content_type)) {
			rq->body = NULL;
			rq->body_len = (size_t)rq->content_length;
			rq->body_in = r->in;
			rq->body_read = fcgi_read;
		} else if (read_body(rq, r, (size_t)rq->content_length) != 0) {
			res_error(rq, 400, "incomplete_body",
				  "Request body shorter than Content-Length");
			goto out;
		}
	} else {
		rq->body = "";
	}

	if (!(rt->flags & ROUTE_NOAUTH)) {
		int a = auth_check(rq->db, rq->authorization, rq->org, rq->user,
				   rq->key, rq->role);
		if (a < 0) {
			api_db_error(rq);
			goto out;
		}
		if (a == 0) {
			res_header(rq, "WWW-Authenticate", "Bearer");
			res_error(rq, 401, "unauthorized", "Unauthorized");
			goto out;
		}
	}
	if (!router_allowed(rt, rq))
		goto out;
	rt->fn(rq);
	/* a handler that failed half-way must not leave a transaction open
	 * on this thread's connection */
	if (rq->db->in_tx) {
		log_error("%s %s left a transaction open", rq->method,
			  rq->path);
		db_rollback(rq->db);
	}
out:
	if (rq->body_in) {
		drain_body(rq);
		rq->body_in = NULL;
	}
	buf_release(&allow);
}

static void serve(FCGX_Request *r, struct db *db, struct arena *arena)
{
	struct req rq;
	struct buf head = BUF_INIT;
	const char *uri, *q;

	req_init(&rq, arena);
	rq.db = db;
	rq.method = copy_param(&rq, r, "REQUEST_METHOD");
	uri = param(r, "REQUEST_URI");
	if (!rq.method || !uri) {
		res_error(&rq, 400, "bad_request", "Missing request line");
	} else {
		q = strchr(uri, '?');
		rq.path = q ? arena_strndup(arena, uri, (size_t)(q - uri))
			    : arena_strdup(arena, uri);
		rq.query = q ? arena_strdup(arena, q + 1) : "";
		rq.content_type = copy_param(&rq, r, "CONTENT_TYPE");
		if (rq.content_type && !*rq.content_type)
			rq.content_type = NULL;
		rq.authorization = copy_param(&rq, r, "HTTP_AUTHORIZATION");
		rq.idempotency_key = copy_param(&rq, r, "HTTP_IDEMPOTENCY_KEY");
		rq.last_event_id = copy_param(&rq, r, "HTTP_LAST_EVENT_ID");
		rq.remote_addr = copy_param(&rq, r, "REMOTE_ADDR");
		dispatch(&rq, r);
	}
	buf_init(&head, 256);
	res_head(&rq, &head);
	FCGX_PutStr(head.data, (int)head.len, r->out);
	if (rq.res_body.len && strcmp(rq.method ? rq.method : "", "HEAD"))
		FCGX_PutStr(rq.res_body.data, (int)rq.res_body.len, r->out);
	buf_release(&head);
	req_release(&rq);
}

static void *worker(void *arg)
{
	FCGX_Request r;
	struct db db;
	struct arena arena = ARENA_INIT;
	(void)arg;

	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
	db_connect(&db, conninfo, prepared_mode); /* retried per request */
	db_set_statement_timeout(&db, statement_timeout_ms);
	FCGX_InitRequest(&r, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR);
	for (;;) {
		int rc;
		pthread_mutex_lock(&accept_mu);
		rc = stopping ? -1 : FCGX_Accept_r(&r);
		pthread_mutex_unlock(&accept_mu);
		if (rc < 0)
			break;
		serve(&r, &db, &arena);
		FCGX_Finish_r(&r);
		arena_reset(&arena);
	}
	FCGX_Free(&r, 0);
	arena_release(&arena);
	db_close(&db);
	__atomic_sub_fetch(&alive, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void on_wake(int sig)
{
	(void)sig; /* only interrupts accept() */
}

int main(int argc, char **argv)
{
	const char *sock = NULL;
	long nthreads;
	pthread_t *th;
	struct sigaction sa;
	sigset_t mask;
	int sig;
	long i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			sock = argv[++i];
		} else {
			fprintf(stderr,
				"usage: everruns-api [--socket PATH]\n"
				"  (without --socket the listening "
				"socket is fd 0, as spawn-fcgi passes it)\n");
			return 2;
		}
	}
	log_init("api", LOG_INFO);
	if (config_load(NULL) != 0)
		return 1;
	if (!strcmp(config_str("log_level"), "debug"))
		log_init("api", LOG_DEBUG);
	/* api_database_url: a PgBouncer in transaction mode for the API's
	 * connections, while the programs that need a session (LISTEN in
	 * everruns-sse, the runner's leases, migrations) use database_url */
	conninfo = config_str("api_database_url");
	if (!*conninfo)
		conninfo = config_str("database_url");
	prepared_mode = strcmp(config_str("db_pool"), "transaction") != 0;
	nthreads = config_int("api_threads");
	/* every statement of a request is bounded (db.h says how, by mode) */
	statement_timeout_ms = config_int("api_statement_timeout_s") * 1000L;
	/* LISTEN is not available through PgBouncer's transaction mode */
	auth_cache_init(prepared_mode ? config_num("auth_cache_s") : 0);
	if (nthreads < 1 || nthreads > 256)
		nthreads = 4;

	if (FCGX_Init() != 0) {
		log_error("FCGX_Init failed");
		return 1;
	}
	if (sock) {
		mode_t old = umask(0007); /* group (nginx) may connect */
		listen_fd = FCGX_OpenSocket(sock, 1024);
		umask(old);
		if (listen_fd < 0) {
			log_error("cannot listen on %s", sock);
			return 1;
		}
	} else {
		listen_fd = 0;
	}

	/* workers inherit this mask: only the main thread takes SIGTERM and
	 * SIGINT; workers unblock SIGUSR2, which has no SA_RESTART */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wake;
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);

	log_info("started: %ld threads, db_pool=%s", nthreads,
		 prepared_mode ? "session" : "transaction");
	th = xcalloc((size_t)nthreads, sizeof(*th));
	alive = (int)nthreads;
	for (i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	sigdelset(&mask, SIGUSR2);
	sigwait(&mask, &sig);
	log_info("signal %d: stopping", sig);
	stopping = 1;
	FCGX_ShutdownPending();
	/* a SIGUSR2 that lands just before accept() is lost: repeat */
	while (__atomic_load_n(&alive, __ATOMIC_SEQ_CST) > 0) {
		for (i = 0; i < nthreads; i++)
			pthread_kill(th[i], SIGUSR2);
		usleep(50000);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	free(th);
	config_free();
	log_info("stopped");
	return 0;
}
