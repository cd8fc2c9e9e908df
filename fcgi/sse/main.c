/*
 * everruns-sse: streams and long-polls (ARCHITECTURE 1). One thread, one epoll
 * set: the listening unix socket, every FastCGI connection from nginx,
 * the hub's LISTEN connection, the query connections (dbq.c) and a
 * signalfd for SIGTERM/SIGINT. Nothing in the loop waits for PostgreSQL:
 * queries are sent and their answers read when their sockets are ready.
 * The loop wakes at least every SSE_TICK_MS for heartbeats, cycling,
 * long-poll deadlines and the hub's reconnect.
 *
 * A connection is freed only at the end of a loop round (the dead list),
 * so that code walking the hub's subscriber lists never meets freed
 * memory; until then a dead connection is skipped everywhere.
 */
#define _GNU_SOURCE /* accept4 */
#include "sse.h"
#include "auth.h"
#include "config.h"
#include "dbq.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SSE_TICK_MS 250
#define SSE_MAX_EVENTS 256

static int epfd = -1;
static char listen_tag, hub_tag, sig_tag;
static struct sse_conn *conns; /* every live connection */
static struct sse_conn **dead; /* to free at the end of the round */
static size_t ndead, dead_cap;

double sse_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void mark_dead(struct sse_conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (ndead == dead_cap) {
		dead_cap = dead_cap ? dead_cap * 2 : 64;
		dead = xrealloc(dead, dead_cap * sizeof(*dead));
	}
	dead[ndead++] = c;
}

static void set_out(struct sse_conn *c, int on)
{
	struct epoll_event ev;
	if (c->want_out == on)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->want_out = on;
}

size_t sse_conn_pending(const struct sse_conn *c)
{
	return c->out.len - c->out_off;
}

static void flush(struct sse_conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off,
				 c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_out(c, 1);
			/* keep the buffer from growing by its written head */
			if (c->out_off > 65536 && c->out_off * 2 > c->out.len) {
				memmove(c->out.data, c->out.data + c->out_off,
					c->out.len - c->out_off);
				c->out.len -= c->out_off;
				c->out.data[c->out.len] = '\0';
				c->out_off = 0;
			}
			return;
		}
		mark_dead(c); /* EPIPE and friends: the client is gone */
		return;
	}
	buf_reset(&c->out);
	c->out_off = 0;
	set_out(c, 0);
	if (c->closing)
		mark_dead(c);
	else if (c->sub && c->sub->lagging) {
		c->sub->lagging = 0;
		log_debug("stream of %s drained: catching up from %lld",
			  c->sub->session, c->sub->cursor);
		hub_kick(c->sub);
	}
}

void sse_conn_send(struct sse_conn *c, const void *data, size_t len)
{
	if (c->dead || c->closing)
		return;
	fcgi_put_stdout(&c->out, c->fp.request_id, data, len);
	flush(c);
	if (!c->dead && c->sub && !c->sub->lagging &&
	    sse_conn_pending(c) > SSE_LAG_BYTES) {
		c->sub->lagging = 1;
		log_debug("stream of %s lags: %zu bytes unsent, pushes paused",
			  c->sub->session, sse_conn_pending(c));
	}
}

void sse_conn_finish(struct sse_conn *c)
{
	if (c->dead || c->closing)
		return;
	fcgi_put_end(&c->out, c->fp.request_id, 0);
	c->closing = 1;
	flush(c);
}

static void conn_free(struct sse_conn *c)
{
	/* an answer still to come is dropped, not handed to c */
	dbq_cancel(c->job);
	sse_open_done(c);
	if (c->sub) {
		hub_unsubscribe(c->sub);
		sse_sub_free(c->sub);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	close(c->fd); /* also leaves the epoll set */
	fcgi_parser_release(&c->fp);
	buf_release(&c->out);
	free(c);
}

static void reap(void)
{
	size_t i;
	for (i = 0; i < ndead; i++)
		conn_free(dead[i]);
	ndead = 0;
}

static void on_accept(int lfd)
{
	for (;;) {
		struct epoll_event ev;
		struct sse_conn *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		fcgi_parser_init(&c->fp);
		buf_init(&c->out, 0);
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.ptr = c;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			log_error("epoll_ctl: %s", strerror(errno));
			fcgi_parser_release(&c->fp);
			buf_release(&c->out);
			free(c);
			close(fd);
			continue;
		}
		c->next = conns;
		if (conns)
			conns->prev = c;
		conns = c;
	}
}

