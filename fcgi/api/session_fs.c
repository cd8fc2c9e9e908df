/*
 * session_fs: the routes of the session file system (ARCHITECTURE 6.1):
 * listing, reading, creating (JSON or raw bytes), replacing and deleting
 * files and directories under /sessions/{id}/fs, the actions under
 * /fs/_/ (stat, move, copy, grep) and raw downloads. Paths are normalized
 * by fcgi/lib/fs_path.c, and the storage, limits and events are those of
 * fcgi/lib/fs.c, which the runner's tools share.
 */
#include "api.h"
#include "fs.h"
#include "json.h"

#include <stdio.h>
#include <string.h>

#define FS_PATTERN_MAX 1024

/* The session id of the path and the fs context; -1 when answered. */
static int fs_begin(struct req *rq, char sid[33], struct fs_ctx *c)
{
	if (api_id(rq, rq->cap[0], "ses", "session_id", sid) != 0)
		return -1;
	c->db = rq->db;
	c->org = rq->org;
	c->session = sid;
	c->source = "api";
	c->emit = NULL;
	c->emit_arg = NULL;
	return 0;
}

/* Normalize the path capture (or a body field) into out; -1 if sent. A
 * capture follows "/fs/": one that starts with "/" had an empty segment
 * ("/fs//x"). */
static int fs_path(struct req *rq, const char *in, const char *field,
		   char out[FS_PATH_MAX + 1])
{
	struct apierr e;
	if (in[0] == '/') {
		res_error(rq, 400, "invalid_path",
			  "%s: empty path segment (\"//\")", field);
		return -1;
	}
	if (fs_path_normalize(in, strlen(in), out, field, &e) != 0) {
		res_apierr(rq, &e);
		return -1;
	}
	return 0;
}

static void fs_fail(struct req *rq, enum fs_status st, const char *path,
		    long long limit)
{
	struct apierr e;
	if (st == FS_DB_ERROR) {
		api_db_error(rq);
		return;
	}
	fs_error(st, path, limit, &e);
	if (e.status == 429) /* a quota: room comes only when data goes */
		res_header(rq, "Retry-After", "3600");
	res_apierr(rq, &e);
}

static int recursive_param(struct req *rq, int *recursive)
{
	struct apierr e;
	*recursive = 0;
	if (req_query_bool(rq, "recursive", recursive, &e) < 0) {
		res_apierr(rq, &e);
		return -1;
	}
	return 0;
}

/* {"data":[FileInfo]} of a directory. */
static void send_listing(struct req *rq, const struct fs_ctx *c,
			 const char *path)
{
	struct buf out = BUF_INIT;
	enum fs_status st;
	int recursive;

	if (recursive_param(rq, &recursive) != 0)
		return;
	buf_init(&out, 256);
	buf_adds(&out, "{\"data\":");
	st = fs_list(c, path, recursive, &out);
	buf_addch(&out, '}');
	if (st == FS_OK)
		res_json(rq, 200, out.data, out.len);
	else
		fs_fail(rq, st, path, 0);
	buf_release(&out);
}

void h_fs_root(struct req *rq)
{
	struct fs_ctx c;
	char sid[33];

	if (fs_begin(rq, sid, &c) != 0)
		return;
	send_listing(rq, &c, "/");
}

void h_fs_get(struct req *rq)
{
	char sid[33], path[FS_PATH_MAX + 1];
	struct fs_ctx c;
	struct fs_file f;
	struct buf out = BUF_INIT;
	enum fs_status st;

	if (fs_begin(rq, sid, &c) != 0 || fs_path(rq, rq->cap[1], "path", path))
		return;
	st = fs_read(&c, path, &f);
	if (st != FS_OK) {
		fs_fail(rq, st, path, 0);
	} else if (f.is_directory) {
		send_listing(rq, &c, path);
	} else {
		fs_file_json(&f, &out);
		res_json(rq, 200, out.data, out.len);
		buf_release(&out);
	}
	fs_file_release(&f);
}

void h_fs_download(struct req *rq)
{
	char sid[33], path[FS_PATH_MAX + 1];
	struct fs_ctx c;
	struct fs_file f;
	struct buf disp = BUF_INIT;
	enum fs_status st;
	const char *name, *s;

	if (fs_begin(rq, sid, &c) != 0 || fs_path(rq, rq->cap[1], "path", path))
		return;
	st = fs_read(&c, path, &f);
	if (st == FS_OK && f.is_directory)
		st = FS_IS_DIR;
	if (st != FS_OK) {
		fs_fail(rq, st, path, 0);
		fs_file_release(&f);
		return;
	}
	res_raw(rq, 200, fs_media_type(path), f.content, f.len);
	/* the bytes are the user's: never rendered as this origin's page */
	name = strrchr(path, '/') + 1;
	buf_init(&disp, 64);
	buf_adds(&disp, "attachment; filename*=UTF-8''");
	for (s = name; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch))
			buf_addch(&disp, (char)ch);
		else
			buf_addf(&disp, "%%%02X", ch);
	}
	res_header(rq, "Content-Disposition", disp.data);
	res_header(rq, "Content-Security-Policy", "sandbox");
	buf_release(&disp);
	fs_file_release(&f);
}

