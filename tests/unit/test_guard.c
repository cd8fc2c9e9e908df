/* Unit tests of the address guard (fcgi/lib/guard.c): classification of
 * numeric addresses, including the spellings getaddrinfo turns into
 * loopback, and the allow lists. */
#include <check.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "guard.h"
#include "check_run.h"

static int refused(const char *ip)
{
	return guard_classify(ip) != NULL;
}

START_TEST(refuses_internal_ipv4)
{
	static const char *const bad[] = {
		"127.0.0.1",       "127.255.255.254", "0.0.0.0",
		"0.1.2.3",         "10.0.0.1",        "10.255.255.255",
		"172.16.0.1",      "172.31.255.255",  "192.168.1.1",
		"100.64.0.1",      "100.127.255.255", "169.254.0.1",
		"169.254.169.254", "224.0.0.1",       "239.1.1.1",
		"240.0.0.1",       "255.255.255.255", "192.0.0.170",
		"198.18.0.1",
	};
	size_t i;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(refused(bad[i]), "%s should be refused", bad[i]);
	ck_assert_str_eq(guard_classify("169.254.169.254"),
			 "a cloud metadata address");
	ck_assert_str_eq(guard_classify("127.0.0.1"), "a loopback address");
	ck_assert_str_eq(guard_classify("10.1.2.3"), "a private address");
}
END_TEST

START_TEST(allows_public_ipv4_next_to_the_edges)
{
	static const char *const good[] = {
		"8.8.8.8",         "1.1.1.1",        "172.15.255.255",
		"172.32.0.1",      "100.63.255.255", "100.128.0.1",
		"169.253.255.255", "192.167.1.1",    "11.0.0.1",
		"126.255.255.255", "128.0.0.1",      "223.255.255.255",
		"198.20.0.1",
	};
	size_t i;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(!refused(good[i]), "%s should pass", good[i]);
}
END_TEST

START_TEST(refuses_internal_ipv6_and_embedded_ipv4)
{
	static const char *const bad[] = {
		"::1",
		"::",
		"::ffff:127.0.0.1",
		"::ffff:7f00:1",
		"::ffff:10.0.0.1",
		"::ffff:169.254.169.254",
		"::127.0.0.1",
		"::8.8.8.8",
		"fc00::1",
		"fd00::1",
		"fd00:ec2::254",
		"fe80::1",
		"febf::1",
		"fec0::1",
		"ff02::1",
		"64:ff9b::7f00:1",
		"64:ff9b::a00:1",
		"2002:7f00:1::1",
		"2002:a9fe:a9fe::",
	};
	size_t i;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(refused(bad[i]), "%s should be refused", bad[i]);
	ck_assert_str_eq(guard_classify("fd00:ec2::254"),
			 "a cloud metadata address");
	ck_assert_str_eq(guard_classify("::ffff:127.0.0.1"),
			 "a loopback address");
	ck_assert(!refused("2001:4860:4860::8888"));
	ck_assert(!refused("2606:4700::1111"));
	ck_assert(!refused("::ffff:8.8.8.8"));
	ck_assert(!refused("64:ff9b::808:808"));
	ck_assert(!refused("2002:808:808::1"));
}
END_TEST

START_TEST(refuses_what_is_not_numeric)
{
	ck_assert(refused(NULL));
	ck_assert(refused(""));
	ck_assert(refused("localhost"));
	ck_assert(refused("127.1"));
	ck_assert(refused("fe80::1%eth0"));
}
END_TEST

/* What a URL's host becomes after the resolver: getaddrinfo (inet_aton)
 * accepts decimal, octal, hex and short IPv4 forms; every one that names
 * loopback or the metadata address is refused on its resolved address. */
START_TEST(resolved_spellings_are_refused)
{
	static const char *const forms[] = {
		"2130706433", "0177.0.0.1", "0x7f.0.0.1",   "0x7f000001",
		"127.1",      "0177.1",     "017700000001", "2852039166",
		"0xa9fea9fe", "0",          "localhost",    "::ffff:127.0.0.1",
		"::1",
	};
	size_t i;
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct addrinfo hints, *res = NULL, *p;
		char ip[INET6_ADDRSTRLEN];
		int n = 0;
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		ck_assert_msg(getaddrinfo(forms[i], "80", &hints, &res) == 0,
			      "%s does not resolve", forms[i]);
		for (p = res; p; p = p->ai_next) {
			const void *a =
				p->ai_family == AF_INET
					? (const void *)&((struct sockaddr_in *)
								  p->ai_addr)
						  ->sin_addr
					: (const void *)&(
						  (struct sockaddr_in6 *)
							  p->ai_addr)
						  ->sin6_addr;
			ck_assert(inet_ntop(p->ai_family, a, ip, sizeof(ip)));
			ck_assert_msg(refused(ip), "%s -> %s passed", forms[i],
				      ip);
			n++;
		}
		ck_assert_int_gt(n, 0);
		freeaddrinfo(res);
	}
}
END_TEST