static void on_conn(struct sse_conn *c, uint32_t events)
{
	char b[16384];

	if (c->dead)
		return;
	if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
		mark_dead(c); /* nginx closed: the client went away */
		return;
	}
	if (events & EPOLLOUT)
		flush(c);
	if (!(events & EPOLLIN) || c->dead)
		return;
	for (;;) {
		ssize_t n = read(c->fd, b, sizeof(b));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			mark_dead(c);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		int was_ready = c->fp.state == FCGI_READY;
		if (fcgi_feed(&c->fp, b, (size_t)n) != 0) {
			log_warn("bad FastCGI input: %s", c->fp.error);
			mark_dead(c);
			return;
		}
		if (c->fp.aborted) {
			mark_dead(c);
			return;
		}
		if (!was_ready && c->fp.state == FCGI_READY)
			sse_serve(c);
		if (c->dead)
			return;
	}
}

static void tick(void)
{
	struct sse_conn *c;
	double now = sse_now();
	long streams = 0, nconns = 0;
	for (c = conns; c; c = c->next) {
		nconns++;
		if (c->sub && !c->dead && !c->closing) {
			if (!c->job) /* a poll whose page is on its way */
				sse_sub_tick(c->sub, now);
			streams++;
		}
	}
	hub_tick(now);
	sse_report(now, streams, nconns);
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("socket path too long: %s", path);
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	old = umask(0007); /* group (nginx) may connect */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 4096) != 0) {
		umask(old);
		log_error("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	return fd;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_warn("setrlimit(NOFILE): %s", strerror(errno));
	getrlimit(RLIMIT_NOFILE, &rl);
	log_info("RLIMIT_NOFILE %llu", (unsigned long long)rl.rlim_cur);
}

static int add_fd(int fd, void *tag)
{
	struct epoll_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = tag;
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int main(int argc, char **argv)
{
	const char *sock = NULL, *conninfo;
	int lfd = -1, sfd = -1, rc = 1, i, stop = 0;
	struct epoll_event evs[SSE_MAX_EVENTS];
	double next_tick;
	sigset_t mask;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			sock = argv[++i];
		} else {
			fprintf(stderr, "usage: everruns-sse --socket PATH\n");
			return 2;
		}
	}
	if (!sock) {
		fprintf(stderr, "usage: everruns-sse --socket PATH\n");
		return 2;
	}
	log_init("sse", LOG_INFO);
	if (config_load(NULL) != 0)
		return 1;
	if (!strcmp(config_str("log_level"), "debug"))
		log_init("sse", LOG_DEBUG);
	conninfo = config_str("database_url");
	/* one thread, so no cache: every stream checks its key */
	auth_cache_init(0);
	raise_nofile();
	srand48((long)getpid() ^ (long)time(NULL)); /* cycle jitter */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	epfd = epoll_create1(EPOLL_CLOEXEC);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	lfd = listen_on(sock);
	if (epfd < 0 || sfd < 0 || lfd < 0)
		goto out;
	if (add_fd(lfd, &listen_tag) || add_fd(sfd, &sig_tag))
		goto out;
	/* streams ask little of the query connections and they must work
	 * through PgBouncer too, so no prepared statements there */
	dbq_init(conninfo, (int)config_int("sse_db_connections"),
		 (double)config_int("sse_query_timeout_s"), epfd);
	hub_init(conninfo); /* retried from tick() when down */
	log_info("listening on %s", sock);
	next_tick = sse_now() + SSE_TICK_MS / 1000.0;
	while (!stop) {
		int n, k;
		double now = sse_now();
		int wait_ms = (int)((next_tick - now) * 1000) + 1;
		if (wait_ms < 0)
			wait_ms = 0;
		n = epoll_wait(epfd, evs, SSE_MAX_EVENTS, wait_ms);
		if (n < 0 && errno != EINTR) {
			log_error("epoll_wait: %s", strerror(errno));
			break;
		}
		for (k = 0; k < n; k++) {
			void *p = evs[k].data.ptr;
			if (p == &listen_tag)
				on_accept(lfd);
			else if (p == &sig_tag)
				stop = 1;
			else if (p == &hub_tag)
				hub_event(evs[k].events);
			else if (dbq_is_tag(p))
				dbq_event(p, evs[k].events);
			else
				on_conn(p, evs[k].events);
		}
		if (sse_now() >= next_tick) {
			tick();
			next_tick = sse_now() + SSE_TICK_MS / 1000.0;
		}
		hub_run();
		dbq_run(sse_now());
		reap();
	}
	log_info("stopping");
	/* tell streams to come back (to another process, or to our
	 * successor) rather than just cutting them */
	for (struct sse_conn *c = conns; c; c = c->next)
		if (c->sub && c->sub->kind == SSE_STREAM && !c->dead &&
		    !c->closing && !c->job)
			sse_stream_close(c->sub, "shutdown");
	rc = 0;
out:
	while (conns)
		conn_free(conns);
	free(dead);
	dbq_free();
	hub_free();
	if (lfd >= 0) {
		close(lfd);
		unlink(sock);
	}
	if (sfd >= 0)
		close(sfd);
	if (epfd >= 0)
		close(epfd);
	config_free();
	return rc;
}

void *sse_hub_tag(void)
{
	return &hub_tag;
}
