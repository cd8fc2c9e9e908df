/*
 * messages: POST /sessions/{id}/messages starts a turn (DESIGN 4.4: one
 * transaction: idempotency key, the idle->active switch that decides
 * session_busy, the input.message and session.activated events, the queued
 * turn, the wake-ups); GET lists the conversation from the event log.
 */
#include "api.h"
#include "ids.h"
#include "json.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT (512 * 1024)
#define MAX_PARTS 64

static const char *const image_types[] = {"image/png", "image/jpeg",
					  "image/gif", "image/webp"};

static int image_type_ok(const char *t)
{
	size_t i;
	for (i = 0; i < sizeof(image_types) / sizeof(image_types[0]); i++)
		if (!strcmp(t, image_types[i]))
			return 1;
	return 0;
}

/* Does decoded image data start with the magic bytes of its media type? */
static int magic_ok(const char *type, const unsigned char *d, size_t n)
{
	if (!strcmp(type, "image/png"))
		return n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8);
	if (!strcmp(type, "image/jpeg"))
		return n >= 3 && !memcmp(d, "\xff\xd8\xff", 3);
	if (!strcmp(type, "image/gif"))
		return n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6));
	if (!strcmp(type, "image/webp"))
		return n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4);
	return 0;
}

static int check_base64_image(const char *b64, size_t len, const char *type,
			      const char *field, struct apierr *e)
{
	unsigned char head[48];
	char chunk[64];
	size_t i, take = len < 64 ? len : 64;
	int n;

	if (len == 0 || len % 4)
		return apierr_set(e, 400, "validation_error",
				  "%s.base64: not valid base64", field);
	for (i = 0; i < len; i++) {
		char c = b64[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '/' ||
		      (c == '=' && i >= len - 2)))
			return apierr_set(e, 400, "validation_error",
					  "%s.base64: not valid base64", field);
	}
	take -= take % 4;
	memcpy(chunk, b64, take);
	n = EVP_DecodeBlock(head, (const unsigned char *)chunk, (int)take);
	if (n < 0 || !magic_ok(type, head, (size_t)n))
		return apierr_set(e, 400, "validation_error",
				  "%s.base64: the data is not a %s image", field,
				  type);
	return 0;
}

/* Validate one content part and append its normalized form to out. */
/* image ids of image_file parts, as a PostgreSQL uuid[] literal body */
struct image_refs {
	struct buf list;
	size_t n;
};

static int read_part(struct json_object *part, size_t i, struct buf *out,
		     struct image_refs *imgs, struct apierr *e)
{
	char field[64], hex[33];
	const char *type = NULL, *s = NULL, *media = NULL, *fname = NULL;

