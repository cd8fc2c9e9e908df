/*
 * fs: the operations of the session file system (see fs.h). Every change
 * is one call of an evr_fs_* function of sql/006_session_fs.sql, which
 * checks the organization, the limits and the conflicts under the
 * session's row lock and emits the `file.written` event; reads join the
 * session on its id and organization. File content travels as binary
 * parameters and results (no hex or escaping on the way).
 */
#include "fs.h"
#include "config.h"
#include "db.h"
#include "rx.h"
#include "utf8.h"

#include <fnmatch.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MIB (1024LL * 1024)

/* The FileInfo of row f, from its columns (never the whole row, which
 * would drag the content out of TOAST). */
#define INFO                                                                   \
	"evr_fs_info(f.session_id, f.id, f.path, f.is_directory, "             \
	"f.size_bytes, f.created_at, f.updated_at, f.is_readonly)"

long long fs_cap_file(void)
{
	long mb = config_int("fs_max_file_mb"); /* 1..FS_FILE_MB_MAX */
	return (mb < FS_FILE_MB_MAX ? mb : FS_FILE_MB_MAX) * MIB;
}

long long fs_cap_total(void)
{
	return config_int("fs_session_max_mb") * MIB;
}

/* The quotas evr_fs_write and evr_fs_move enforce (sql/012_quotas.sql),
 * as their p_quota JSON. */
void fs_quota_json(char *out, size_t n)
{
	long entries = config_int("fs_session_max_entries");
	long min_kb = config_int("fs_entry_min_kb");
	long org_mb = config_int("org_max_storage_mb");
	long events = config_int("org_max_events");
	snprintf(out, n,
		 "{\"max_entries\":%ld,\"min_charge\":%lld,"
		 "\"org_max_bytes\":%lld,\"org_max_events\":%ld}",
		 entries, (long long)min_kb * 1024, (long long)org_mb * MIB,
		 events);
}

size_t fs_body_max(void)
{
	return (size_t)(fs_cap_file() / 1024 * 4 / 3 + 64) * 1024;
}

static enum fs_status status_of(const char *s)
{
	static const struct {
		const char *name;
		enum fs_status st;
	} map[] = {
		{"created", FS_CREATED},
		{"replaced", FS_OK},
		{"unchanged", FS_OK},
		{"deleted", FS_OK},
		{"moved", FS_OK},
		{"copied", FS_CREATED},
		{"no_session", FS_NO_SESSION},
		{"not_found", FS_NOT_FOUND},
		{"exists", FS_EXISTS},
		{"is_directory", FS_IS_DIR},
		{"not_directory", FS_NOT_DIR},
		{"parent_not_dir", FS_PARENT_NOT_DIR},
		{"not_empty", FS_NOT_EMPTY},
		{"into_itself", FS_INTO_ITSELF},
		{"too_large_file", FS_TOO_LARGE_FILE},
		{"too_large_total", FS_TOO_LARGE_TOTAL},
		{"too_many_entries", FS_TOO_MANY_ENTRIES},
		{"org_storage_full", FS_ORG_STORAGE_FULL},
		{"org_events_full", FS_ORG_EVENTS_FULL},
		{"readonly", FS_READONLY},
	};
	size_t i;
	for (i = 0; s && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].name, s))
			return map[i].st;
	return FS_DB_ERROR;
}

/* Hand the event column of a change's row to c->emit, if any. */
static void emit_event(const struct fs_ctx *c, PGresult *res, int col)
{
	const char *ev = db_val(res, 0, col);
	if (c->emit && ev)
		c->emit(c->emit_arg, "file.written", ev);
}

/* The info column of a (status, info) row: FileInfo or {"limit":n}. */
static void take_info(PGresult *res, struct buf *info, long long *limit)
{
	const char *v = db_val(res, 0, 1);
	const char *l;
	if (!v)
		return;
	if (limit && (l = strstr(v, "\"limit\"")) && (l = strchr(l, ':')))
		*limit = strtoll(l + 1, NULL, 10);
	if (info)
		buf_adds(info, v);
}

