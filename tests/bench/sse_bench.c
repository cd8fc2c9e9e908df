/*
 * sse-bench: many SSE clients on one epoll thread, for the streaming
 * benchmarks (tests/bench/sse_idle.sh, sse_fanout.sh). Not a test.
 *
 *   sse-bench hold   HOST PORT SECONDS               < streams
 *   sse-bench fanout HOST PORT CONNINFO ROUNDS       < streams
 *
 * `streams` has one line per stream: "ses_<hex> <api key>". Streams are
 * opened over plain HTTP/1.0 (no chunking: the body is the stream) at most
 * RAMP per second (env SSE_BENCH_RAMP, default 2000), and each counts as
 * open once its `connected` event has arrived.
 *
 * hold: open them all, print how many are open, then keep them (reading
 *   whatever comes) for SECONDS and print "holding" first, so the caller
 *   can sample memory meanwhile; stdout is line-buffered.
 * fanout: ROUNDS times, commit one `file.written` event in each distinct
 *   session of the list (one transaction, through libpq), take the time
 *   when COMMIT has returned, and record for every stream the time its
 *   copy arrives; a bare libpq LISTEN client on the `ev` channel measures
 *   the same commits' notifications as the reference. Prints p50, p99 and
 *   max of both, in milliseconds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MATCH "event: file.written"

struct stream {
	int fd;
	char sid[64], key[128];
	int sent, open, status;
	long seen;     /* MATCH occurrences so far */
	char tail[32]; /* the last bytes read, to match across reads */
	size_t ntail;
	double got_at; /* when `seen` last grew */
};

static struct stream *st;
static size_t nst;
static int ep;
static struct sockaddr_in addr;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void read_streams(void)
{
	char line[512];
	size_t cap = 0;
	while (fgets(line, sizeof(line), stdin)) {
		struct stream *s;
		if (nst == cap) {
			cap = cap ? cap * 2 : 1024;
			st = realloc(st, cap * sizeof(*st));
			if (!st)
				die("realloc");
		}
		s = &st[nst];
		memset(s, 0, sizeof(*s));
		s->fd = -1;
		if (sscanf(line, "%63s %127s", s->sid, s->key) == 2)
			nst++;
	}
}

static void start(struct stream *s)
{
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		die("socket");
	if (connect(s->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 &&
	    errno != EINPROGRESS)
		die("connect");
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0)
		die("epoll_ctl");
}

static void on_write(struct stream *s)
{
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET /api/v1/sessions/%s/sse HTTP/1.0\r\n"
			 "Host: bench\r\nAccept: text/event-stream\r\n"
			 "Authorization: Bearer %s\r\n\r\n",
			 s->sid, s->key);
	if (write(s->fd, req, (size_t)n) != n) {
		s->status = -1;
		return;
	}
	s->sent = 1;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
	epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

/* Count MATCH in tail+data; keep the last bytes as the new tail. */
static long count_matches(struct stream *s, const char *data, size_t n)
{
	char buf[32 + 65536];
	size_t len = s->ntail + n, keep;
	long c = 0;
	const char *p;
	memcpy(buf, s->tail, s->ntail);
	memcpy(buf + s->ntail, data, n);
	buf[len] = '\0';
	if (!s->open && strstr(buf, "event: connected"))
		s->open = 1;
	if (!s->status && !strncmp(buf, "HTTP/1.", 7))
		s->status = atoi(buf + 9);
	for (p = buf; (p = strstr(p, MATCH)); p += sizeof(MATCH) - 1)
		c++;
	keep = len < sizeof(MATCH) - 1 ? len : sizeof(MATCH) - 2;
	memcpy(s->tail, buf + len - keep, keep);
	s->ntail = keep;
	return c;
}

static void on_read(struct stream *s, double t)
{
	char data[65536];
	for (;;) {
		ssize_t n = read(s->fd, data, sizeof(data) - 1);
		if (n > 0) {
			long c = count_matches(s, data, (size_t)n);
			if (c) {
				s->seen += c;
				s->got_at = t;
			}
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
			close(s->fd);
			s->fd = -1;
			if (!s->status)
				s->status = -1;
		}
		return;
	}
}

static void poll_once(int timeout_ms)
{
	struct epoll_event evs[512];
	int i, n = epoll_wait(ep, evs, 512, timeout_ms);
	double t = now();
	for (i = 0; i < n; i++) {
		struct stream *s = evs[i].data.ptr;
		if (!s)
			continue;
		if (!s->sent && (evs[i].events & EPOLLOUT))
			on_write(s);
		else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			on_read(s, t);
	}
}

static size_t count_open(size_t *failed)
{
	size_t i, open = 0;
	*failed = 0;
	for (i = 0; i < nst; i++) {
		if (st[i].open && st[i].fd >= 0)
			open++;
		else if (st[i].fd < 0 || (st[i].status && st[i].status != 200))
			(*failed)++;
	}
	return open;
}

/* Open every stream at the ramp; wait (bounded) until each is open or
 * failed. */
