/* Unit tests of the api program's router: matching, captures, 404 vs 405
 * with Allow, malformed escapes; and the route table against the OpenAPI
 * document in static/openapi.json (both directions). */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "check_run.h"

static struct arena arena;
static struct req rq;
static struct buf allow;

static const struct route *route(const char *method, const char *path, int *bad)
{
	req_release(&rq);
	arena_reset(&arena);
	req_init(&rq, &arena);
	rq.method = method;
	rq.path = path;
	buf_reset(&allow);
	return router_match(&rq, &allow, bad);
}

START_TEST(matches_and_captures)
{
	int bad;
	const struct route *r;

	r = route("GET", "/api/v1/sessions", &bad);
	ck_assert_ptr_nonnull(r);
	ck_assert(r->fn == h_sessions_list);
	r = route("POST", "/api/v1/sessions/chat", &bad);
	ck_assert(r && r->fn == h_sessions_chat);
	r = route("GET", "/api/v1/sessions/ses_abc", &bad);
	ck_assert(r && r->fn == h_sessions_get);
	ck_assert_uint_eq(rq.ncap, 1);
	ck_assert_str_eq(rq.cap[0], "ses_abc");
	r = route("GET", "/api/v1/llm-providers/prv_1/models", &bad);
	ck_assert(r && r->fn == h_provider_models_list);
	ck_assert_str_eq(rq.cap[0], "prv_1");
	r = route("GET", "/api/v1/agents/my%20agent", &bad);
	ck_assert(r && r->fn == h_agents_get);
	ck_assert_str_eq(rq.cap[0], "my agent");
	r = route("HEAD", "/health", &bad);
	ck_assert(r && r->fn == h_health);
}
END_TEST

START_TEST(not_found_and_method_not_allowed)
{
	int bad;
	ck_assert_ptr_null(route("GET", "/api/v1/nope", &bad));
	ck_assert_uint_eq(allow.len, 0);
	ck_assert_ptr_null(route("GET", "/api/v1/sessions/", &bad));
	ck_assert_ptr_null(route("GET", "/api/v1/sessions/x/y/z", &bad));
	ck_assert_ptr_null(route("PUT", "/api/v1/sessions", &bad));
	ck_assert_str_eq(allow.data, "GET, POST");
	ck_assert_ptr_null(route("POST", "/api/v1/sessions/ses_x", &bad));
	ck_assert_str_eq(allow.data, "GET, PATCH, DELETE");
	ck_assert_ptr_null(route("GET", "/api/v1/agents/%zz", &bad));
	ck_assert_int_eq(bad, 1);
	char name[64];
	router_cap_name(rq.cap[0], 0, name, sizeof(name));
	ck_assert_str_eq(name, "agent_id_or_name");
	ck_assert_ptr_null(route("GET", "/api/v1/agents/a%00b", &bad));
	ck_assert_int_eq(bad, 1);
}
END_TEST

/* The router's patterns and the document's paths use the same
 * parameter names; a rest-of-path "{path*}" is "{path}" in OpenAPI. */
static void normalize(const char *in, char *out, size_t n)
{
	size_t j = 0;
	for (; *in && j + 1 < n; in++)
		if (*in != '*')
			out[j++] = *in;
	out[j] = '\0';
}

START_TEST(openapi_lists_every_route)
{
	char path[4096], norm[512], m[16];
	const char *src = getenv("EVR_SRCDIR");
	struct json_object *doc, *paths;
	size_t n, i, j, found;
	const struct route *t = router_table(&n);

	snprintf(path, sizeof(path), "%s/static/openapi.json", src ? src : ".");
	doc = json_object_from_file(path);
	ck_assert_msg(doc != NULL, "cannot read %s", path);
	ck_assert(json_object_object_get_ex(doc, "paths", &paths));

	/* every route is documented */
	for (i = 0; i < n; i++) {
		found = 0;
		json_object_object_foreach(paths, p, ops)
		{
			char pat[512];
			normalize(p, norm, sizeof(norm));
			normalize(t[i].pattern, pat, sizeof(pat));
			if (strcmp(norm, pat))
				continue;
			for (j = 0; t[i].method[j] && j < sizeof(m) - 1; j++)
				m[j] = (char)(t[i].method[j] | 0x20);
			m[j] = '\0';
			struct json_object *op, *xr;
			found = json_object_object_get_ex(ops, m, &op);
			/* the role the document states is the router's */
			ck_assert_msg(
				found &&
					json_object_object_get_ex(op, "x-role",
								  &xr) &&
					!strcmp(json_object_get_string(xr),
						router_role_name(t[i].role)),
				"openapi.json: %s %s needs x-role \"%s\"",
				t[i].method, t[i].pattern,
				router_role_name(t[i].role));
		}
		ck_assert_msg(found, "route %s %s missing from openapi.json",
			      t[i].method, t[i].pattern);
	}
	/* every documented operation is a route (the static document may
	 * also list routes nginx answers itself: marked x-served-by) */
	json_object_object_foreach(paths, p, ops)
	{
		normalize(p, norm, sizeof(norm));
		json_object_object_foreach(ops, op, def)
		{
			struct json_object *by;
			if (!strcmp(op, "parameters"))
				continue;
			if (json_object_object_get_ex(def, "x-served-by", &by))
				continue;
			found = 0;
			for (i = 0; i < n; i++) {
				char pat[512];
				normalize(t[i].pattern, pat, sizeof(pat));
				if (strcmp(norm, pat))
					continue;
				for (j = 0; t[i].method[j] && j < sizeof(m) - 1;
				     j++)
					m[j] = (char)(t[i].method[j] | 0x20);
				m[j] = '\0';
				if (!strcmp(m, op))
					found = 1;
			}
			ck_assert_msg(
				found,
				"openapi.json lists %s %s, the router does not",
				op, p);
		}
	}
	json_object_put(doc);
}
END_TEST

/* A route added without an access rule is refused to every key; this
 * makes it fail the build's tests first. */
START_TEST(every_route_has_a_role)
{
	size_t n, i;
	const struct route *t = router_table(&n);
	for (i = 0; i < n; i++) {
		ck_assert_msg(t[i].role != R_UNSET, "route %s %s has no role",
			      t[i].method, t[i].pattern);
		ck_assert_msg((t[i].role == R_PUBLIC) ==
				      !!(t[i].flags & ROUTE_NOAUTH),
			      "route %s %s: R_PUBLIC goes with ROUTE_NOAUTH",
			      t[i].method, t[i].pattern);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("router");
	int status;

	req_init(&rq, &arena);
	buf_init(&allow, 0);
	tcase_add_test(tc, matches_and_captures);
	tcase_add_test(tc, not_found_and_method_not_allowed);
	tcase_add_test(tc, openapi_lists_every_route);
	tcase_add_test(tc, every_route_has_a_role);
	suite_add_tcase(s, tc);
	status = check_run(s);
	req_release(&rq);
	buf_release(&allow);
	arena_release(&arena);
	return status;
}