	snprintf(field, sizeof(field), "message.content[%zu]", i);
	if (!json_object_is_type(part, json_type_object))
		return apierr_field(e, field, "must be an object");
	if (jx_get_str(part, "type", 32, &type, e) < 0)
		return -1;
	if (!type)
		return apierr_set(e, 400, "validation_error",
				  "%s.type: required", field);
	if (!strcmp(type, "text")) {
		if (jx_get_str(part, "text", MAX_TEXT, &s, e) < 0)
			return apierr_set(e, 400, "validation_error",
					  "%s.text: a string of at most %d bytes",
					  field, MAX_TEXT);
		if (!s)
			return apierr_set(e, 400, "validation_error",
					  "%s.text: required", field);
		buf_adds(out, "{\"type\":\"text\",\"text\":");
		buf_add_json_str(out, s, strlen(s));
		buf_addch(out, '}');
	} else if (!strcmp(type, "image_file")) {
		if (jx_get_str(part, "image_id", 64, &s, e) < 0 ||
		    jx_get_str(part, "filename", 255, &fname, e) < 0)
			return -1;
		if (!s || !ids_parse(s, "img", hex))
			return apierr_set(e, 404, "not_found",
					  "%s.image_id: not found", field);
		/* existence is checked in the send transaction */
		buf_adds(&imgs->list, imgs->n++ ? "," : "");
		buf_adds(&imgs->list, hex);
		buf_adds(out, "{\"type\":\"image_file\",\"image_id\":");
		buf_add_json_str(out, s, strlen(s));
		if (fname) {
			buf_adds(out, ",\"filename\":");
			buf_add_json_str(out, fname, strlen(fname));
		}
		buf_addch(out, '}');
	} else if (!strcmp(type, "image")) {
		const char *url = NULL;
		if (jx_get_str(part, "base64", 0, &s, e) < 0 ||
		    jx_get_str(part, "media_type", 32, &media, e) < 0 ||
		    jx_get_str(part, "url", 2048, &url, e) < 0)
			return -1;
		if (url) {
			if (strncmp(url, "https://", 8) && strncmp(url, "http://", 7))
				return apierr_set(e, 400, "validation_error",
						  "%s.url: must be an http(s) URL",
						  field);
			buf_adds(out, "{\"type\":\"image\",\"url\":");
			buf_add_json_str(out, url, strlen(url));
			buf_addch(out, '}');
			return 0;
		}
		if (!s)
			return apierr_set(e, 400, "validation_error",
					  "%s: base64 or url is required", field);
		if (!media || !image_type_ok(media))
			return apierr_set(e, 400, "validation_error",
					  "%s.media_type: one of image/png, "
					  "image/jpeg, image/gif, image/webp",
					  field);
		if (check_base64_image(s, strlen(s), media, field, e))
			return -1;
		buf_adds(out, "{\"type\":\"image\",\"media_type\":");
		buf_add_json_str(out, media, strlen(media));
		buf_adds(out, ",\"base64\":");
		buf_add_json_str(out, s, strlen(s));
		buf_addch(out, '}');
	} else {
		return apierr_set(e, 400, "validation_error",
				  "%s.type: unknown part type '%.32s'", field, type);
	}
	return 0;
}

static int read_content(struct json_object *msg, struct buf *out,
			struct image_refs *imgs, struct apierr *e)
{
	struct json_object *c = NULL;
	size_t i, n;

	if (!json_object_object_get_ex(msg, "content", &c) || !c)
		return apierr_field(e, "message.content", "required");
	if (json_object_is_type(c, json_type_string)) {
		if ((size_t)json_object_get_string_len(c) > MAX_TEXT)
			return apierr_set(e, 400, "validation_error",
					  "message.content: longer than %d bytes",
					  MAX_TEXT);
		if (json_object_get_string_len(c) == 0)
			return apierr_field(e, "message.content", "must not be empty");
		buf_adds(out, "[{\"type\":\"text\",\"text\":");
		buf_add_json_str(out, json_object_get_string(c),
				 (size_t)json_object_get_string_len(c));
		buf_adds(out, "}]");
		return 0;
	}
	if (!json_object_is_type(c, json_type_array))
		return apierr_field(e, "message.content",
				    "must be a string or an array of parts");
	n = json_object_array_length(c);
	if (n == 0)
		return apierr_field(e, "message.content", "must not be empty");
	if (n > MAX_PARTS)
		return apierr_set(e, 400, "validation_error",
				  "message.content: at most %d parts", MAX_PARTS);
	buf_addch(out, '[');
	for (i = 0; i < n; i++) {
		if (i)
			buf_addch(out, ',');
		if (read_part(json_object_array_get_idx(c, i), i, out, imgs, e))
			return -1;
	}
	buf_addch(out, ']');
	return 0;
}

/* Controls from message.controls or the top level (not both, unless
 * equal), validated and normalized into out. */
static int read_controls(struct req *rq, struct json_object *body,
			 struct json_object *msg, struct buf *out,
			 struct apierr *e)
{
	struct json_object *a = NULL, *b = NULL, *c, *r = NULL;
	int64_t max_tokens;
	double temp;
	const char *model = NULL, *effort = NULL;
	char hex[33];
	int first = 1;

