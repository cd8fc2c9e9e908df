/*
 * images: uploads for vision models (ARCHITECTURE 2.4, 6.4). POST /images takes
 * multipart/form-data with one `file` field and an optional `session_id`
 * (form field or query parameter); the format is recognised by the file's
 * magic bytes (PNG, JPEG, GIF, WebP), whatever type the client claims.
 * Limits: 20 MiB per image (413), the route's body limit 21 MiB (as
 * nginx's client_max_body_size for /api/v1/images). An image that is not
 * one of the four formats is a 415 `unsupported_image_type`; one that
 * would take the organization past org_max_storage_mb a 413 (quota.c).
 *
 * Images belong to an organization: another organization's image is a
 * 404. An image never referenced by a message is purged after 24 h by the
 * runner's housekeeping; one referenced by an image_file part is kept
 * until it is deleted.
 */
#include "api.h"
#include "ids.h"
#include "imagetype.h"
#include "json.h"
#include "multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The filename as stored: its last path component, valid UTF-8 without
 * control characters (else ""). */
static const char *clean_filename(const char *f)
{
	const char *p;
	for (p = f; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "";
	p = strrchr(f, '/');
	if (p)
		f = p + 1;
	p = strrchr(f, '\\');
	if (p)
		f = p + 1;
	return http_utf8_ok(f) ? f : "";
}

void h_images_create(struct req *rq)
{
	static const char q[] =
		"INSERT INTO images (org_id, session_id, filename, media_type, "
		"size_bytes, data) SELECT $1, $2::uuid, $3, $4, $5::int, $6 "
		"WHERE $2::uuid IS NULL OR EXISTS (SELECT 1 FROM sessions "
		"WHERE id = $2::uuid AND org_id = $1) "
		"RETURNING api_image(images.*)::text";
	struct mp_part parts[MP_MAX_PARTS];
	const struct mp_part *file = NULL;
	const char *session = req_query(rq, "session_id"), *media;
	char boundary[71], sess_hex[33], size[24], sfield[64];
	const char *p[6];
	int lens[6] = {0, 0, 0, 0, 0, 0}, fmts[6] = {0, 0, 0, 0, 0, 1};
	struct apierr e;
	PGresult *res;
	int n, i;

	if (multipart_boundary(rq->content_type, boundary, &e) ||
	    (n = multipart_parse(boundary, rq->body, rq->body_len, parts,
				 MP_MAX_PARTS, &e)) < 0) {
		res_apierr(rq, &e);
		return;
	}
	for (i = 0; i < n; i++) {
		if (!strcmp(parts[i].name, "file")) {
			if (file) {
				res_error(rq, 400, "validation_error",
					  "file: exactly one file is accepted "
					  "per upload");
				return;
			}
			file = &parts[i];
		} else if (!strcmp(parts[i].name, "session_id")) {
			if (parts[i].len >= sizeof(sfield)) {
				res_error(rq, 404, "not_found",
					  "session_id: not found");
				return;
			}
			memcpy(sfield, parts[i].data, parts[i].len);
			sfield[parts[i].len] = '\0';
			session = sfield;
		}
	}
	if (!file) {
		res_error(rq, 400, "validation_error",
			  "file: required (a multipart/form-data field named "
			  "file)");
		return;
	}
	if (file->len == 0) {
		res_error(rq, 400, "validation_error", "file: empty");
		return;
	}
	if (file->len > IMAGES_MAX_BYTES) {
		res_error(rq, 413, "payload_too_large",
			  "file: larger than %d bytes (20 MiB)",
			  IMAGES_MAX_BYTES);
		return;
	}
	media = imagetype_sniff((const unsigned char *)file->data, file->len);
	if (!media) {
		res_error(rq, 415, "unsupported_image_type",
			  "file: not a PNG, JPEG, GIF or WebP image (judged "
			  "by its content, not its name or claimed type)");
		return;
	}
	if (session && *session && !ids_parse(session, "ses", sess_hex)) {
		res_error(rq, 404, "not_found", "session_id: not found");
		return;
	}
	if (api_org_quota(rq, ORG_STORAGE, (long long)file->len) != 0)
		return;
	snprintf(size, sizeof(size), "%zu", file->len);
	p[0] = rq->org;
	p[1] = session && *session ? sess_hex : NULL;
	p[2] = clean_filename(file->filename);
	p[3] = media;
	p[4] = size;
	p[5] = file->data;
	lens[5] = (int)file->len;
	res = db_exec_bin(rq->db, q, 6, p, lens, fmts);
	if (!res) {
		if (db_is(rq->db, DB_FK_VIOLATION))
			res_error(rq, 404, "not_found",
				  "session_id: not found");
		else
			api_db_error(rq);
		return;
	}
	if (PQntuples(res) == 1)
		res_json(rq, 201, PQgetvalue(res, 0, 0),
			 (size_t)PQgetlength(res, 0, 0));
	else
		res_error(rq, 404, "not_found", "session_id: not found");
	PQclear(res);
}

/* An images row for api_image() without reading its bytes: the table's
 * columns in their order, data as NULL. */
#define IMAGE_NO_DATA                                                          \
	"SELECT id, org_id, session_id, filename, media_type, size_bytes, "    \
	"NULL::bytea AS data, attached, created_at FROM images "

/* The upstream document's list: a bare array, newest first; limit
 * (default 50, at most 100) and offset. */
void h_images_list(struct req *rq)
{
	static const char q[] =
		"SELECT coalesce((SELECT json_agg("
		"api_image(i) ORDER BY i.created_at DESC, i.id DESC) FROM "
		"(" IMAGE_NO_DATA "WHERE org_id = $1 ORDER BY created_at DESC, "
		"id DESC OFFSET $2 LIMIT $3) i), '[]')";
	struct apierr e;
	long offset = 0, limit = 50;
	char so[24], sl[24];
	const char *p[3] = {rq->org, so, sl};

	if (req_query_long(rq, "offset", 0, 1000000000L, &offset, &e) < 0 ||
	    req_query_long(rq, "limit", 1, 100, &limit, &e) < 0) {
		res_apierr(rq, &e);
		return;
	}
	snprintf(so, sizeof(so), "%ld", offset);
	snprintf(sl, sizeof(sl), "%ld", limit);
	api_send_json_row(rq, 200, "Not found", q, 3, p);
}

void h_images_get(struct req *rq)
{
	static const char q[] = "SELECT api_image(i)::text FROM (" IMAGE_NO_DATA
				"WHERE id = $1 AND org_id = $2) i";
	char id[33];
	const char *p[2] = {id, rq->org};

	if (api_id(rq, rq->cap[0], "img", "image_id", id) != 0)
		return;
	api_send_json_row(rq, 200, "Image not found", q, 2, p);
}

void h_images_content(struct req *rq)
{
	static const char q[] =
		"SELECT media_type, data FROM images WHERE id = $1 AND org_id = $2";
	char id[33];
	const char *p[2] = {id, rq->org};
	unsigned char *bytes;
	size_t len;
	PGresult *res;

	if (api_id(rq, rq->cap[0], "img", "image_id", id) != 0)
		return;
	res = db_exec(rq->db, q, 2, p);
	if (!res) {
		api_db_error(rq);
		return;
	}
	if (PQntuples(res) != 1) {
		res_error(rq, 404, "not_found", "Image not found");
		goto out;
	}
	bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 1),
				&len);
	if (!bytes)
		abort();
	res_raw(rq, 200, arena_strdup(rq->arena, PQgetvalue(res, 0, 0)), bytes,
		len);
	res_header(rq, "Cache-Control", "private, max-age=3600");
	res_header(rq, "X-Content-Type-Options", "nosniff");
	PQfreemem(bytes);
out:
	PQclear(res);
}

void h_images_delete(struct req *rq)
{
	static const char q[] =
		"DELETE FROM images WHERE id = $1 AND org_id = $2";
	api_delete(rq, q, "img", "image_id", "The image is in use",
		   "Image not found");
}
