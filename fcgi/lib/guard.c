/*
 * guard: see guard.h. Addresses are handled as 16 bytes: IPv4 as its
 * IPv4-mapped IPv6 form (::ffff:a.b.c.d), so one CIDR matcher serves both
 * families and an IPv4 allow entry covers the mapped spelling too.
 */
#include "guard.h"
#include "buf.h"
#include "config.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>

struct net {
	unsigned char a[16];
	int bits; /* prefix length over the 16 bytes */
	int port; /* 0: any */
};

struct host {
	char *name;
	int port; /* 0: any */
};

struct allow {
	struct net *nets;
	size_t nnets;
	struct host *hosts;
	size_t nhosts;
	int loaded;
};

static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0,    0,
					   0, 0, 0, 0, 0xff, 0xff};

/* Numeric address -> 16 bytes. 0, or -1 if it is not one. */
static int parse_ip(const char *ip, unsigned char a[16])
{
	struct in_addr v4;
	if (inet_pton(AF_INET, ip, &v4) == 1) {
		memcpy(a, v4mapped, 12);
		memcpy(a + 12, &v4, 4);
		return 0;
	}
	return inet_pton(AF_INET6, ip, a) == 1 ? 0 : -1;
}

static int in_net(const unsigned char a[16], const unsigned char n[16],
		  int bits)
{
	int full = bits / 8, rest = bits % 8;
	if (memcmp(a, n, (size_t)full))
		return 0;
	if (!rest)
		return 1;
	return ((a[full] ^ n[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

static const char *classify4(const unsigned char *b)
{
	if (b[0] == 169 && b[1] == 254 && b[2] == 169 && b[3] == 254)
		return "a cloud metadata address";
	if (b[0] == 127)
		return "a loopback address";
	if (b[0] == 0)
		return "an unspecified (\"this network\") address";
	if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
	    (b[0] == 192 && b[1] == 168))
		return "a private address";
	if (b[0] == 100 && (b[1] & 0xc0) == 64)
		return "a shared (carrier-grade NAT) address";
	if (b[0] == 169 && b[1] == 254)
		return "a link-local address";
	if ((b[0] == 192 && b[1] == 0 && b[2] == 0) ||
	    (b[0] == 198 && (b[1] & 0xfe) == 18))
		return "a reserved address";
	if ((b[0] == 192 && b[1] == 0 && b[2] == 2) ||
	    (b[0] == 198 && b[1] == 51 && b[2] == 100) ||
	    (b[0] == 203 && b[1] == 0 && b[2] == 113))
		return "a documentation address";
	if (b[0] >= 224 && b[0] < 240)
		return "a multicast address";
	if (b[0] >= 240)
		return "a reserved address";
	return NULL;
}

static const char *classify16(const unsigned char a[16])
{
	static const unsigned char zero[16];
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
	static const unsigned char nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
	static const unsigned char teredo[4] = {0x20, 0x01, 0, 0};
	static const unsigned char doc6[4] = {0x20, 0x01, 0x0d, 0xb8};
	static const unsigned char metadata6[16] = {
		0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};

	if (!memcmp(a, v4mapped, 12) || !memcmp(a, nat64, 12))
		return classify4(a + 12);
	/* RFC 8215: a site's own translator, to any IPv4 it chooses */
	if (!memcmp(a, nat64_local, 6))
		return "a local-use NAT64 address";
	/* Teredo 2001::/32 (only: 2001::/16 holds ordinary networks)
	 * tunnels to an IPv4 server and client of its own choosing */
	if (!memcmp(a, teredo, 4))
		return "a Teredo address";
	if (!memcmp(a, doc6, 4) ||
	    (a[0] == 0x3f && a[1] == 0xff && !(a[2] & 0xf0)))
		return "a documentation address";
	if (a[0] == 0x20 && a[1] == 0x02) /* 6to4 */
		return classify4(a + 2);
	if (!memcmp(a, metadata6, 16))
		return "a cloud metadata address";
	if (!memcmp(a, zero, 15))
		return a[15] == 1 ? "a loopback address"
				  : "an unspecified address";
	if (!memcmp(a, zero, 12))
		return "an IPv4-compatible address";
	if ((a[0] & 0xfe) == 0xfc)
		return "a unique-local address";
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return "a link-local address";
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
		return "a site-local address";
	if (a[0] == 0xff)
		return "a multicast address";
	return NULL;
}

const char *guard_classify(const char *ip)
{
	unsigned char a[16];
	if (!ip || parse_ip(ip, a))
		return "not a numeric address";
	return classify16(a);
}

/* Split an entry's ":port" off into *port (0 when none): "a.b.c.d:p",
 * "a.b.c.d/n:p", "name:p", "[v6]:p", "[v6/n]:p". The rest goes to out.
 * 0, or -1 if it is malformed. */
static int split_port(const char *e, char *out, size_t size, int *port)
{
	const char *colon, *end = e + strlen(e);
	size_t len;

	*port = 0;
	if (*e == '[') {
		const char *close = strchr(e, ']');
		if (!close || (close[1] && close[1] != ':'))
			return -1;
		colon = close[1] ? close + 1 : NULL;
		e++;
		end = close;
	} else {
		colon = strchr(e, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* a bare IPv6 address */
		else if (colon)
			end = colon;
	}
	if (colon) {
		char *stop;
		long p = strtol(colon + 1, &stop, 10);
		if (!colon[1] || *stop || p < 1 || p > 65535)
			return -1;
		*port = (int)p;
	}
	len = (size_t)(end - e);
	if (!len || len >= size)
		return -1;
	memcpy(out, e, len);
	out[len] = '\0';
	return 0;
}

/* One allow entry into l. 0, or -1 if it is malformed. */
static int allow_add(struct allow *l, const char *entry)
{
	char e[300], ip[64];
	const char *slash;
	struct net n;
	size_t len;
	int v4, port;

	if (split_port(entry, e, sizeof(e), &port))
		return -1;
	slash = strchr(e, '/');
	len = slash ? (size_t)(slash - e) : strlen(e);
	if (len >= sizeof(ip))
		return -1;
	memcpy(ip, e, len);
	ip[len] = '\0';
	if (parse_ip(ip, n.a)) {
		size_t i;
		if (slash || *entry == '[')
			return -1;
		for (i = 0; e[i]; i++)
			if (!isalnum((unsigned char)e[i]) && e[i] != '-' &&
			    e[i] != '.')
				return -1;
		l->hosts =
			xrealloc(l->hosts, (l->nhosts + 1) * sizeof(*l->hosts));
		l->hosts[l->nhosts].name = xstrdup(e);
		l->hosts[l->nhosts++].port = port;
		return 0;
	}
	v4 = strchr(ip, ':') == NULL;
	n.port = port;
	n.bits = 128;
	if (slash) {
		char *end;
		long b = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || b < 0 || b > (v4 ? 32 : 128))
			return -1;
		n.bits = (int)b + (v4 ? 96 : 0);
	}
	l->nets = xrealloc(l->nets, (l->nnets + 1) * sizeof(*l->nets));
	l->nets[l->nnets++] = n;
	return 0;
}

static void allow_parse(struct allow *l, const char *spec, const char *key)
{
	char *copy = xstrdup(spec ? spec : ""), *tok, *save = NULL;
	for (tok = strtok_r(copy, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save))
		if (allow_add(l, tok))
			log_warn("%s: ignoring '%s' (not a CIDR, an address "
				 "or a host name)",
				 key, tok);
	free(copy);
	l->loaded = 1;
}

static void allow_release(struct allow *l)
{
	size_t i;
	for (i = 0; i < l->nhosts; i++)
		free(l->hosts[i].name);
	free(l->hosts);
	free(l->nets);
	memset(l, 0, sizeof(*l));
}

static int allow_match(const struct allow *l, const char *host, const char *ip,
		       int port)
{
	unsigned char a[16];
	size_t i;

	if (host)
		for (i = 0; i < l->nhosts; i++)
			if (!strcasecmp(l->hosts[i].name, host) &&
			    (!l->hosts[i].port || l->hosts[i].port == port))
				return 1;
	if (!ip || parse_ip(ip, a))
		return 0;
	for (i = 0; i < l->nnets; i++)
		if (in_net(a, l->nets[i].a, l->nets[i].bits) &&
		    (!l->nets[i].port || l->nets[i].port == port))
			return 1;
	return 0;
}

int guard_allowed_at(const char *spec, const char *host, const char *ip,
		     int port)
{
	struct allow l;
	int ok;

	memset(&l, 0, sizeof(l));
	allow_parse(&l, spec, "allow list");
	ok = allow_match(&l, host, ip, port);
	allow_release(&l);
	return ok;
}

int guard_allowed_by(const char *spec, const char *host, const char *ip)
{
	return guard_allowed_at(spec, host, ip, 0);
}

void guard_warn_config(void)
{
	static const char *const keys[3] = {"guard_allow_providers",
					    "guard_allow_fetch",
					    "guard_allow_mcp"};
	int k;

	for (k = 0; k < 3; k++) {
		const char *spec = config_get(keys[k], "");
		if (guard_allowed_at(spec, NULL, "127.0.0.1", 0) ||
		    guard_allowed_at(spec, NULL, "::1", 0))
			log_warn(
				"%s = %s lets every port of this host's "
				"loopback be reached on a tenant's behalf: for "
				"development only (name the address and port, "
				"e.g. 127.0.0.1:11434)",
				keys[k], spec);
	}
}

static const struct allow *scope_list(enum guard_scope s)
{
	static struct allow lists[3];
	static const char *const keys[3] = {"guard_allow_providers",
					    "guard_allow_fetch",
					    "guard_allow_mcp"};
	if (!lists[s].loaded)
		allow_parse(&lists[s], config_str(keys[s]), keys[s]);
	return &lists[s];
}

/* The host of the transfer's current URL (after redirects), or NULL;
 * caller frees with curl_free. */
static char *current_host(CURL *easy)
{
	char *url = NULL, *host = NULL;
	CURLU *u;

	if (curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK ||
	    !url)
		return NULL;
	u = curl_url();
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK)
		curl_url_get(u, CURLUPART_HOST, &host, 0);
	curl_url_cleanup(u);
	return host;
}

/* Judge the peer address ip of g's transfer: 1 allowed, 0 refused (why
 * noted in g). */
static int judge(struct guard *g, const char *ip, int port)
{
	const struct allow *l = scope_list(g->scope);
	const char *why = guard_classify(ip);
	char *host = NULL;
	int ok;

	if (!why)
		return 1;
	if (l->nhosts)
		host = current_host(g->easy);
	ok = allow_match(l, host, ip, port);
	curl_free(host);
	if (ok)
		return 1;
	g->refused = 1;
	snprintf(g->why, sizeof(g->why), "%s is %s", ip ? ip : "?", why);
	return 0;
}

/* Before a socket is opened for an address (so no packet ever goes to a
 * refused one): a refused address fails only this attempt, and libcurl
 * goes on with the name's other addresses. */
static curl_socket_t on_open(void *ud, curlsocktype purpose,
			     struct curl_sockaddr *a)
{
	struct guard *g = ud;
	char ip[INET6_ADDRSTRLEN] = "";
	int port = 0;

	(void)purpose;
	if (a->family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr,
			  ip, sizeof(ip));
		port = ntohs(((struct sockaddr_in *)&a->addr)->sin_port);
	} else if (a->family == AF_INET6) {
		inet_ntop(AF_INET6,
			  &((struct sockaddr_in6 *)&a->addr)->sin6_addr, ip,
			  sizeof(ip));
		port = ntohs(((struct sockaddr_in6 *)&a->addr)->sin6_port);
	}
	if (!judge(g, ip, port))
		return CURL_SOCKET_BAD;
	return socket(a->family, a->socktype, a->protocol);
}

/* After connecting (or picking a reused connection), before the request:
 * the address the request will actually go to. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip,
		     int primary_port, int local_port)
{
	(void)local_ip;
	(void)local_port;
	return judge(ud, primary_ip, primary_port) ? CURL_PREREQFUNC_OK
						   : CURL_PREREQFUNC_ABORT;
}

int guard_refused(const struct guard *g, CURLcode rc)
{
	return g->refused &&
	       (rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_COULDNT_CONNECT);
}

void guard_curl(struct guard *g, CURL *easy, enum guard_scope scope,
		int follow_redirects)
{
	memset(g, 0, sizeof(*g));
	g->scope = scope;
	g->easy = easy;
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, g);
	curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, on_prereq);
	curl_easy_setopt(easy, CURLOPT_PREREQDATA, g);
	curl_easy_setopt(easy, CURLOPT_PROXY, "");
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION,
			 follow_redirects ? 1L : 0L);
	curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
}

CURL *guard_get(struct guard *g, const char *url, long timeout_s,
		curl_write_callback write, void *data)
{
	CURL *easy = curl_easy_init();

	if (!easy)
		abort();
	guard_curl(g, easy, GUARD_FETCH, 1);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, data);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT,
			 timeout_s < 10 ? timeout_s : 10L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "everruns-fetch/1");
	return easy;
}
