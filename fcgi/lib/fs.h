/*
 * fs: the session file system (ARCHITECTURE 6.1), shared by the REST routes
 * (fcgi/api/session_fs.c) and the session_file_system tools of the runner
 * (fcgi/runner/tools/session_file_system.c), so both follow one set of
 * rules on one storage (sql/006_session_fs.sql).
 *
 * fs_path.c: the path normalizer (pure, no database; fuzzed by
 * tests/fuzz/fuzz_fs_path.c). fs.c: the operations, each one statement
 * (an evr_fs_* function for every change), scoped by the organization,
 * and the sentences that explain each outcome to a person or a model.
 *
 * Paths. The normal form is absolute: "/" or "/seg/seg...". The input may
 * omit the leading "/" (a REST capture has none) and may end in one "/".
 * Refused: a segment "." or "..", an empty segment ("a//b"), NUL and
 * control characters (C0, DEL), text that is not UTF-8, a segment longer
 * than FS_SEGMENT_MAX bytes, a normalized path longer than FS_PATH_MAX
 * bytes, and a first segment that is exactly "_" (reserved for the
 * actions /fs/_/stat, ...). Names such as "__init__.py", "_config.yml"
 * or "%2e%2e" (already decoded once by the router; never decoded again)
 * are ordinary names.
 */
#ifndef EVR_FS_H
#define EVR_FS_H

#include <stddef.h>

#include "apierr.h"
#include "buf.h"

#define FS_PATH_MAX 1024
#define FS_SEGMENT_MAX 255

/* Normalize s[0..len) into out (FS_PATH_MAX + 1 bytes). 0, or -1 with a
 * 400 naming `field` in e. */
int fs_path_normalize(const char *s, size_t len, char *out, const char *field,
		      struct apierr *e);

/* --- operations (fs.c) ---------------------------------------------------*/

struct db;

enum fs_status {
	FS_OK = 0,
	FS_CREATED,
	FS_NO_SESSION,
	FS_NOT_FOUND,
	FS_EXISTS,
	FS_IS_DIR,
	FS_NOT_DIR,
	FS_PARENT_NOT_DIR,
	FS_NOT_EMPTY,
	FS_INTO_ITSELF,
	FS_TOO_LARGE_FILE,
	FS_TOO_LARGE_TOTAL,
	FS_TOO_MANY_ENTRIES, /* fs_session_max_entries (413) */
	FS_ORG_STORAGE_FULL, /* org_max_storage_mb (413) */
	FS_ORG_EVENTS_FULL,  /* org_max_events (429) */
	FS_BAD_PATTERN,
	FS_READONLY, /* a read-only file (a session's initial_files) */
	FS_DB_ERROR,
};

/* Who acts: org and session are 32-hex uuids; source is "api" or "tool"
 * (in the events). The `file.written` event of a change is written by
 * the change's statement itself, unless emit is set: then it is handed
 * to emit (its data, JSON text) after the change, for the runner to
 * queue with the events of the tool's turn. */
struct fs_ctx {
	struct db *db;
	const char *org, *session, *source;
	void (*emit)(void *arg, const char *type, const char *data);
	void *emit_arg;
};

enum fs_write_mode { FS_CREATE, FS_REPLACE, FS_MKDIR };

/* The server's caps in bytes: fs_max_file_mb (default 25, at most
 * FS_FILE_MB_MAX: one PostgreSQL value holds at most 1 GiB, and a file
 * travels as one) and fs_session_max_mb (default 100). */
#define FS_FILE_MB_MAX 512
long long fs_cap_file(void);
long long fs_cap_total(void);
/* The largest request body of the file routes: the file cap x 4/3
 * (base64 in JSON) + 64 KiB, as nginx's client_max_body_size for them. */
size_t fs_body_max(void);

/* Write a file (data, len) or, with data NULL, a directory. On success
 * (FS_CREATED, or FS_OK for a replaced file or an existing directory in
 * FS_MKDIR mode) info gets the FileInfo JSON; for a 413 status *limit is
 * the limit in bytes. */
enum fs_status fs_write(const struct fs_ctx *c, const char *path,
			const void *data, size_t len, enum fs_write_mode mode,
			struct buf *info, long long *limit);
