/*
 * guard: the address guard of every outbound request the server makes on
 * a user's behalf (ARCHITECTURE 6.3): provider base_urls, web_fetch, image
 * parts given by url.
 *
 * The decision is taken on the address a connection actually uses: libcurl
 * calls our CURLOPT_OPENSOCKETFUNCTION with each address it is about to
 * connect to (a refused one gets no packet at all; the name's other
 * addresses are still tried), and our CURLOPT_PREREQFUNCTION after it
 * connected (or picked a reused connection) and before it sends the
 * request, for the first request and for every redirect, with the peer's
 * numeric address. So a name that
 * resolves to loopback, a DNS answer that changes between two lookups,
 * decimal/octal/hex IPv4 spellings, IPv4-mapped IPv6 forms and redirects
 * to internal hosts are all judged on the same final address.
 *
 * Refused unless allowed: loopback, "this network" 0/8 and ::, private
 * (10/8, 172.16/12, 192.168/16), shared CGNAT 100.64/10, link-local
 * (169.254/16, fe80::/10), unique-local fc00::/7, site-local fec0::/10,
 * multicast, reserved 240/4 and broadcast, IETF/benchmark ranges
 * (192.0.0/24, 198.18/15), documentation ranges (192.0.2/24,
 * 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20), the
 * IPv4-compatible ::/96, local-use NAT64 64:ff9b:1::/48 and Teredo
 * 2001::/32 (both reach IPv4 hosts of their own choosing), and IPv4
 * embedded in ::ffff:0:0/96, 64:ff9b::/96 (NAT64) or 2002::/16 (6to4) when
 * the IPv4 address is refused; cloud metadata addresses (169.254.169.254,
 * fd00:ec2::254) are named as such.
 *
 * Allow lists: config keys guard_allow_providers, guard_allow_fetch and
 * guard_allow_mcp (the runner's MCP client), each a
 * comma- or blank-separated list of CIDRs (10.1.0.0/16, fd12::/64), single
 * addresses, or host names (matched exactly, ignoring case, against the
 * host of the request's URL), each optionally with a port that the
 * connection must use too: 127.0.0.1:11434, 10.0.0.0/8:443,
 * [::1]:11434, [fd12::/64]:80, llm.internal:8080. An IPv4 entry also
 * matches the IPv4-mapped IPv6 form of its addresses. The lists are
 * parsed on first use and kept for the process's life (config is
 * read-only after start); a bad entry is logged and ignored.
 *
 * Not thread-safe on first use of a scope (the runner is single-threaded).
 */
#ifndef EVR_GUARD_H
#define EVR_GUARD_H

#include <curl/curl.h>
#include <stddef.h>

enum guard_scope { GUARD_PROVIDERS, GUARD_FETCH, GUARD_MCP };

/* What is wrong with a numeric address ("loopback", "private", "cloud
 * metadata", ...), or NULL when it is a public address. Anything that is
 * not a numeric IPv4 or IPv6 address is "not a numeric address". */
const char *guard_classify(const char *ip);

/* Is `ip` (numeric) or `host` (the URL's host name, may be NULL) allowed
 * by the allow list `spec` (the config value's syntax)? 1 or 0. Exposed
 * for tests; the hook uses the lists of the config keys. */
int guard_allowed_by(const char *spec, const char *host, const char *ip);
/* The same for a connection to port (an entry with a port matches only
 * it; guard_allowed_by passes 0, which only port-less entries match). */
int guard_allowed_at(const char *spec, const char *host, const char *ip,
		     int port);
/* Log a warning for each allow list that lets every port of loopback be
 * reached (a development setting); programs call it once at start. */
void guard_warn_config(void);

/* The state of one guarded transfer. Owned by the caller, who keeps it
 * alive as long as the easy handle. */
struct guard {
	enum guard_scope scope;
	CURL *easy;
	int refused;   /* an address was refused */
	char why[160]; /* "127.0.0.1 is a loopback address" */
};

/* Did the transfer that ended with rc fail because the guard refused
 * its address (then g->why says why)? */
int guard_refused(const struct guard *g, CURLcode rc);

/* Guard `easy`: the socket and prereq hooks, CURLOPT_PROXY "" (proxy
 * environment variables are ignored), protocols http and https only. With
 * follow_redirects, at most 5 redirects, to http(s) only, each judged by
 * the hooks. A refusal ends the transfer with CURLE_COULDNT_CONNECT or
 * CURLE_ABORTED_BY_CALLBACK: see guard_refused(). */
void guard_curl(struct guard *g, CURL *easy, enum guard_scope scope,
		int follow_redirects);

/* A new easy handle (caller cleans up) for a GET of url made on a user's
 * behalf: guarded with scope GUARD_FETCH and redirects followed, the body
 * to write(data), the whole transfer within timeout_s. */
CURL *guard_get(struct guard *g, const char *url, long timeout_s,
		curl_write_callback write, void *data);

#endif