/* The content of a create/replace: the JSON body {content, encoding,
 * is_directory} or the raw bytes of any other Content-Type. *dir is set
 * for a directory. 0, or -1 when answered. */
static int write_input(struct req *rq, struct buf *data, const char **bytes,
		       size_t *len, int *dir)
{
	struct json_object *body, *content = NULL;
	const char *enc = NULL;
	struct apierr e;
	int rc = -1;

	*dir = 0;
	if (!http_is_json(rq->content_type)) {
		*bytes = rq->body;
		*len = rq->body_len;
		return 0;
	}
	if (!(body = api_body_bytes(rq, "content"))) /* a bytea column */
		return -1;
	if (jx_get_bool(body, "is_directory", dir, &e) < 0 ||
	    jx_get_str(body, "encoding", 0, &enc, &e) < 0)
		goto bad;
	if (*dir) {
		rc = 0;
		goto out;
	}
	if (enc && strcmp(enc, "text") && strcmp(enc, "base64")) {
		apierr_field(&e, "encoding", "must be \"text\" or \"base64\"");
		goto bad;
	}
	content = jx_get(body, "content");
	if (!content || !json_object_is_type(content, json_type_string)) {
		apierr_field(&e, "content",
			     content ? "must be a string"
				     : "is required for a file");
		goto bad;
	}
	if (enc && !strcmp(enc, "base64")) {
		if (fs_base64_decode(
			    json_object_get_string(content),
			    (size_t)json_object_get_string_len(content),
			    data) != 0) {
			apierr_field(&e, "content", "not valid base64");
			goto bad;
		}
	} else {
		buf_add(data, json_object_get_string(content),
			(size_t)json_object_get_string_len(content));
	}
	*bytes = data->data;
	*len = data->len;
	rc = 0;
	goto out;
bad:
	res_apierr(rq, &e);
out:
	json_object_put(body);
	return rc;
}

static void fs_put_or_post(struct req *rq, int put)
{
	char sid[33], path[FS_PATH_MAX + 1];
	struct fs_ctx c;
	struct buf data = BUF_INIT, info = BUF_INIT;
	enum fs_write_mode mode;
	enum fs_status st;
	const char *bytes = NULL;
	size_t len = 0;
	long long limit = 0;
	int dir, overwrite = 0;
	struct apierr e;

	if (fs_begin(rq, sid, &c) != 0 || fs_path(rq, rq->cap[1], "path", path))
		return;
	if (!strcmp(path, "/")) {
		res_error(rq, 400, "invalid_path",
			  "path: the root directory cannot be written");
		return;
	}
	if (!put && req_query_bool(rq, "overwrite", &overwrite, &e) < 0) {
		res_apierr(rq, &e);
		return;
	}
	buf_init(&info, 256);
	if (rq->body_in) { /* raw bytes, to the database as they arrive */
		mode = put || overwrite ? FS_REPLACE : FS_CREATE;
		if ((long long)rq->body_len > fs_cap_file()) {
			fs_fail(rq, FS_TOO_LARGE_FILE, path, fs_cap_file());
			goto out;
		}
		st = fs_write_stream(&c, path, rq->body_len, api_body_read, rq,
				     mode, &info, &limit);
		if (rq->body_got < rq->body_len)
			res_error(rq, 400, "incomplete_body",
				  "Request body shorter than Content-Length");
		else if (st == FS_CREATED || st == FS_OK)
			res_json(rq, st == FS_CREATED ? 201 : 200, info.data,
				 info.len);
		else
			fs_fail(rq, st, path, limit);
		goto out;
	}
	if (write_input(rq, &data, &bytes, &len, &dir) != 0)
		goto out;
	if (!dir && (long long)len > fs_cap_file()) {
		fs_fail(rq, FS_TOO_LARGE_FILE, path, fs_cap_file());
		goto out;
	}
	mode = put ? (dir ? FS_MKDIR : FS_REPLACE)
		   : (overwrite && !dir ? FS_REPLACE : FS_CREATE);
	st = fs_write(&c, path, dir ? NULL : bytes, len, mode, &info, &limit);
	if (st == FS_CREATED || st == FS_OK)
		res_json(rq, st == FS_CREATED ? 201 : 200, info.data, info.len);
	else
		fs_fail(rq, st, path, limit);
out:
	buf_release(&data);
	buf_release(&info);
}