/* fs_write of a file of len bytes that read() hands over as they come
 * (a request body as it arrives: at most n bytes into p, <= 0 at its end
 * or on an error): streamed to the database (COPY, sql/018), never held
 * whole. FS_DB_ERROR when read() ended before len bytes (nothing is
 * written). fs_stream.c. */
struct pg_result;
typedef int (*fs_reader)(void *arg, char *p, int n);
enum fs_status fs_write_stream(const struct fs_ctx *c, const char *path,
			       size_t len, fs_reader read, void *arg,
			       enum fs_write_mode mode, struct buf *info,
			       long long *limit);
/* (fs.c, for fs_stream.c) the p_quota JSON of evr_fs_write; the outcome
 * of a (status, info, event) row, which it frees. */
void fs_quota_json(char *out, size_t n);
enum fs_status fs_change_done(const struct fs_ctx *c, struct pg_result *res,
			      struct buf *info, long long *limit);

/* A file's content and FileInfo, or a directory's FileInfo (content NULL).
 * Free with fs_file_release(). The root is a directory. */
struct fs_file {
	void *res; /* PGresult */
	const char *content;
	size_t len;
	const char *info; /* JSON text */
	int is_directory;
};
enum fs_status fs_read(const struct fs_ctx *c, const char *path,
		       struct fs_file *f);
void fs_file_release(struct fs_file *f);

/* Append the JSON array of the FileInfos under directory path (by path;
 * all descendants with recursive). FS_NOT_FOUND, FS_NOT_DIR for a file. */
enum fs_status fs_list(const struct fs_ctx *c, const char *path, int recursive,
		       struct buf *out);
/* The FileInfo of path into info. */
enum fs_status fs_stat(const struct fs_ctx *c, const char *path,
		       struct buf *info);
enum fs_status fs_delete(const struct fs_ctx *c, const char *path,
			 int recursive);
/* Move or copy src to dst (which must not exist); info gets the
 * destination's FileInfo. */
enum fs_status fs_move(const struct fs_ctx *c, const char *src, const char *dst,
		       int copy, struct buf *info, long long *limit);

#define FS_GREP_MAX_MATCHES 1000
#define FS_GREP_LINE_MAX 500   /* bytes of a matched line shown */
#define FS_GREP_SCAN_MAX 65536 /* bytes of a line searched */
#define FS_GREP_SECONDS 5.0    /* then the answer is cut short (API) */
/* Lines of the session's text files matching the pattern (rx.h: PCRE2
 * syntax, which takes POSIX ERE; every line's match bounded), in
 * the files whose path matches the glob path_pattern (NULL = all; a glob
 * without "/" is also tried on the file's name): appends
 * {"data":[{path,matches:[{path,line_number,line}]}],"count":n,
 * "truncated":bool} (files by path; count = all matches; truncated
 * after FS_GREP_MAX_MATCHES matches or FS_GREP_SECONDS, for the source
 * "tool" grep_tool_budget_ms, default 1000) to out.
 * FS_BAD_PATTERN with the reason in e: a 400 for a bad pattern, a 422
 * regex_limit when one line needs more than a limit of rx.h. */
enum fs_status fs_grep(const struct fs_ctx *c, const char *pattern,
		       const char *path_pattern, struct buf *out,
		       struct apierr *e);

/* Append ,"content":...,"encoding":"text"|"base64" for data: text when
 * it is UTF-8 without NUL, else base64. */
void fs_add_content(struct buf *out, const char *data, size_t len);
/* Append a file of fs_read() as its FileInfo with content and encoding. */
void fs_file_json(const struct fs_file *f, struct buf *out);
/* Decode base64 (whitespace ignored, padding optional) into out; -1 if
 * it is not base64. */
int fs_base64_decode(const char *s, size_t len, struct buf *out);

/* The outcome as an error: HTTP status, code and a sentence naming path
 * (and limit for the 413s). FS_OK/FS_CREATED are not errors. */
void fs_error(enum fs_status st, const char *path, long long limit,
	      struct apierr *e);

/* The media type for a file name, by its extension. */
const char *fs_media_type(const char *path);

#endif
