/*
 * web_fetch: fetch_url(url, max_bytes?) of the web_fetch capability
 * (ARCHITECTURE 6.2), as a transfer on the runner's curl multi (see tools.h).
 *
 * A GET behind the address guard (every connection, after every redirect,
 * proxy variables ignored, http and https only, at most 5 redirects).
 * Result: {"url" (after redirects), "status", "content_type", "content"
 * (text; HTML reduced to text), "truncated", "size_bytes" (bytes
 * received)}. A refused address, a timeout, a non-2xx status, too many
 * redirects or a body that is not text are errors for the model, never a
 * failed turn.
 */
#define _GNU_SOURCE /* strcasestr */
#include "tools_internal.h"
#include "config.h"
#include "guard.h"
#include "json.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FETCH_DOWNLOAD_CAP (40L * 1024 * 1024)

struct web_fetch {
	CURL *easy;
	struct guard guard;
	char *url;
	struct buf body;
	size_t max_text, max_download;
	long timeout_s;
	int capped; /* the download limit was reached */
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
	struct web_fetch *f = ud;
	size_t n = size * nmemb, room = f->max_download - f->body.len;

	if (n > room) {
		buf_add(&f->body, data, room);
		f->capped = 1;
		return 0; /* ends the transfer (CURLE_WRITE_ERROR) */
	}
	buf_add(&f->body, data, n);
	return n;
}

/* A config integer (capability config first, then the server key). */
static long limit(struct json_object *config, const char *key,
		  const char *server_key)
{
	struct json_object *v = jx_get(config, key);
	if (v && json_object_is_type(v, json_type_int))
		return (long)json_object_get_int64(v);
	return config_int(server_key);
}

struct web_fetch *web_fetch_new(struct json_object *args,
				struct json_object *config, struct buf *error)
{
	struct web_fetch *f;
	const char *url;
	struct json_object *mb;
	char *scheme = NULL;
	CURLU *u;
	long max_bytes;

	if (tools_check_args("fetch_url", args, error))
		return NULL;
	url = jx_gets(args, "url");
	u = curl_url();
	if (!u)
		abort();
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))) {
		curl_free(scheme);
		curl_url_cleanup(u);
		tools_fail(error, "url must be an absolute http:// or https:// "
				  "URL.");
		return NULL;
	}
	curl_free(scheme);
	curl_url_cleanup(u);

	f = xcalloc(1, sizeof(*f));
	f->url = xstrdup(url);
	buf_init(&f->body, 0);
	max_bytes = limit(config, "max_bytes", "fetch_max_bytes");
	if (max_bytes < 1)
		max_bytes = 1;
	mb = jx_get(args, "max_bytes");
	if (mb && json_object_get_int64(mb) < max_bytes)
		max_bytes = (long)json_object_get_int64(mb);
	f->max_text = (size_t)max_bytes;
	f->max_download =
		(size_t)(max_bytes > FETCH_DOWNLOAD_CAP / 4 ? FETCH_DOWNLOAD_CAP
							    : max_bytes * 4);
	f->timeout_s = limit(config, "timeout_s", "fetch_timeout_s");
	if (f->timeout_s < 1)
		f->timeout_s = 1;

	f->easy = guard_get(&f->guard, f->url, f->timeout_s, on_data, f);
	curl_easy_setopt(f->easy, CURLOPT_ACCEPT_ENCODING, "");
	return f;
}

CURL *web_fetch_easy(struct web_fetch *f)
{
	return f->easy;
}

/* Is a body of this Content-Type text we return? */
static int textual(const char *ct, int *html)
{
	*html = 0;
	if (!ct || !*ct)
		return 1; /* judged by the bytes */
	if (!strncasecmp(ct, "text/html", 9) ||
	    !strncasecmp(ct, "application/xhtml+xml", 21)) {
		*html = 1;
		return 1;
	}
	if (!strncasecmp(ct, "text/", 5))
		return 1;
	return strcasestr(ct, "json") || strcasestr(ct, "xml") ||
	       strcasestr(ct, "javascript") || strcasestr(ct, "yaml") ||
	       strcasestr(ct, "csv");
}