static void open_all(void)
{
	double ramp = getenv("SSE_BENCH_RAMP") ? atof(getenv("SSE_BENCH_RAMP"))
					       : 2000;
	double t0 = now(), deadline;
	size_t next = 0, open = 0, failed = 0;
	while (next < nst) {
		size_t due = (size_t)((now() - t0) * ramp) + 1;
		while (next < nst && next < due)
			start(&st[next++]);
		poll_once(1);
	}
	deadline = now() + 60;
	while (now() < deadline) {
		open = count_open(&failed);
		if (open + failed >= nst)
			break;
		poll_once(50);
	}
	printf("opened %zu of %zu streams in %.1f s (%zu failed)\n", open, nst,
	       now() - t0, failed);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The distribution of sorted v (seconds), for the bench report: one line
 * "WHAT<TAB>P:MS,P:MS,..." appended to the file $BENCH_PCTS, if set. */
static void report_pcts(const char *what, const double *v, size_t n)
{
	static const double ps[] = {1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9};
	const char *path = getenv("BENCH_PCTS");
	FILE *f;
	size_t i;

	if (!path || !*path || !(f = fopen(path, "a")))
		return;
	fprintf(f, "%s\t", what);
	for (i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		/* the rank report() uses: v[n / 2] is its p50 */
		size_t k = (size_t)((double)n * ps[i] / 100);

		fprintf(f, "%s%g:%.3f", i ? "," : "", ps[i],
			v[k < n ? k : n - 1] * 1e3);
	}
	fprintf(f, "\n");
	fclose(f);
}

static void report(const char *what, double *v, size_t n)
{
	if (!n) {
		printf("%-28s no samples\n", what);
		return;
	}
	qsort(v, n, sizeof(*v), cmp_double);
	printf("%-28s n=%-7zu p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms\n", what,
	       n, v[n / 2] * 1e3, v[(size_t)((double)n * 0.99)] * 1e3,
	       v[n - 1] * 1e3);
	report_pcts(what, v, n);
}

static int hold(int seconds)
{
	double end;
	open_all();
	printf("holding\n");
	end = now() + seconds;
	while (now() < end)
		poll_once(200);
	return 0;
}

static int fanout(const char *conninfo, int rounds)
{
	PGconn *w = PQconnectdb(conninfo), *l = PQconnectdb(conninfo);
	PGresult *r;
	char **ids;
	size_t i, nids = 0, nsse = 0, nlis = 0;
	double *sse, *lis;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int round;

	if (PQstatus(w) != CONNECTION_OK || PQstatus(l) != CONNECTION_OK) {
		fprintf(stderr, "sse-bench: %s", PQerrorMessage(w));
		return 1;
	}
	PQclear(PQexec(l, "LISTEN ev"));
	epoll_ctl(ep, EPOLL_CTL_ADD, PQsocket(l), &ev);
	/* the distinct sessions, as one text[] parameter of hex uuids */
	ids = calloc(nst, sizeof(*ids));
	for (i = 0; i < nst; i++) {
		size_t j;
		const char *hex = strchr(st[i].sid, '_') + 1;
		for (j = 0; j < nids && strcmp(ids[j], hex); j++)
			;
		if (j == nids)
			ids[nids++] = (char *)hex;
	}
	size_t alen = 3;
	for (i = 0; i < nids; i++)
		alen += strlen(ids[i]) + 1;
	char *arr = malloc(alen), *p = arr;
	*p++ = '{';
	for (i = 0; i < nids; i++)
		p += sprintf(p, "%s%s", i ? "," : "", ids[i]);
	strcpy(p, "}");

	open_all();
	/* let the opening settle (each new stream's first look for events)
	 * so that the rounds measure fan-out, not the opening */
	for (double settle = now() + 1.0; now() < settle;)
		poll_once(50);
	sse = malloc(sizeof(*sse) * nst * (size_t)rounds);
	lis = malloc(sizeof(*lis) * nids * (size_t)rounds);
	for (round = 0; round < rounds; round++) {
		const char *pv[1] = {arr};
		double t0, deadline;
		size_t got, want = 0, heard = 0;
		for (i = 0; i < nst; i++)
			want += st[i].open && st[i].fd >= 0;
		r = PQexecParams(w,
				 "SELECT evr_emit(x::uuid, 'file.written', "
				 "'{\"path\":\"/bench.txt\"}') "
				 "FROM unnest($1::text[]) x",
				 1, NULL, pv, NULL, NULL, 0);
		t0 = now();
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			fprintf(stderr, "sse-bench: %s", PQerrorMessage(w));
			return 1;
		}
		PQclear(r);
		deadline = t0 + 10;
		for (;;) {
			PGnotify *nf;
			poll_once(5);
			PQconsumeInput(l);
			while ((nf = PQnotifies(l))) {
				lis[nlis++] = now() - t0;
				heard++;
				PQfreemem(nf);
			}
			for (got = 0, i = 0; i < nst; i++)
				got += st[i].seen > round;
			if ((got >= want && heard >= nids) || now() > deadline)
				break;
		}
		for (i = 0; i < nst; i++)
			if (st[i].seen > round) {
				sse[nsse++] = st[i].got_at - t0;
				st[i].seen = round + 1;
			}
		if (got < want)
			printf("round %d: %zu of %zu streams got the event\n",
			       round, got, want);
		/* let the system settle between rounds */
		struct timespec pause = {0, 20 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
	report("SSE commit-to-client", sse, nsse);
	report("libpq LISTEN (reference)", lis, nlis);
	PQfinish(w);
	PQfinish(l);
	return 0;
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	if (argc < 5) {
		fprintf(stderr,
			"usage: sse-bench hold HOST PORT SECONDS < streams\n"
			"       sse-bench fanout HOST PORT CONNINFO ROUNDS < streams\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1) {
		fprintf(stderr, "sse-bench: HOST must be an IPv4 address\n");
		return 2;
	}
	ep = epoll_create1(0);
	read_streams();
	if (!strcmp(argv[1], "hold"))
		return hold(atoi(argv[4]));
	if (!strcmp(argv[1], "fanout") && argc == 6)
		return fanout(argv[4], atoi(argv[5]));
	fprintf(stderr, "sse-bench: unknown mode %s\n", argv[1]);
	return 2;
}