void h_fs_create(struct req *rq)
{
	fs_put_or_post(rq, 0);
}

void h_fs_put(struct req *rq)
{
	fs_put_or_post(rq, 1);
}

void h_fs_delete(struct req *rq)
{
	char sid[33], path[FS_PATH_MAX + 1];
	struct fs_ctx c;
	enum fs_status st;
	int recursive;

	if (fs_begin(rq, sid, &c) != 0 ||
	    fs_path(rq, rq->cap[1], "path", path) ||
	    recursive_param(rq, &recursive) != 0)
		return;
	if (!strcmp(path, "/")) {
		res_error(rq, 400, "invalid_path",
			  "path: the root directory cannot be deleted");
		return;
	}
	st = fs_delete(&c, path, recursive);
	if (st == FS_OK) {
		res_jsonf(rq, 200, "{\"deleted\":true}");
	} else if (st == FS_READONLY) {
		struct apierr e;
		fs_error(st, path, 0, &e);
		e.status = 403; /* the upstream document's, for a delete */
		res_apierr(rq, &e);
	} else {
		fs_fail(rq, st, path, 0);
	}
}

/* A path field of an action's body, normalized into out; -1 if sent. */
static int body_path(struct req *rq, struct json_object *body,
		     const char *field, char out[FS_PATH_MAX + 1])
{
	struct apierr e;
	const char *v = NULL;

	if (jx_get_str(body, field, 0, &v, &e) < 0 ||
	    (!v && apierr_field(&e, field, "is required")) ||
	    fs_path_normalize(v, strlen(v), out, field, &e) != 0) {
		res_apierr(rq, &e);
		return -1;
	}
	return 0;
}

void h_fs_stat(struct req *rq)
{
	char sid[33], path[FS_PATH_MAX + 1];
	struct json_object *body;
	struct buf info = BUF_INIT;
	struct fs_ctx c;
	enum fs_status st;

	if (fs_begin(rq, sid, &c) != 0 || !(body = api_body(rq)))
		return;
	if (body_path(rq, body, "path", path) == 0) {
		buf_init(&info, 256);
		st = fs_stat(&c, path, &info);
		if (st == FS_OK)
			res_json(rq, 200, info.data, info.len);
		else
			fs_fail(rq, st, path, 0);
		buf_release(&info);
	}
	json_object_put(body);
}

static void move_or_copy(struct req *rq, int copy)
{
	char sid[33], src[FS_PATH_MAX + 1], dst[FS_PATH_MAX + 1];
	struct json_object *body;
	struct buf info = BUF_INIT;
	struct fs_ctx c;
	enum fs_status st;
	long long limit = 0;

	if (fs_begin(rq, sid, &c) != 0 || !(body = api_body(rq)))
		return;
	if (body_path(rq, body, "src_path", src) ||
	    body_path(rq, body, "dst_path", dst))
		goto out;
	if (!strcmp(src, "/") || !strcmp(dst, "/")) {
		res_error(rq, 400, "invalid_path",
			  "the root directory cannot be moved, copied or "
			  "replaced");
		goto out;
	}
	buf_init(&info, 256);
	st = fs_move(&c, src, dst, copy, &info, &limit);
	if (st == FS_OK || st == FS_CREATED)
		res_json(rq, copy ? 201 : 200, info.data, info.len);
	else
		fs_fail(rq, st,
			st == FS_EXISTS || st == FS_PARENT_NOT_DIR ? dst : src,
			limit);
	buf_release(&info);
out:
	json_object_put(body);
}

void h_fs_move(struct req *rq)
{
	move_or_copy(rq, 0);
}

void h_fs_copy(struct req *rq)
{
	move_or_copy(rq, 1);
}

void h_fs_grep(struct req *rq)
{
	char sid[33];
	struct json_object *body;
	struct buf out = BUF_INIT;
	struct fs_ctx c;
	struct apierr e;
	const char *pattern = NULL, *glob = NULL;
	enum fs_status st;

	if (fs_begin(rq, sid, &c) != 0 || !(body = api_body(rq)))
		return;
	if (jx_get_str(body, "pattern", FS_PATTERN_MAX, &pattern, &e) < 0 ||
	    (!pattern && apierr_field(&e, "pattern", "is required")) ||
	    jx_get_str(body, "path_pattern", FS_PATTERN_MAX, &glob, &e) < 0) {
		res_apierr(rq, &e);
		goto out;
	}
	buf_init(&out, 256);
	st = fs_grep(&c, pattern, glob, &out, &e);
	if (st == FS_OK)
		res_json(rq, 200, out.data, out.len);
	else if (st == FS_BAD_PATTERN)
		res_apierr(rq, &e);
	else
		fs_fail(rq, st, "/", 0);
	buf_release(&out);
out:
	json_object_put(body);
}
