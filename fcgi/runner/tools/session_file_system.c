/*
 * session_file_system: the file tools of ARCHITECTURE 6.2 (list_directory,
 * read_file, write_file, edit_file, delete_file, move_file, copy_file,
 * grep_files, stat_file, make_directory) on the session's file system.
 *
 * Everything goes through fcgi/lib/fs (the REST routes' code): the same
 * path rules, the same storage, the same limits (max_file_size_mb and
 * max_total_mb of the session's session_file_system config, capped by
 * the server) and the same `file.written` events, here with source
 * "tool" and the turn's id. Every refusal is a sentence for the model
 * (the REST error text), never a failed turn.
 *
 * Results (JSON):
 *   list_directory  {"path","entries":[FileInfo]}
 *   read_file       FileInfo + content, encoding
 *   write_file, edit_file, make_directory, move_file, copy_file
 *                   FileInfo + "created" (write_file, make_directory)
 *   delete_file     {"path","deleted":true}
 *   stat_file       FileInfo + "exists":true, or {"path","exists":false}
 *   grep_files      {"data":[{path,matches:[{path,line_number,line}]}],
 *                   "count","truncated"}
 */
#include "tools_internal.h"
#include "fs.h"

#include <stdio.h>
#include <string.h>

/* The string argument `name` (the schema made it a string), or NULL. */
static const char *arg(struct json_object *args, const char *name, size_t *len)
{
	struct json_object *v = NULL;
	if (!json_object_object_get_ex(args, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	if (len)
		*len = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

static int arg_bool(struct json_object *args, const char *name)
{
	struct json_object *v = NULL;
	return json_object_object_get_ex(args, name, &v) &&
	       json_object_get_boolean(v);
}

static void ctx_of(const struct tool_ctx *c, struct fs_ctx *f)
{
	f->db = c->db;
	f->org = c->org;
	f->session = c->session;
	f->source = "tool";
	f->emit = c->emit;
	f->emit_arg = c->emit_arg;
}

/* Normalize argument `name` into out (a missing one is "/" when
 * dflt_root); -1 with the sentence in error. */
static int path_arg(struct json_object *args, const char *name, int dflt_root,
		    char out[FS_PATH_MAX + 1], struct buf *error)
{
	struct apierr e;
	size_t len = 0;
	const char *v = arg(args, name, &len);

	if (!v && dflt_root)
		v = "/", len = 1;
	if (!v) {
		tools_fail(error, "%s is required.", name);
		return -1;
	}
	if (fs_path_normalize(v, len, out, name, &e) != 0) {
		tools_fail(error, "%s.", e.msg);
		return -1;
	}
	return 0;
}

static int not_root(const char *path, const char *name, struct buf *error)
{
	if (strcmp(path, "/"))
		return 0;
	tools_fail(error, "%s: the root directory cannot be changed.", name);
	return -1;
}

static enum tool_status fail(enum fs_status st, const char *path,
			     long long limit, struct buf *error)
{
	struct apierr e;
	if (st == FS_DB_ERROR)
		return tools_fail(error, TOOLS_MSG_DB);
	if (st == FS_NO_SESSION)
		return tools_fail(error, TOOLS_MSG_GONE);
	fs_error(st, path, limit, &e);
	return tools_fail(error, "%s.", e.msg);
}

/* FileInfo (a JSON object) with `extra` members inserted before its end. */
static void info_with(struct buf *result, const struct buf *info,
		      const char *extra)
{
	buf_add(result, info->data, info->len - 1);
	buf_adds(result, extra);
	buf_addch(result, '}');
}

enum tool_status tools_fs_list(const struct tool_ctx *c,
			       struct json_object *args, struct buf *result,
			       struct buf *error)
{
	char path[FS_PATH_MAX + 1];
	struct fs_ctx f;
	enum fs_status st;

	if (tools_need_db(c, error) || path_arg(args, "path", 1, path, error))
		return TOOL_ERROR;
	ctx_of(c, &f);
	buf_adds(result, "{\"path\":");
	buf_add_json_str(result, path, strlen(path));
	buf_adds(result, ",\"entries\":");
	st = fs_list(&f, path, arg_bool(args, "recursive"), result);
	if (st != FS_OK)
		return fail(st, path, 0, error);
	buf_addch(result, '}');
	return TOOL_OK;
}

enum tool_status tools_fs_read(const struct tool_ctx *c,
			       struct json_object *args, struct buf *result,
			       struct buf *error)
{
	char path[FS_PATH_MAX + 1];
	struct fs_ctx f;
	struct fs_file file;
	enum fs_status st;

	if (tools_need_db(c, error) || path_arg(args, "path", 0, path, error))
		return TOOL_ERROR;
	ctx_of(c, &f);
	st = fs_read(&f, path, &file);
	if (st == FS_OK && file.is_directory) {
		fs_file_release(&file);
		return tools_fail(error,
				  "%s is a directory; use list_directory "
				  "to see what it holds.",
				  path);
	}
	if (st == FS_OK)
		fs_file_json(&file, result);
	fs_file_release(&file);
	return st == FS_OK ? TOOL_OK : fail(st, path, 0, error);
}

/* Write data as path's content (replacing a file) and answer FileInfo
 * with "created". */
static enum tool_status write_answer(const struct tool_ctx *c, const char *path,
				     const char *data, size_t len,
				     enum fs_write_mode mode, const char *extra,
				     struct buf *result, struct buf *error)
{
	struct fs_ctx f;
	struct buf info = BUF_INIT;
	long long limit = 0;
	enum fs_status st;
	char more[64];

	ctx_of(c, &f);
	buf_init(&info, 256);
	st = fs_write(&f, path, data, len, mode, &info, &limit);
	if (st == FS_OK || st == FS_CREATED) {
		snprintf(more, sizeof(more), ",\"created\":%s%s",
			 st == FS_CREATED ? "true" : "false", extra);
		info_with(result, &info, more);
	}
	buf_release(&info);
	return st == FS_OK || st == FS_CREATED ? TOOL_OK
					       : fail(st, path, limit, error);
}

enum tool_status tools_fs_write(const struct tool_ctx *c,
				struct json_object *args, struct buf *result,
				struct buf *error)
{
	char path[FS_PATH_MAX + 1];
	const char *content, *enc;
	struct buf data = BUF_INIT;
	size_t len = 0;
	enum tool_status st;

	if (tools_need_db(c, error) || path_arg(args, "path", 0, path, error) ||
	    not_root(path, "path", error))
		return TOOL_ERROR;
	content = arg(args, "content", &len);
	enc = arg(args, "encoding", NULL);
	if (!content)
		return tools_fail(error, "content is required.");
	if (enc && !strcmp(enc, "base64")) {
		if (fs_base64_decode(content, len, &data) != 0) {
			buf_release(&data);
			return tools_fail(error,
					  "content is not valid base64.");
		}
		content = data.data;
		len = data.len;
	}
	st = write_answer(c, path, content, len, FS_REPLACE, "", result, error);
	buf_release(&data);
	return st;
}

/* Occurrences of needle in hay (at most 2 counted); *at = the first. */
static int occurrences(const char *hay, size_t hlen, const char *needle,
		       size_t nlen, size_t *at)
{
	size_t i;
	int n = 0;
	for (i = 0; i + nlen <= hlen && n < 2; i++)
		if (!memcmp(hay + i, needle, nlen)) {
			if (!n++)
				*at = i;
			i += nlen - 1;
		}
	return n;
}

enum tool_status tools_fs_edit(const struct tool_ctx *c,
			       struct json_object *args, struct buf *result,
			       struct buf *error)
{
	char path[FS_PATH_MAX + 1];
	const char *old_text, *new_text;
	size_t olen = 0, nlen = 0, at = 0;
	struct fs_ctx f;
	struct fs_file file;
	struct buf data = BUF_INIT;
	enum fs_status st;
	enum tool_status ts;
	int n;

	if (tools_need_db(c, error) || path_arg(args, "path", 0, path, error))
		return TOOL_ERROR;
	old_text = arg(args, "old_text", &olen);
	new_text = arg(args, "new_text", &nlen);
	if (!old_text || !new_text)
		return tools_fail(error, "old_text and new_text are required.");
	if (olen == 0)
		return tools_fail(error, "old_text must not be empty.");
	ctx_of(c, &f);
	st = fs_read(&f, path, &file);
	if (st == FS_OK && file.is_directory)
		st = FS_IS_DIR;
	if (st != FS_OK) {
		fs_file_release(&file);
		return fail(st, path, 0, error);
	}
	if (!utf8_valid(file.content, file.len, 0)) {
		fs_file_release(&file);
		return tools_fail(error,
				  "%s is not a text file; use write_file "
				  "to replace it.",
				  path);
	}
	n = occurrences(file.content, file.len, old_text, olen, &at);
	if (n != 1) {
		fs_file_release(&file);
		return tools_fail(error,
				  n ? "old_text occurs more than once in %s; "
				      "include more surrounding text to make "
				      "it unique."
				    : "old_text was not found in %s; read the "
				      "file and copy the text exactly.",
				  path);
	}
	buf_init(&data, file.len - olen + nlen + 1);
	buf_add(&data, file.content, at);
	buf_add(&data, new_text, nlen);
	buf_add(&data, file.content + at + olen, file.len - at - olen);
	fs_file_release(&file);
	ts = write_answer(c, path, data.data, data.len, FS_REPLACE,
			  ",\"replacements\":1", result, error);
	buf_release(&data);
	return ts;
}

enum tool_status tools_fs_mkdir(const struct tool_ctx *c,
				struct json_object *args, struct buf *result,
				struct buf *error)
{
	char path[FS_PATH_MAX + 1];

	if (tools_need_db(c, error) || path_arg(args, "path", 0, path, error) ||
	    not_root(path, "path", error))
		return TOOL_ERROR;
	return write_answer(c, path, NULL, 0, FS_MKDIR, "", result, error);
}

enum tool_status tools_fs_delete(const struct tool_ctx *c,
				 struct json_object *args, struct buf *result,
				 struct buf *error)
{
	char path[FS_PATH_MAX + 1];
	struct fs_ctx f;
	enum fs_status st;

	if (tools_need_db(c, error) || path_arg(args, "path", 0, path, error) ||
	    not_root(path, "path", error))
		return TOOL_ERROR;
	ctx_of(c, &f);
	st = fs_delete(&f, path, arg_bool(args, "recursive"));
	if (st != FS_OK)
		return fail(st, path, 0, error);
	buf_adds(result, "{\"path\":");
	buf_add_json_str(result, path, strlen(path));
	buf_adds(result, ",\"deleted\":true}");
	return TOOL_OK;
}

static enum tool_status move_or_copy(const struct tool_ctx *c,
				     struct json_object *args, int copy,
				     struct buf *result, struct buf *error)
{
	char src[FS_PATH_MAX + 1], dst[FS_PATH_MAX + 1];
	struct fs_ctx f;
	struct buf info = BUF_INIT;
	long long limit = 0;
	enum fs_status st;

	if (tools_need_db(c, error) ||
	    path_arg(args, "src_path", 0, src, error) ||
	    path_arg(args, "dst_path", 0, dst, error) ||
	    not_root(src, "src_path", error) ||
	    not_root(dst, "dst_path", error))
		return TOOL_ERROR;
	ctx_of(c, &f);
	buf_init(&info, 256);
	st = fs_move(&f, src, dst, copy, &info, &limit);
	if (st == FS_OK || st == FS_CREATED)
		buf_add(result, info.data, info.len);
	buf_release(&info);
	if (st == FS_OK || st == FS_CREATED)
		return TOOL_OK;
	return fail(st, st == FS_EXISTS || st == FS_PARENT_NOT_DIR ? dst : src,
		    limit, error);
}

enum tool_status tools_fs_move(const struct tool_ctx *c,
			       struct json_object *args, struct buf *result,
			       struct buf *error)
{
	return move_or_copy(c, args, 0, result, error);
}

enum tool_status tools_fs_copy(const struct tool_ctx *c,
			       struct json_object *args, struct buf *result,
			       struct buf *error)
{
	return move_or_copy(c, args, 1, result, error);
}

enum tool_status tools_fs_stat(const struct tool_ctx *c,
			       struct json_object *args, struct buf *result,
			       struct buf *error)
{
	char path[FS_PATH_MAX + 1];
	struct fs_ctx f;
	struct buf info = BUF_INIT;
	enum fs_status st;

	if (tools_need_db(c, error) || path_arg(args, "path", 0, path, error))
		return TOOL_ERROR;
	ctx_of(c, &f);
	buf_init(&info, 256);
	st = fs_stat(&f, path, &info);
	if (st == FS_OK) {
		info_with(result, &info, ",\"exists\":true");
	} else if (st == FS_NOT_FOUND) {
		buf_adds(result, "{\"path\":");
		buf_add_json_str(result, path, strlen(path));
		buf_adds(result, ",\"exists\":false}");
	}
	buf_release(&info);
	return st == FS_OK || st == FS_NOT_FOUND ? TOOL_OK
						 : fail(st, path, 0, error);
}

enum tool_status tools_fs_grep(const struct tool_ctx *c,
			       struct json_object *args, struct buf *result,
			       struct buf *error)
{
	struct fs_ctx f;
	struct apierr e;
	const char *pattern = arg(args, "pattern", NULL);
	enum fs_status st;

	if (tools_need_db(c, error))
		return TOOL_ERROR;
	if (!pattern)
		return tools_fail(error, "pattern is required.");
	if (strlen(pattern) > TOOLS_FS_PATTERN_MAX)
		return tools_fail(error, "pattern is longer than %d bytes.",
				  TOOLS_FS_PATTERN_MAX);
	ctx_of(c, &f);
	st = fs_grep(&f, pattern, arg(args, "path_pattern", NULL), result, &e);
	if (st == FS_BAD_PATTERN)
		return tools_fail(error, "%s.", e.msg);
	return st == FS_OK ? TOOL_OK : fail(st, "/", 0, error);
}