/* Without a Content-Type: text unless it has NUL bytes in its start. */
static int looks_binary(const struct buf *b)
{
	size_t n = b->len < 4096 ? b->len : 4096;
	return memchr(b->data, '\0', n) != NULL;
}

static int looks_html(const struct buf *b)
{
	size_t i = 0, left;
	while (i < b->len && (b->data[i] == ' ' || b->data[i] == '\n' ||
			      b->data[i] == '\r' || b->data[i] == '\t'))
		i++;
	left = b->len - i;
	return (left >= 14 &&
		!strncasecmp(b->data + i, "<!doctype html", 14)) ||
	       (left >= 5 && !strncasecmp(b->data + i, "<html", 5));
}

/* Append s (from the network) as a JSON string of valid UTF-8. */
static void add_clean_str(struct buf *b, const char *s)
{
	struct buf t = BUF_INIT;
	text_clean(s, strlen(s), &t);
	buf_add_json_str(b, t.data, t.len);
	buf_release(&t);
}

enum tool_status web_fetch_done(struct web_fetch *f, CURLcode rc,
				struct buf *result, struct buf *error)
{
	long status = 0;
	char *ct = NULL, *eff = NULL;
	struct buf text = BUF_INIT;
	int html = 0, truncated = f->capped;

	if (guard_refused(&f->guard, rc))
		return tools_fail(error,
				  "The address guard refused to fetch %s: "
				  "%s (local, private and metadata addresses "
				  "cannot be fetched).",
				  f->url, f->guard.why);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return tools_fail(error,
				  "Fetching %s took longer than the "
				  "limit of %ld s.",
				  f->url, f->timeout_s);
	if (rc == CURLE_TOO_MANY_REDIRECTS)
		return tools_fail(error, "Fetching %s: more than 5 redirects.",
				  f->url);
	if (rc == CURLE_UNSUPPORTED_PROTOCOL)
		return tools_fail(error,
				  "Fetching %s: a redirect to a scheme "
				  "other than http or https.",
				  f->url);
	if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && f->capped))
		return tools_fail(error, "Fetching %s failed: %s.", f->url,
				  curl_easy_strerror(rc));
	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(f->easy, CURLINFO_CONTENT_TYPE, &ct);
	curl_easy_getinfo(f->easy, CURLINFO_EFFECTIVE_URL, &eff);
	if (status < 200 || status > 299)
		return tools_fail(error,
				  "Fetching %s: the server answered HTTP "
				  "%ld.",
				  f->url, status);
	if (!textual(ct, &html) || ((!ct || !*ct) && looks_binary(&f->body)))
		return tools_fail(error,
				  "%s is not text (Content-Type %s); "
				  "only text is returned.",
				  f->url, ct && *ct ? ct : "unknown");
	if (!ct || !*ct)
		html = looks_html(&f->body);

	buf_init(&text, f->body.len / (html ? 2 : 1) + 16);
	if (html)
		html_to_text(f->body.data, f->body.len, &text);
	else
		text_clean(f->body.data, f->body.len, &text);
	if (text.len > f->max_text) {
		size_t n = utf8_cut(text.data, text.len, f->max_text);
		text.len = n;
		text.data[n] = '\0';
		truncated = 1;
	}
	buf_adds(result, "{\"url\":");
	add_clean_str(result, eff ? eff : f->url);
	buf_addf(result, ",\"status\":%ld,\"content_type\":", status);
	if (ct)
		add_clean_str(result, ct);
	else
		buf_adds(result, "null");
	buf_adds(result, ",\"content\":");
	buf_add_json_str(result, text.data, text.len);
	buf_addf(result, ",\"truncated\":%s,\"size_bytes\":%zu}",
		 truncated ? "true" : "false", f->body.len);
	buf_release(&text);
	return TOOL_OK;
}

void web_fetch_free(struct web_fetch *f)
{
	if (!f)
		return;
	if (f->easy)
		curl_easy_cleanup(f->easy);
	buf_release(&f->body);
	free(f->url);
	free(f);
}
