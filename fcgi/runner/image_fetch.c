/*
 * image_fetch: `image` message parts given by url are fetched by the
 * runner before the model sees them (ARCHITECTURE 6.3: every outbound request
 * made on a user's behalf goes through the address guard), then sent to
 * the provider as base64 like any other image. The transfer runs on the
 * runner's curl multi (see turn.c: a turn waits in PH_REASON before its
 * reason.started until its url images are in), behind the guard with the
 * web_fetch allow list (guard_allow_fetch), at most 20 MiB, within
 * image_fetch_timeout_s (default 30), and must be a PNG, JPEG, GIF or
 * WebP by its bytes. A fetched image is kept on the part (in the
 * runner's history cache), so later turns do not fetch it again.
 */
#include "runner.h"
#include "config.h"
#include "imagetype.h"
#include "json.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGE_MAX_BYTES (20 * 1024 * 1024)

struct image_fetch {
	CURL *easy;
	struct guard guard;
	struct json_object *part; /* borrowed: lives in the turn's events */
	int current;              /* a part of this turn's own message */
	struct buf body;
	int too_big;
	long timeout_s;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
	struct image_fetch *f = ud;
	size_t n = size * nmemb;
	if (f->body.len + n > IMAGE_MAX_BYTES) {
		f->too_big = 1;
		return 0;
	}
	buf_add(&f->body, data, n);
	return n;
}

/* The first url image part of the turn's input messages that has no bytes
 * yet (and did not fail before), or NULL; *current: it is in this turn's
 * own message. */
static struct json_object *pending_part(struct turn *t, int *current)
{
	struct json_object *events = jx_get(t->cfg, "events");
	char tid[40];
	size_t i, j;

	snprintf(tid, sizeof(tid), "trn_%s", t->id);
	/* the leading plain_events hold no image part (history_cache.c) */
	for (i = t->plain_events; i < json_object_array_length(events); i++) {
		struct json_object *e = json_object_array_get_idx(events, i);
		struct json_object *parts =
			jx_get(jx_get(jx_get(e, "data"), "message"), "content");
		if (!jx_gets(e, "type") ||
		    strcmp(jx_gets(e, "type"), "input.message") || !parts ||
		    !json_object_is_type(parts, json_type_array))
			continue;
		for (j = 0; j < json_object_array_length(parts); j++) {
			struct json_object *p =
				json_object_array_get_idx(parts, j);
			const char *type = jx_gets(p, "type");
			if (type && !strcmp(type, "image") &&
			    jx_gets(p, "url") && !jx_gets(p, "base64") &&
			    !jx_get(p, "_unavailable")) {
				*current = jx_gets(e, "turn_id") &&
					   !strcmp(jx_gets(e, "turn_id"), tid);
				return p;
			}
		}
	}
	return NULL;
}

struct image_fetch *image_fetch_next(struct runner *r, struct turn *t)
{
	int current = 0;
	struct json_object *part = pending_part(t, &current);
	struct image_fetch *f;

	if (!part)
		return NULL;
	f = xcalloc(1, sizeof(*f));
	f->part = part;
	f->current = current;
	buf_init(&f->body, 0);
	f->timeout_s = config_int("image_fetch_timeout_s");
	f->easy = guard_get(&f->guard, jx_gets(part, "url"), f->timeout_s,
			    on_data, f);
	curl_easy_setopt(f->easy, CURLOPT_PRIVATE, t);
	curl_multi_add_handle(r->multi, f->easy);
	return f;
}

static int fetch_result(struct image_fetch *f, CURLcode rc, struct buf *why)
{
	const char *url = jx_gets(f->part, "url"), *media;
	long status = 0;
	char *b64;
	int n;

	if (guard_refused(&f->guard, rc)) {
		buf_addf(why,
			 "the image at %s was not fetched: the address guard "
			 "refused it (%s)",
			 url, f->guard.why);
		return -1;
	}
	if (f->too_big) {
		buf_addf(why, "the image at %s is larger than 20 MiB", url);
		return -1;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		buf_addf(why, "fetching the image at %s took longer than %ld s",
			 url, f->timeout_s);
		return -1;
	}
	if (rc != CURLE_OK) {
		buf_addf(why, "the image at %s could not be fetched (%s)", url,
			 curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		buf_addf(why, "the image at %s could not be fetched (HTTP %ld)",
			 url, status);
		return -1;
	}
	media = imagetype_sniff((const unsigned char *)f->body.data,
				f->body.len);
	if (!media) {
		buf_addf(why,
			 "the file at %s is not a PNG, JPEG, GIF or WebP "
			 "image",
			 url);
		return -1;
	}
	b64 = xmalloc(4 * ((f->body.len + 2) / 3) + 1);
	n = EVP_EncodeBlock((unsigned char *)b64,
			    (const unsigned char *)f->body.data,
			    (int)f->body.len);
	json_object_object_add(f->part, "base64",
			       json_object_new_string_len(b64, n));
	jx_put_str(f->part, "media_type", media);
	free(b64);
	return 0;
}

int image_fetch_done(struct runner *r, struct image_fetch *f, CURLcode rc,
		     struct buf *why)
{
	curl_multi_remove_handle(r->multi, f->easy);
	if (fetch_result(f, rc, why) == 0)
		return 0;
	if (f->current)
		return -1;
	/* an image of an earlier message: that turn already failed on it, or
	 * it was fetched by a runner that is gone; the model is told it is
	 * not available rather than the session failing forever */
	json_object_object_add(f->part, "_unavailable",
			       json_object_new_boolean(1));
	buf_reset(why);
	return 0;
}

void image_fetch_free(struct runner *r, struct image_fetch *f)
{
	if (!f)
		return;
	curl_multi_remove_handle(r->multi, f->easy);
	curl_easy_cleanup(f->easy);
	buf_release(&f->body);
	free(f);
}
