/*
 * http: plain request/response calls to the API with one reused libcurl
 * handle (keep-alive across the calls of a command), and the error
 * report of a refused call: the server's own sentence and code.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "dev"
#endif

void resp_release(struct resp *r)
{
	buf_release(&r->body);
	if (r->json)
		json_object_put(r->json);
	memset(r, 0, sizeof(*r));
}

char *http_url(struct cli *c, const char *path)
{
	struct buf b = BUF_INIT;

	buf_init(&b, strlen(c->api_url) + strlen(path) + 8);
	buf_addf(&b, "%s/api/v1%s", c->api_url, path);
	return buf_detach(&b, NULL);
}

void http_path_add(struct buf *b, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch) ||
		    (keep_slash && ch == '/')) {
			buf_addch(b, (char)ch);
		} else {
			buf_addch(b, '%');
			buf_addch(b, hex[ch >> 4]);
			buf_addch(b, hex[ch & 15]);
		}
	}
}

void http_query_add(struct buf *b, const char *k, const char *v)
{
	if (!v)
		return;
	buf_addch(b, strchr(b->data, '?') ? '&' : '?');
	http_path_add(b, k, 0);
	buf_addch(b, '=');
	http_path_add(b, v, 0);
}

struct curl_slist *http_setup(struct cli *c, CURL *h, const char *url,
			      struct curl_slist *extra)
{
	struct curl_slist *hd = extra;
	struct buf auth = BUF_INIT;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "everruns-cli/" PACKAGE_VERSION);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	/* a session path with ".." goes to the server (which refuses it),
	 * not resolved away by libcurl into another file */
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS,
			 CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
	if (c->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->cacert)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
	if (c->verbose)
		curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	if (c->api_key) {
		buf_init(&auth, 80);
		buf_addf(&auth, "Authorization: Bearer %s", c->api_key);
		hd = curl_slist_append(hd, auth.data);
		buf_release(&auth);
	}
	return hd;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	buf_add(ud, p, sz * n);
	return sz * n;
}

void http_print_error(const struct resp *r)
{
	const char *msg = r->json ? jx_gets(r->json, "error") : NULL;
	const char *code = r->json ? jx_gets(r->json, "code") : NULL;

	if (msg)
		fprintf(stderr, "everruns: %s (HTTP %ld%s%s)\n", msg, r->status,
			code ? ", " : "", code ? code : "");
	else
		fprintf(stderr, "everruns: the server answered HTTP %ld\n",
			r->status);
}

/* Perform a request prepared on c->curl; fills r and reports. */
static int perform(struct cli *c, const char *method, const char *path,
		   struct curl_slist *hd, struct resp *r)
{
	char *url = http_url(c, path);
	char err[CURL_ERROR_SIZE] = "";
	struct apierr e;
	CURLcode rc;
	int ret = CLI_OK;

	memset(r, 0, sizeof(*r));
	buf_init(&r->body, 256);
	hd = curl_slist_append(hd, "Accept: application/json");
	hd = http_setup(c, c->curl, url, hd);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "GET"))
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, err);
	/* a stalled server does not hang a command forever */
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, 120L);
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		fprintf(stderr, "everruns: %s %s: %s\n", method, url,
			*err ? err : curl_easy_strerror(rc));
		ret = CLI_API;
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body.len)
		r->json = jx_parse_depth(r->body.data, r->body.len,
					 CLI_JSON_DEPTH, &e);
	if (r->status < 200 || r->status > 299) {
		http_print_error(r);
		ret = CLI_API;
	}
out:
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(hd);
	free(url);
	return ret;
}

static void reset(struct cli *c)
{
	if (!c->curl)
		c->curl = curl_easy_init();
	if (!c->curl) {
		fprintf(stderr, "everruns: cannot initialize libcurl\n");
		exit(CLI_API);
	}
	curl_easy_reset(c->curl);
}

int http_raw(struct cli *c, const char *method, const char *path,
	     const char *ctype, const void *data, size_t len, struct resp *r)
{
	struct curl_slist *hd = NULL;
	struct buf h = BUF_INIT;

	reset(c);
	if (ctype) {
		buf_init(&h, 64);
		buf_addf(&h, "Content-Type: %s", ctype);
		hd = curl_slist_append(hd, h.data);
		/* no 100-continue round trip before large bodies */
		hd = curl_slist_append(hd, "Expect:");
		buf_release(&h);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, data ? data : "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
	} else if (strcmp(method, "GET") && strcmp(method, "DELETE")) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)0);
	}
	return perform(c, method, path, hd, r);
}

int http_json(struct cli *c, const char *method, const char *path,
	      struct json_object *body, struct resp *r)
{
	const char *s;

	if (!body)
		return http_raw(c, method, path, NULL, NULL, 0, r);
	s = json_object_to_json_string_ext(
		body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	return http_raw(c, method, path, "application/json", s, strlen(s), r);
}

curl_mime *http_mime_new(struct cli *c)
{
	reset(c);
	return curl_mime_init(c->curl);
}

int http_mime(struct cli *c, const char *path, curl_mime *mime, struct resp *r)
{
	curl_easy_setopt(c->curl, CURLOPT_MIMEPOST, mime);
	return perform(c, "POST", path, NULL, r);
}