START_TEST(allow_lists)
{
	const char *spec = "127.0.0.0/8, fd12::/16 10.1.2.3 llm.internal";
	ck_assert(guard_allowed_by(spec, NULL, "127.0.0.1"));
	ck_assert(guard_allowed_by(spec, NULL, "127.200.0.9"));
	ck_assert(guard_allowed_by(spec, NULL, "::ffff:127.0.0.1"));
	ck_assert(!guard_allowed_by(spec, NULL, "128.0.0.1"));
	ck_assert(!guard_allowed_by(spec, NULL, "::1"));
	ck_assert(guard_allowed_by(spec, NULL, "fd12:3::1"));
	ck_assert(!guard_allowed_by(spec, NULL, "fd13::1"));
	ck_assert(guard_allowed_by(spec, NULL, "10.1.2.3"));
	ck_assert(!guard_allowed_by(spec, NULL, "10.1.2.4"));
	ck_assert(guard_allowed_by(spec, "LLM.internal", "10.9.9.9"));
	ck_assert(!guard_allowed_by(spec, "other.internal", "10.9.9.9"));
	/* odd prefix lengths and bad entries */
	ck_assert(guard_allowed_by("172.16.0.0/12", NULL, "172.31.0.1"));
	ck_assert(!guard_allowed_by("172.16.0.0/12", NULL, "172.32.0.1"));
	ck_assert(guard_allowed_by("127.0.0.2/32", NULL, "127.0.0.2"));
	ck_assert(!guard_allowed_by("127.0.0.2/32", NULL, "127.0.0.1"));
	ck_assert(!guard_allowed_by("127.0.0.0/33 ::1/129 bad/name", NULL,
				    "127.0.0.1"));
	ck_assert(!guard_allowed_by("", "localhost", "127.0.0.1"));
	ck_assert(guard_allowed_by("0.0.0.0/0", NULL, "10.0.0.1"));
}
END_TEST

START_TEST(refuses_tunnels_and_documentation_ranges)
{
	static const char *const bad[] = {
		"64:ff9b:1::1",     "64:ff9b:1:ffff:ffff::8.8.8.8",
		"2001::1",          "2001:0:4136:e378:8000:63bf:3fff:fdd2",
		"2001:0:ffff::1",   "2001:db8::1",
		"2001:db8:ffff::1", "3fff::1",
		"3fff:fff:ffff::1", "3fff:0fff::1",
		"192.0.2.1",        "192.0.2.255",
		"198.51.100.7",     "203.0.113.200",
		"::ffff:192.0.2.1", "64:ff9b::203.0.113.5",
	};
	/* the neighbours of those ranges are ordinary networks */
	static const char *const good[] = {
		"2001:1::1",    "2001:4860:4860::8888",
		"2001:db9::1",  "2001:db7::1",
		"2001:200::1",  "3ffe::1",
		"3fff:1000::1", "4000::1",
		"64:ff9b:2::1", "64:ff9b::8.8.8.8",
		"192.0.3.1",    "198.51.101.1",
		"198.51.99.1",  "203.0.112.1",
		"203.0.114.1",  "2606:4700::1111",
	};
	size_t i;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(refused(bad[i]), "%s should be refused", bad[i]);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(!refused(good[i]), "%s should pass (%s)", good[i],
			      guard_classify(good[i]));
	ck_assert_str_eq(guard_classify("2001::1"), "a Teredo address");
	ck_assert_str_eq(guard_classify("64:ff9b:1::1"),
			 "a local-use NAT64 address");
	ck_assert_str_eq(guard_classify("2001:db8::1"),
			 "a documentation address");
	ck_assert_str_eq(guard_classify("203.0.113.9"),
			 "a documentation address");
}
END_TEST

START_TEST(allow_lists_with_ports)
{
	const char *spec = "127.0.0.1:8089 [::1]:8089 10.0.0.0/8:443 "
			   "[fd12::/16]:80 llm.internal:8080";
	ck_assert(guard_allowed_at(spec, NULL, "127.0.0.1", 8089));
	ck_assert(!guard_allowed_at(spec, NULL, "127.0.0.1", 5432));
	ck_assert(!guard_allowed_at(spec, NULL, "127.0.0.1", 0));
	ck_assert(!guard_allowed_at(spec, NULL, "127.0.0.2", 8089));
	ck_assert(guard_allowed_at(spec, NULL, "::ffff:127.0.0.1", 8089));
	ck_assert(guard_allowed_at(spec, NULL, "::1", 8089));
	ck_assert(!guard_allowed_at(spec, NULL, "::1", 22));
	ck_assert(guard_allowed_at(spec, NULL, "10.9.8.7", 443));
	ck_assert(!guard_allowed_at(spec, NULL, "10.9.8.7", 80));
	ck_assert(guard_allowed_at(spec, NULL, "fd12:1::5", 80));
	ck_assert(!guard_allowed_at(spec, NULL, "fd12:1::5", 81));
	ck_assert(guard_allowed_at(spec, "llm.internal", "10.1.1.1", 8080));
	ck_assert(!guard_allowed_at(spec, "llm.internal", "10.1.1.1", 8081));
	/* port-less entries match any port */
	ck_assert(guard_allowed_at("127.0.0.0/8", NULL, "127.0.0.1", 5432));
	/* malformed ports are ignored entries */
	ck_assert(!guard_allowed_at("127.0.0.1:0 127.0.0.1:70000 "
				    "127.0.0.1: [::1 [::1]x",
				    NULL, "127.0.0.1", 70000 & 0xffff));
	ck_assert(!guard_allowed_at("[::1]:", NULL, "::1", 1));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("guard");
	TCase *tc = tcase_create("guard");

	tcase_add_test(tc, refuses_internal_ipv4);
	tcase_add_test(tc, allows_public_ipv4_next_to_the_edges);
	tcase_add_test(tc, refuses_internal_ipv6_and_embedded_ipv4);
	tcase_add_test(tc, refuses_what_is_not_numeric);
	tcase_add_test(tc, resolved_spellings_are_refused);
	tcase_add_test(tc, allow_lists);
	tcase_add_test(tc, refuses_tunnels_and_documentation_ranges);
	tcase_add_test(tc, allow_lists_with_ports);
	suite_add_tcase(s, tc);
	return check_run(s);
}