/* The outcome of a (status, info, event) row of a change; frees res. */
enum fs_status fs_change_done(const struct fs_ctx *c, PGresult *res,
			      struct buf *info, long long *limit)
{
	enum fs_status st = status_of(db_val(res, 0, 0));
	take_info(res, info, limit);
	emit_event(c, res, 2);
	PQclear(res);
	return st;
}

enum fs_status fs_write(const struct fs_ctx *c, const char *path,
			const void *data, size_t len, enum fs_write_mode mode,
			struct buf *info, long long *limit)
{
	static const char q[] =
		"SELECT status, info::text, event::text FROM evr_fs_write("
		"$1::uuid, $2::uuid, $3, $4::bytea, $5, $6::bigint, "
		"$7::bigint, $8::boolean, $9, $10::jsonb)";
	static const char *const modes[] = {"create", "replace", "mkdir"};
	char capf[24], capt[24], quota[256];
	const char *p[10];
	int lens[10] = {0}, fmts[10] = {0};
	PGresult *res;

	fs_quota_json(quota, sizeof(quota));
	snprintf(capf, sizeof(capf), "%lld", fs_cap_file());
	snprintf(capt, sizeof(capt), "%lld", fs_cap_total());
	p[0] = c->session;
	p[1] = c->org;
	p[2] = path;
	p[3] = data ? (len ? (const char *)data : "") : NULL;
	lens[3] = (int)len;
	fmts[3] = 1;
	p[4] = modes[mode];
	p[5] = capf;
	p[6] = capt;
	p[7] = c->emit ? "false" : "true";
	p[8] = c->source;
	p[9] = quota;
	if (!(res = db_exec_bin(c->db, q, 10, p, lens, fmts)))
		return FS_DB_ERROR;
	return fs_change_done(c, res, info, limit);
}

void fs_file_release(struct fs_file *f)
{
	if (f->res)
		PQclear(f->res);
	memset(f, 0, sizeof(*f));
}

/* the root has no row: its FileInfo is the session's (sql/015) */
#define ROOT_OR_INFO                                                           \
	"CASE WHEN $3 = '/' THEN evr_fs_root_info(s.id, s.created_at)::text "  \
	"WHEN f.path IS NULL THEN NULL ELSE " INFO "::text END"

enum fs_status fs_read(const struct fs_ctx *c, const char *path,
		       struct fs_file *f)
{
	/* binary results: content as raw bytes, the text columns as text */
	static const char q[] =
		"SELECT f.content, " ROOT_OR_INFO " FROM sessions s "
		"LEFT JOIN session_files f ON f.session_id = s.id "
		"AND f.path = $3 WHERE s.id = $1::uuid AND s.org_id = $2::uuid";
	const char *p[3] = {c->session, c->org, path};
	PGresult *res;

	memset(f, 0, sizeof(*f));
	if (!(res = db_exec_res(c->db, q, 3, p, NULL, NULL, 1)))
		return FS_DB_ERROR;
	f->res = res;
	if (PQntuples(res) == 0)
		return FS_NO_SESSION;
	if (!strcmp(path, "/")) {
		f->info = PQgetvalue(res, 0, 1);
		f->is_directory = 1;
		return FS_OK;
	}
	if (PQgetisnull(res, 0, 1))
		return FS_NOT_FOUND;
	f->info = PQgetvalue(res, 0, 1);
	if (PQgetisnull(res, 0, 0)) {
		f->is_directory = 1;
	} else {
		f->content = PQgetvalue(res, 0, 0);
		f->len = (size_t)PQgetlength(res, 0, 0);
	}
	return FS_OK;
}

/* FileInfo and kind of path; is_dir may be NULL. */
static enum fs_status stat_path(const struct fs_ctx *c, const char *path,
				struct buf *info, int *is_dir)
{
	static const char q[] =
		"SELECT " ROOT_OR_INFO ", f.is_directory FROM sessions s "
		"LEFT JOIN session_files f ON f.session_id = s.id "
		"AND f.path = $3 WHERE s.id = $1::uuid AND s.org_id = $2::uuid";
	const char *p[3] = {c->session, c->org, path};
	PGresult *res = db_exec(c->db, q, 3, p);
	enum fs_status st = FS_OK;
	int dir = 1;