	if (jx_get_obj(msg, "controls", &a, e) < 0 ||
	    jx_get_obj(body, "controls", &b, e) < 0)
		return apierr_field(e, "controls", "must be an object");
	if (a && b && !json_object_equal(a, b))
		return apierr_field(e, "controls",
				    "given in message.controls and at the top "
				    "level with different values");
	c = a ? a : b;
	if (!c)
		return 0;
	buf_addch(out, '{');
#define SEP() (first ? (first = 0, "") : ",")
	switch (jx_get_int(c, "max_tokens", 1, 1000000, &max_tokens, e)) {
	case -1:
		return apierr_set(e, 400, "validation_error",
				  "controls.max_tokens: an integer from 1 to 1000000");
	case 1:
		buf_addf(out, "%s\"max_tokens\":%lld", SEP(), (long long)max_tokens);
	}
	switch (jx_get_double(c, "temperature", 0, 2, &temp, e)) {
	case -1:
		return apierr_set(e, 400, "validation_error",
				  "controls.temperature: a number from 0 to 2");
	case 1:
		buf_addf(out, "%s\"temperature\":%.17g", SEP(), temp);
	}
	if (jx_get_str(c, "model_id", 64, &model, e) < 0)
		return apierr_field(e, "controls.model_id", "must be a string");
	if (model) {
		if (api_ref(rq, model, "mod", "controls.model_id", "llm_models",
			    hex) != 0)
			return 1; /* sent */
		buf_addf(out, "%s\"model_id\":\"mod_%s\"", SEP(), hex);
	}
	if (jx_get_obj(c, "reasoning", &r, e) < 0)
		return apierr_field(e, "controls.reasoning", "must be an object");
	if (r && jx_get_str(r, "effort", 16, &effort, e) < 0)
		return apierr_field(e, "controls.reasoning.effort",
				    "must be a string");
	if (effort) {
		if (strcmp(effort, "low") && strcmp(effort, "medium") &&
		    strcmp(effort, "high"))
			return apierr_field(e, "controls.reasoning.effort",
					    "one of low, medium, high");
		buf_addf(out, "%s\"reasoning\":{\"effort\":\"%s\"}", SEP(), effort);
	}
#undef SEP
	buf_addch(out, '}');
	return 0;
}

/* Check every image_file part names an image of the organization and
 * mark them attached (so housekeeping keeps them). In the send
 * transaction. 0, or -1 with the answer sent. */
static int attach_images(struct req *rq, struct image_refs *imgs)
{
	static const char q[] =
		"WITH want AS (SELECT DISTINCT unnest($2::uuid[]) AS id), "
		"upd AS (UPDATE images i SET attached = true FROM want "
		"  WHERE i.id = want.id AND i.org_id = $1 RETURNING i.id) "
		"SELECT (SELECT count(*) FROM want) = (SELECT count(*) FROM upd)";
	struct buf arr = BUF_INIT;
	const char *p[2];
	PGresult *res;
	int ok;

	if (!imgs->n)
		return 0;
	buf_init(&arr, 0);
	buf_addf(&arr, "{%s}", imgs->list.data);
	p[0] = rq->org;
	p[1] = arr.data;
	res = db_exec(rq->db, q, 2, p);
	buf_release(&arr);
	if (!res) {
		api_db_error(rq);
		return -1;
	}
	ok = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!ok) {
		res_error(rq, 404, "not_found",
			  "message.content: image_id not found");
		return -1;
	}
	return 0;
}

void h_messages_create(struct req *rq)
{
	static const char q_send[] =
		"SELECT message, result FROM evr_message_send($1, $2, $3, $4, "
		"$5::jsonb, $6::jsonb, $7::jsonb)";
	struct json_object *body = NULL, *msg = NULL, *meta = NULL, *role = NULL;
	struct buf content = BUF_INIT, controls = BUF_INIT;
	struct image_refs imgs;
	struct apierr e;
	char session[33], turn[IDS_MAX_LEN], mid[IDS_MAX_LEN], hash[65];
	const char *p[7];
	PGresult *res = NULL;
	int r;

	buf_init(&content, 0);
	buf_init(&controls, 0);
	buf_init(&imgs.list, 0);
	imgs.n = 0;
	if (api_id(rq, rq->cap[0], "ses", "session_id", session) != 0 ||
	    idem_check_header(rq) != 0)
		goto out;
	body = api_body(rq);
	if (!body)
		goto out;
	if (jx_get_obj(body, "message", &msg, &e) < 0)
		goto bad;
	if (!msg) {
		apierr_field(&e, "message", "required");
		goto bad;
	}
	if (json_object_object_get_ex(msg, "role", &role) && role &&
	    (!json_object_is_type(role, json_type_string) ||
	     strcmp(json_object_get_string(role), "user"))) {
		apierr_field(&e, "message.role", "must be \"user\"");
		goto bad;
	}
	if (read_content(msg, &content, &imgs, &e) != 0)
		goto bad;
	if ((r = read_controls(rq, body, msg, &controls, &e)) != 0) {
		if (r < 0)
			goto bad;
		goto out;
	}
	if (jx_get_obj(body, "metadata", &meta, &e) < 0)
		goto bad;
	if (meta && strlen(jx_str(meta)) > 16384) {
		apierr_field(&e, "metadata", "larger than 16 KiB");
		goto bad;
	}

	ids_new("trn", turn, sizeof(turn));
	ids_new("msg", mid, sizeof(mid));
	if (db_begin(rq->db) != 0) {
		api_db_error(rq);
		goto out;
	}
	if (idem_begin(rq, hash) != 0 || attach_images(rq, &imgs) != 0)
		goto rollback;
	p[0] = rq->org;
	p[1] = session;
	p[2] = turn + 4;
	p[3] = mid + 4;
	p[4] = content.data;
	p[5] = controls.len ? controls.data : NULL;
	p[6] = meta ? jx_str(meta) : NULL;
	res = db_exec(rq->db, q_send, 7, p);
	if (!res) {
		/* a concurrent DELETE of the session */
		if (db_is(rq->db, DB_FK_VIOLATION))
			res_error(rq, 404, "not_found", "Session not found");
		else
			api_db_error(rq);
		goto rollback;
	}
	if (!strcmp(PQgetvalue(res, 0, 1), "gone")) {
		res_error(rq, 404, "not_found", "Session not found");
		goto rollback;
	}
	if (!strcmp(PQgetvalue(res, 0, 1), "busy")) {
		res_error(rq, 400, "session_busy",
			  "The session is working on a turn; wait for "
			  "session.idled or cancel it");
		goto rollback;
	}
	res_json(rq, 201, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
	if (idem_finish(rq) != 0 || db_commit(rq->db) != 0) {
		api_db_error(rq);
		goto rollback;
	}
	goto out;
bad:
	res_apierr(rq, &e);
	goto out;
rollback:
	db_rollback(rq->db);
out:
	PQclear(res);
	buf_release(&content);
	buf_release(&controls);
	buf_release(&imgs.list);
	json_object_put(body);
}

void h_messages_list(struct req *rq)
{
	static const char q[] =
		"SELECT (SELECT 1 FROM sessions WHERE id = $1 AND org_id = $2), "
		"(SELECT coalesce(json_agg(m ORDER BY seq), '[]') FROM "
		"  (SELECT api_message(e) AS m, e.seq FROM events e "
		"   WHERE e.session_id = $1 AND e.seq > $3 AND e.type IN "
		"   ('input.message', 'output.message.completed', 'tool.completed') "
		"   AND EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND org_id = $2) "
		"   ORDER BY e.seq LIMIT $4) page), "
		"(SELECT count(*) > $4 FROM (SELECT 1 FROM events e "
		"   WHERE e.session_id = $1 AND e.seq > $3 AND e.type IN "
		"   ('input.message', 'output.message.completed', 'tool.completed') "
		"   LIMIT $4 + 1) x)";
	struct apierr e;
	char session[33], after[24], lim[24];
	const char *p[4] = {session, rq->org, after, lim};
	long since = 0, limit = 1000;
	PGresult *res;

	if (api_id(rq, rq->cap[0], "ses", "session_id", session) != 0)
		return;
	if (req_query_long(rq, "since_sequence", 0, 1L << 62, &since, &e) < 0 ||
	    req_query_long(rq, "limit", 1, 1000, &limit, &e) < 0) {
		res_apierr(rq, &e);
		return;
	}
	snprintf(after, sizeof(after), "%ld", since);
	snprintf(lim, sizeof(lim), "%ld", limit);
	res = db_exec(rq->db, q, 4, p);
	if (!res) {
		api_db_error(rq);
		return;
	}
	if (PQgetisnull(res, 0, 0))
		res_error(rq, 404, "not_found", "Session not found");
	else
		res_jsonf(rq, 200, "{\"data\":%s,\"has_more\":%s}",
			  PQgetvalue(res, 0, 1),
			  PQgetvalue(res, 0, 2)[0] == 't' ? "true" : "false");
	PQclear(res);
}