	if (!res)
		return FS_DB_ERROR;
	if (PQntuples(res) == 0) {
		st = FS_NO_SESSION;
	} else if (!strcmp(path, "/")) {
		buf_adds(info, db_val(res, 0, 0));
	} else if (!db_val(res, 0, 0)) {
		st = FS_NOT_FOUND;
	} else {
		buf_adds(info, db_val(res, 0, 0));
		dir = !strcmp(db_val(res, 0, 1), "t");
	}
	if (is_dir)
		*is_dir = dir;
	PQclear(res);
	return st;
}

enum fs_status fs_stat(const struct fs_ctx *c, const char *path,
		       struct buf *info)
{
	return stat_path(c, path, info, NULL);
}

enum fs_status fs_list(const struct fs_ctx *c, const char *path, int recursive,
		       struct buf *out)
{
	/* array_to_json, unlike json_agg, writes no spaces */
	static const char q_dir[] =
		"SELECT coalesce(array_to_json(array_agg(" INFO " "
		"ORDER BY f.path)), '[]')::text FROM sessions s "
		"JOIN session_files f ON f.session_id = s.id "
		"WHERE s.id = $1::uuid AND s.org_id = $2::uuid AND f.parent = $3";
	static const char q_tree[] =
		"SELECT coalesce(array_to_json(array_agg(" INFO " "
		"ORDER BY f.path)), '[]')::text FROM sessions s "
		"JOIN session_files f ON f.session_id = s.id "
		"WHERE s.id = $1::uuid AND s.org_id = $2::uuid "
		"AND f.path > $3 || '/' AND f.path < $3 || '0'";
	struct buf info = BUF_INIT;
	enum fs_status st;
	const char *p[3];
	PGresult *res;
	int dir = 0;

	st = stat_path(c, path, &info, &dir);
	if (st == FS_OK && !dir)
		st = FS_NOT_DIR;
	buf_release(&info);
	if (st != FS_OK)
		return st;
	p[0] = c->session;
	p[1] = c->org;
	/* under the root every path is "/..." : the prefix is "" */
	p[2] = recursive && !strcmp(path, "/") ? "" : path;
	if (!(res = db_exec(c->db, recursive ? q_tree : q_dir, 3, p)))
		return FS_DB_ERROR;
	buf_adds(out, db_val(res, 0, 0) ? db_val(res, 0, 0) : "[]");
	PQclear(res);
	return FS_OK;
}

enum fs_status fs_delete(const struct fs_ctx *c, const char *path,
			 int recursive)
{
	static const char q[] =
		"SELECT status, event::text FROM evr_fs_delete($1::uuid, "
		"$2::uuid, $3, $4::boolean, $5::boolean, $6)";
	const char *p[6] = {c->session,
			    c->org,
			    path,
			    recursive ? "true" : "false",
			    c->emit ? "false" : "true",
			    c->source};
	PGresult *res = db_exec(c->db, q, 6, p);
	enum fs_status st;

	if (!res)
		return FS_DB_ERROR;
	st = status_of(db_val(res, 0, 0));
	emit_event(c, res, 1);
	PQclear(res);
	return st;
}

enum fs_status fs_move(const struct fs_ctx *c, const char *src, const char *dst,
		       int copy, struct buf *info, long long *limit)
{
	static const char q[] =
		"SELECT status, info::text, event::text FROM evr_fs_move("
		"$1::uuid, $2::uuid, $3, $4, $5::boolean, $6::bigint, "
		"$7::bigint, $8::boolean, $9, $10::jsonb)";
	char capf[24], capt[24], quota[256];
	const char *p[10] = {c->session,
			     c->org,
			     src,
			     dst,
			     copy ? "true" : "false",
			     capf,
			     capt,
			     c->emit ? "false" : "true",
			     c->source,
			     quota};
	PGresult *res;

	fs_quota_json(quota, sizeof(quota));
	snprintf(capf, sizeof(capf), "%lld", fs_cap_file());
	snprintf(capt, sizeof(capt), "%lld", fs_cap_total());
	if (!(res = db_exec(c->db, q, 10, p)))
		return FS_DB_ERROR;
	return fs_change_done(c, res, info, limit);
}

/* --- grep ----------------------------------------------------------------*/

static int path_matches(const char *glob, const char *path)
{
	const char *name = strrchr(path, '/');
	if (!glob || !*glob)
		return 1;
	if (fnmatch(glob, path, 0) == 0)
		return 1;
	/* "*.md" and "report.md" also name files by their name */
	return !strchr(glob, '/') &&
	       fnmatch(glob, name ? name + 1 : path, 0) == 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Match the lines of one file: {"path","matches":[...]} when it has
 * any (after `sep`, "" or ","); 1 when the match limit or the time
 * budget (deadline) was reached; -1 with e set when one line needs more
 * than a limit of rx (a runaway pattern). */
static int grep_file(struct rx *re, const char *path, const char *data,
		     size_t len, struct buf *line, struct buf *out,
		     size_t *count, const char *sep, double deadline,
		     struct apierr *e)
{
	int m;
	size_t start = 0, no = 0, here = 0;
	int full = 0;

	while (start < len) {
		const char *nl = memchr(data + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - data) : len;
		size_t show, take = end - start;

		/* one match costs at most regex_time_ms, so the clock is
		 * read before each line */
		if (now_s() > deadline) {
			full = 1;
			break;
		}
		no++;
		buf_reset(line);
		/* only the head of a very long line is searched */
		take = utf8_cut(data + start, take, FS_GREP_SCAN_MAX);
		buf_add(line, data + start, take);
		start = end + 1;
		if ((m = rx_match(re, line->data, line->len, e)) < 0) {
			char why[sizeof(e->msg)];
			snprintf(why, sizeof(why), "%s", e->msg);
			apierr_set(e, e->status, e->code,
				   "pattern: line %zu of %s: %s", no, path,
				   why);
			full = -1;
			break;
		}
		if (!m)
			continue;
		if (*count == FS_GREP_MAX_MATCHES) {
			full = 1;
			break;
		}
		show = utf8_cut(line->data, line->len, FS_GREP_LINE_MAX);
		if (!here) {
			buf_addf(out, "%s{\"path\":", sep);
			buf_add_json_str(out, path, strlen(path));
			buf_adds(out, ",\"matches\":[");
		}
		buf_adds(out, here++ ? ",{\"path\":" : "{\"path\":");
		buf_add_json_str(out, path, strlen(path));
		buf_addf(out, ",\"line_number\":%zu,\"line\":", no);
		buf_add_json_str(out, line->data, show);
		buf_addch(out, '}');
		(*count)++;
	}
	if (here && full >= 0)
		buf_adds(out, "]}");
	return full;
}

/* The time a search may take: FS_GREP_SECONDS for the API (one of its
 * threads), grep_tool_budget_ms for the grep_files tool, which runs on
 * the runner's only thread, between the steps of every tenant's turns. */
static double grep_budget_s(const struct fs_ctx *c)
{
	long ms;
	if (!c->source || strcmp(c->source, "tool"))
		return FS_GREP_SECONDS;
	ms = config_int("grep_tool_budget_ms");
	return (double)ms / 1000.0;
}

enum fs_status fs_grep(const struct fs_ctx *c, const char *pattern,
		       const char *path_pattern, struct buf *out,
		       struct apierr *e)
{
	static const char q_paths[] =
		"SELECT f.path FROM sessions s JOIN session_files f "
		"ON f.session_id = s.id WHERE s.id = $1::uuid "
		"AND s.org_id = $2::uuid AND NOT f.is_directory "
		"ORDER BY f.path";
	static const char q_one[] =
		"SELECT f.content FROM sessions s JOIN session_files f "
		"ON f.session_id = s.id WHERE s.id = $1::uuid "
		"AND s.org_id = $2::uuid AND f.path = $3";
	const char *p[3] = {c->session, c->org, NULL};
	struct buf line = BUF_INIT;
	PGresult *res, *one;
	struct rx *re;
	size_t count = 0, before;
	int i, n, full = 0, files = 0;
	double deadline = now_s() + grep_budget_s(c);
	enum fs_status st = FS_OK;

	buf_init(&line, 256);
	st = stat_path(c, "/", &line, NULL);
	buf_release(&line);
	if (st != FS_OK)
		return st;
	if (!(re = rx_compile(pattern, "pattern", e)))
		return FS_BAD_PATTERN;
	if (!(res = db_exec(c->db, q_paths, 2, p))) {
		rx_free(re);
		return FS_DB_ERROR;
	}
	buf_init(&line, 256);
	buf_adds(out, "{\"data\":[");
	n = PQntuples(res);
	for (i = 0; i < n && !full; i++) {
		const char *path = PQgetvalue(res, i, 0);
		if (now_s() > deadline) {
			full = 1;
			break;
		}
		if (!path_matches(path_pattern, path))
			continue;
		p[2] = path;
		if (!(one = db_exec_res(c->db, q_one, 3, p, NULL, NULL, 1))) {
			st = FS_DB_ERROR;
			break;
		}
		/* binary files are not searched */
		if (PQntuples(one) == 1 &&
		    utf8_valid(PQgetvalue(one, 0, 0),
			       (size_t)PQgetlength(one, 0, 0), 0)) {
			before = count;
			full = grep_file(re, path, PQgetvalue(one, 0, 0),
					 (size_t)PQgetlength(one, 0, 0), &line,
					 out, &count, files ? "," : "",
					 deadline, e);
			files += count > before;
		}
		PQclear(one);
	}
	if (full < 0) {
		PQclear(res);
		buf_release(&line);
		rx_free(re);
		return FS_BAD_PATTERN;
	}
	buf_addf(out, "],\"count\":%zu,\"truncated\":%s}", count,
		 full ? "true" : "false");
	PQclear(res);
	buf_release(&line);
	rx_free(re);
	return st;
}

/* --- content and errors --------------------------------------------------*/

void fs_add_content(struct buf *out, const char *data, size_t len)
{
	if (utf8_valid(data, len, 0)) {
		buf_adds(out, ",\"content\":");
		buf_add_json_str(out, data, len);
		buf_adds(out, ",\"encoding\":\"text\"");
		return;
	}
	buf_adds(out, ",\"content\":\"");
	buf_grow(out, (len + 2) / 3 * 4 + 1);
	out->len +=
		(size_t)EVP_EncodeBlock((unsigned char *)out->data + out->len,
					(const unsigned char *)data, (int)len);
	buf_adds(out, "\",\"encoding\":\"base64\"");
}

void fs_file_json(const struct fs_file *f, struct buf *out)
{
	size_t n = strlen(f->info);

	buf_grow(out, n + f->len + 64);
	buf_add(out, f->info, n - 1); /* without its closing brace */
	fs_add_content(out, f->content, f->len);
	buf_addch(out, '}');
}

static int b64_char(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

int fs_base64_decode(const char *s, size_t len, struct buf *out)
{
	struct buf clean = BUF_INIT;
	size_t i, pad = 0;
	int n, rc = -1;

	buf_init(&clean, len + 4);
	for (i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
			continue;
		if (ch == '=') {
			pad++;
			continue;
		}
		if (!b64_char(ch) || pad)
			goto out;
		buf_addch(&clean, ch);
	}
	if (clean.len % 4 == 1 || pad > 2)
		goto out;
	pad = (4 - clean.len % 4) % 4;
	for (i = 0; i < pad; i++)
		buf_addch(&clean, '=');
	buf_grow(out, clean.len / 4 * 3 + 1);
	n = EVP_DecodeBlock((unsigned char *)out->data + out->len,
			    (const unsigned char *)clean.data, (int)clean.len);
	if (n < 0 || (size_t)n < pad)
		goto out;
	out->len += (size_t)n - pad;
	out->data[out->len] = '\0';
	rc = 0;
out:
	buf_release(&clean);
	return rc;
}

void fs_error(enum fs_status st, const char *path, long long limit,
	      struct apierr *e)
{
	switch (st) {
	case FS_NO_SESSION:
		apierr_set(e, 404, "not_found", "Session not found");
		break;
	case FS_NOT_FOUND:
		apierr_set(e, 404, "not_found", "%s: no such file or directory",
			   path);
		break;
	case FS_EXISTS:
		apierr_set(e, 409, "conflict", "%s already exists", path);
		break;
	case FS_IS_DIR:
		apierr_set(e, 409, "conflict", "%s is a directory", path);
		break;
	case FS_NOT_DIR:
		apierr_set(e, 409, "conflict", "%s is a file, not a directory",
			   path);
		break;
	case FS_PARENT_NOT_DIR:
		apierr_set(e, 409, "conflict",
			   "%s: a parent of this path is a file", path);
		break;
	case FS_NOT_EMPTY:
		apierr_set(e, 409, "conflict",
			   "%s is a directory that is not empty (delete it "
			   "recursively)",
			   path);
		break;
	case FS_INTO_ITSELF:
		apierr_set(e, 400, "validation_error",
			   "%s: cannot move or copy a path onto or into itself",
			   path);
		break;
	case FS_TOO_LARGE_FILE:
		apierr_set(e, 413, "payload_too_large",
			   "%s: the file is larger than the session's limit of "
			   "%lld bytes",
			   path, limit);
		break;
	case FS_TOO_LARGE_TOTAL:
		apierr_set(e, 413, "payload_too_large",
			   "%s: the session's files would exceed its total "
			   "limit of %lld bytes (every file or directory "
			   "counts at least fs_entry_min_kb)",
			   path, limit);
		break;
	case FS_TOO_MANY_ENTRIES:
		apierr_set(e, 413, "too_many_entries",
			   "%s: the session would hold more than %lld files "
			   "and directories (fs_session_max_entries)",
			   path, limit);
		break;
	case FS_ORG_STORAGE_FULL:
		apierr_set(e, 413, "org_storage_full",
			   "%s: the organization's files and images would "
			   "exceed %lld bytes (org_max_storage_mb)",
			   path, limit);
		break;
	case FS_ORG_EVENTS_FULL:
		apierr_set(e, 429, "org_event_limit",
			   "%s: the organization holds %lld events, its limit "
			   "(org_max_events); delete sessions to make room",
			   path, limit);
		break;
	case FS_READONLY:
		/* the document's 400 for a read-only file */
		apierr_set(e, 400, "readonly",
			   "%s is read-only (or holds a read-only file)", path);
		break;
	default:
		apierr_set(e, 500, "internal_error", "Internal server error");
		break;
	}
}

const char *fs_media_type(const char *path)
{
	static const struct {
		const char *ext, *type;
	} map[] = {
		{"txt", "text/plain; charset=utf-8"},
		{"md", "text/markdown; charset=utf-8"},
		{"csv", "text/csv; charset=utf-8"},
		{"tsv", "text/tab-separated-values; charset=utf-8"},
		{"json", "application/json"},
		{"jsonl", "application/x-ndjson"},
		{"xml", "application/xml"},
		{"yaml", "application/yaml"},
		{"yml", "application/yaml"},
		{"html", "text/html; charset=utf-8"},
		{"htm", "text/html; charset=utf-8"},
		{"css", "text/css; charset=utf-8"},
		{"js", "text/javascript; charset=utf-8"},
		{"py", "text/x-python; charset=utf-8"},
		{"c", "text/x-c; charset=utf-8"},
		{"h", "text/x-c; charset=utf-8"},
		{"sh", "text/x-shellscript; charset=utf-8"},
		{"log", "text/plain; charset=utf-8"},
		{"png", "image/png"},
		{"jpg", "image/jpeg"},
		{"jpeg", "image/jpeg"},
		{"gif", "image/gif"},
		{"webp", "image/webp"},
		{"svg", "image/svg+xml"},
		{"pdf", "application/pdf"},
		{"zip", "application/zip"},
		{"gz", "application/gzip"},
		{"tar", "application/x-tar"},
	};
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');
	size_t i;

	if (dot && dot[1])
		for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (!strcasecmp(map[i].ext, dot + 1))
				return map[i].type;
	return "application/octet-stream";
}
