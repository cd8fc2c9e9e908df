/*
 * vbash_files: the session's files in and out of a sandbox's directory
 * (see virtual_bash.h).
 *
 * In: every file and directory of the session is written into the
 * directory; the snapshot remembers, per path, what the API said
 * (updated_at) and what the disk says after the copy (size, inode,
 * ctime: a command cannot set a ctime back, so an equal ctime means an
 * untouched file).
 *
 * Out: the directory is walked without following anything. Written back:
 * new, changed and deleted files and directories. Skipped, each with a
 * note in the result: symbolic links (never followed, never stored),
 * files with more than one hard link, sockets, pipes and devices, names
 * the session's path rules refuse (not UTF-8, control characters, too
 * long...), files over the size limits (the write's own 413 status), and
 * everything below a skipped directory. The changes go in ONE
 * transaction that first locks the session (the event writer's order)
 * and then checks the turn's fence (still running under its attempt, the
 * condition of evr_write_events): a runner that lost its lease writes
 * nothing.
 *
 * A file changed over the API during the command (its updated_at is not
 * the snapshot's, or it appeared or vanished meanwhile): the API's
 * version is kept and the command's change to that path is skipped with a
 * "conflict" note (the first writer wins; the model is told and can redo
 * it). Deletions go deepest first and never recursively, so a directory
 * that got a new file over the API is kept.
 */
#define _GNU_SOURCE
#include "virtual_bash.h"
#include "fs.h"
#include "json.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WALK_MAX_ENTRIES 10000
#define WALK_MAX_DEPTH 64

struct snap_ent {
	char *path;
	int is_dir;
	long long size;
	ino_t ino;
	struct timespec ctime;
	char *updated; /* the API's updated_at */
};

struct vb_snap {
	struct snap_ent *v;
	size_t n, cap;
};

struct cur_ent {
	char *path;
	int is_dir;
	int changed; /* a file whose content is to be written */
	char *data;
	size_t len;
};

struct walk {
	struct cur_ent *v;
	size_t n, cap;
	char **skipped; /* subtrees left alone */
	size_t nskip, capskip;
	struct json_object *notes;
	const struct vb_snap *snap;
	int truncated;
	long long read_total; /* bytes of changed files read */
};

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct snap_ent *)a)->path,
		      ((const struct snap_ent *)b)->path);
}

static struct snap_ent *snap_find(const struct vb_snap *s, const char *path)
{
	struct snap_ent key = {0};
	key.path = (char *)path;
	return s->n ? bsearch(&key, s->v, s->n, sizeof(*s->v), by_path) : NULL;
}

void vbf_free(struct vb_snap *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].path);
		free(s->v[i].updated);
	}
	free(s->v);
	free(s);
}

static void note(struct json_object *notes, const char *fmt, const char *path)
	__attribute__((format(printf, 2, 0)));
static void note(struct json_object *notes, const char *fmt, const char *path)
{
	struct buf line = BUF_INIT;
	buf_init(&line, 0);
	buf_addf(&line, fmt, path);
	json_object_array_add(notes, json_object_new_string(line.data));
	buf_release(&line);
}

/* mkdir -p of dir + path's parents (path: normalized, absolute) */
static int make_parents(const char *dir, const char *path)
{
	char p[PATH_MAX];
	size_t base = strlen(dir);
	snprintf(p, sizeof(p), "%s%s", dir, path);
	for (char *s = p + base + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return 0;
}

struct vb_snap *vbf_lay_in(struct db *db, const char *org, const char *session,
			   const char *dir, struct buf *error)
{
	struct fs_ctx c = {db, org, session, "tool", NULL, NULL};
	struct vb_snap *s = xcalloc(1, sizeof(*s));
	struct buf list = BUF_INIT;
	struct json_object *arr = NULL;
	struct apierr e;
	size_t i, n;

	buf_init(&list, 0);
	if (fs_list(&c, "/", 1, &list) != FS_OK ||
	    !(arr = jx_parse(list.data, list.len, &e)) ||
	    !json_object_is_type(arr, json_type_array)) {
		buf_adds(error, "The session's files could not be read.");
		goto fail;
	}
	n = json_object_array_length(arr);
	s->v = xcalloc(n ? n : 1, sizeof(*s->v));
	for (i = 0; i < n; i++) {
		struct json_object *fi = json_object_array_get_idx(arr, i);
		const char *path = jx_gets(fi, "path");
		struct snap_ent *en = &s->v[s->n];
		char p[PATH_MAX];
		struct stat st;
		struct json_object *d = jx_get(fi, "is_directory");

		if (!path || path[0] != '/')
			continue;
		en->path = xstrdup(path);
		en->updated = xstrdup(jx_gets(fi, "updated_at")
					      ? jx_gets(fi, "updated_at")
					      : "");
		en->is_dir = d && json_object_get_boolean(d);
		s->n++;
		snprintf(p, sizeof(p), "%s%s", dir, path);
		if (make_parents(dir, path) != 0)
			goto io;
		if (en->is_dir) {
			if (mkdir(p, 0755) != 0 && errno != EEXIST)
				goto io;
		} else {
			struct fs_file f;
			int fd;
			ssize_t w = 0;
			if (fs_read(&c, path, &f) != FS_OK) {
				buf_addf(error,
					 "The file %s could not be read.",
					 path);
				goto fail;
			}
			fd = open(p,
				  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					  O_CLOEXEC,
				  0644);
			for (size_t off = 0; fd >= 0 && off < f.len;
			     off += (size_t)w)
				if ((w = write(fd, f.content + off,
					       f.len - off)) <= 0)
					break;
			fs_file_release(&f);
			if (fd < 0 || w < 0 || close(fd) != 0)
				goto io;
		}
		if (lstat(p, &st) != 0)
			goto io;
		en->size = (long long)st.st_size;
		en->ino = st.st_ino;
		en->ctime = st.st_ctim;
	}
	qsort(s->v, s->n, sizeof(*s->v), by_path);
	json_object_put(arr);
	buf_release(&list);
	return s;
io:
	buf_addf(error,
		 "The session's files could not be copied into the "
		 "sandbox: %s.",
		 strerror(errno));
fail:
	json_object_put(arr);
	buf_release(&list);
	vbf_free(s);
	return NULL;
}

/* --- the walk ------------------------------------------------------------*/

static void skip(struct walk *w, const char *path)
{
	if (w->nskip == w->capskip) {
		w->capskip = w->capskip ? w->capskip * 2 : 8;
		w->skipped = xrealloc(w->skipped, w->capskip * sizeof(char *));
	}
	w->skipped[w->nskip++] = xstrdup(path);
}

static int is_skipped(const struct walk *w, const char *path)
{
	for (size_t i = 0; i < w->nskip; i++) {
		size_t k = strlen(w->skipped[i]);
		if (!strncmp(path, w->skipped[i], k) &&
		    (path[k] == '\0' || path[k] == '/'))
			return 1;
	}
	return 0;
}

static struct cur_ent *add(struct walk *w, const char *path, int is_dir)
{
	struct cur_ent *c;
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 64;
		w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
	}
	c = &w->v[w->n++];
	memset(c, 0, sizeof(*c));
	c->path = xstrdup(path);
	c->is_dir = is_dir;
	return c;
}

/* Read a regular file at dirfd/name that is the one fstatat saw: its
 * content into c. -1 on error (noted). */
static int read_file(struct walk *w, int dirfd, const char *name,
		     const struct stat *seen, struct cur_ent *c)
{
	struct stat st;
	int fd = openat(dirfd, name,
			O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	size_t got = 0;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_ino != seen->st_ino) {
		if (fd >= 0)
			close(fd);
		note(w->notes, "%s: skipped (it changed while it was read)",
		     c->path);
		return -1;
	}
	c->data = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, c->data + got, (size_t)st.st_size - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	c->len = got;
	return 0;
}

static void walk_dir(struct walk *w, int dirfd, const char *base, int depth)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(dirfd);

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		char path[FS_PATH_MAX * 2], norm[FS_PATH_MAX + 1];
		struct stat st;
		struct apierr e;
		struct snap_ent *old;
		struct cur_ent *c;
		int n;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", base, de->d_name);
		if (n <= 0 || (size_t)n >= sizeof(path) ||
		    fs_path_normalize(path, (size_t)n, norm, "path", &e) != 0 ||
		    strcmp(norm, path)) {
			/* the name may not be UTF-8: say it escaped */
			struct buf q = BUF_INIT;
			buf_init(&q, 0);
			for (const unsigned char *s =
				     (const unsigned char *)path;
			     *s && q.len < 300; s++)
				if (*s >= 0x20 && *s < 0x7f)
					buf_addch(&q, (char)*s);
				else
					buf_addf(&q, "\\x%02x", *s);
			note(w->notes,
			     "%s: skipped (a name the session's file "
			     "system does not allow)",
			     q.data);
			buf_release(&q);
			if ((size_t)n < sizeof(path))
				skip(w, path);
			continue;
		}
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (w->n >= WALK_MAX_ENTRIES) {
			if (!w->truncated)
				note(w->notes,
				     "%s: skipped, with everything after "
				     "it (too many files)",
				     path);
			w->truncated = 1;
			skip(w, path);
			continue;
		}
		old = snap_find(w->snap, path);
		if (S_ISLNK(st.st_mode)) {
			note(w->notes,
			     "%s: skipped (a symbolic link: never "
			     "followed or stored)",
			     path);
			skip(w, path);
		} else if (S_ISDIR(st.st_mode)) {
			int sub;
			if (depth >= WALK_MAX_DEPTH) {
				note(w->notes, "%s: skipped (nested too deep)",
				     path);
				skip(w, path);
				continue;
			}
			add(w, path, 1);
			sub = openat(dirfd, de->d_name,
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
			if (sub < 0) {
				fchmodat(dirfd, de->d_name, 0700, 0);
				sub = openat(dirfd, de->d_name,
					     O_RDONLY | O_DIRECTORY |
						     O_NOFOLLOW | O_CLOEXEC);
			}
			if (sub >= 0) {
				walk_dir(w, sub, path, depth + 1);
				close(sub);
			} else {
				skip(w, path);
			}
		} else if (S_ISREG(st.st_mode)) {
			if (st.st_nlink > 1) {
				note(w->notes, "%s: skipped (a hard link)",
				     path);
				skip(w, path);
				continue;
			}
			if ((long long)st.st_size > fs_cap_file()) {
				note(w->notes,
				     "%s: not written back (larger than "
				     "the file size limit)",
				     path);
				skip(w, path);
				continue;
			}
			if (!(old && !old->is_dir && old->ino == st.st_ino &&
			      old->size == (long long)st.st_size &&
			      old->ctime.tv_sec == st.st_ctim.tv_sec &&
			      old->ctime.tv_nsec == st.st_ctim.tv_nsec) &&
			    w->read_total + (long long)st.st_size >
				    fs_cap_total()) {
				note(w->notes,
				     "%s: not written back (the command's "
				     "changes pass the size limit of all "
				     "the session's files)",
				     path);
				skip(w, path);
				continue;
			}
			c = add(w, path, 0);
			if (old && !old->is_dir && old->ino == st.st_ino &&
			    old->size == (long long)st.st_size &&
			    old->ctime.tv_sec == st.st_ctim.tv_sec &&
			    old->ctime.tv_nsec == st.st_ctim.tv_nsec)
				continue; /* untouched */
			if (!(st.st_mode & S_IRUSR))
				fchmodat(dirfd, de->d_name,
					 st.st_mode | S_IRUSR, 0);
			c->changed = 1;
			w->read_total += (long long)st.st_size;
			if (read_file(w, dirfd, de->d_name, &st, c) != 0) {
				c->changed = 0;
				skip(w, path);
			}
		} else {
			note(w->notes,
			     "%s: skipped (not a regular file or a "
			     "directory)",
			     path);
			skip(w, path);
		}
	}
	closedir(d);
}

static void walk_free(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->v[i].path);
		free(w->v[i].data);
	}
	free(w->v);
	for (size_t i = 0; i < w->nskip; i++)
		free(w->skipped[i]);
	free(w->skipped);
}

/* --- write-back ----------------------------------------------------------*/

struct evs {
	char **type, **data;
	size_t n, cap;
};

static void collect(void *arg, const char *type, const char *data)
{
	struct evs *e = arg;
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 16;
		e->type = xrealloc(e->type, e->cap * sizeof(char *));
		e->data = xrealloc(e->data, e->cap * sizeof(char *));
	}
	e->type[e->n] = xstrdup(type);
	e->data[e->n++] = xstrdup(data);
}

/* The API's current updated_at of every path ("" for a directory's own
 * is fine: directories compare by kind), inside the transaction. */
static PGresult *current(struct db *db, const char *session)
{
	static const char q[] =
		"SELECT path, is_directory, evr_ts(updated_at) FROM session_files "
		"WHERE session_id = $1 ORDER BY path COLLATE \"C\"";
	const char *p[1] = {session};
	return db_exec(db, q, 1, p);
}

static int cur_find(PGresult *res, const char *path)
{
	int lo = 0, hi = PQntuples(res) - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2,
		    c = strcmp(PQgetvalue(res, mid, 0), path);
		if (!c)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* Did the API change path since the snapshot? */
static int conflict(PGresult *now, const struct vb_snap *s, const char *path)
{
	struct snap_ent *old = snap_find(s, path);
	int k = cur_find(now, path);
	if (!old)
		return k >= 0;
	if (k < 0)
		return 1;
	if (old->is_dir != (PQgetvalue(now, k, 1)[0] == 't'))
		return 1;
	return !old->is_dir && strcmp(old->updated, PQgetvalue(now, k, 2));
}

static int cur_by_path(const void *a, const void *b)
{
	return strcmp(((const struct cur_ent *)a)->path,
		      ((const struct cur_ent *)b)->path);
}

static int by_path_desc(const void *a, const void *b)
{
	return strcmp(*(char *const *)b, *(char *const *)a);
}

int vbf_write_back(struct db *db, const char *org, const char *session,
		   const char *turn, int attempt, const char *dir,
		   struct vb_snap *s, struct json_object *report,
		   void (*emit)(void *arg, const char *type, const char *data),
		   void *arg, struct buf *error)
{
	static const char fence[] =
		"SELECT evr_fs_lock($1::uuid, $2::uuid), EXISTS (SELECT 1 FROM "
		"turns WHERE id = $3 AND attempt = $4::int AND state = "
		"'running' FOR SHARE)";
	struct walk w;
	struct evs ev = {0};
	struct fs_ctx c = {db, org, session, "tool", collect, &ev};
	struct json_object *written = json_object_new_array();
	struct json_object *deleted = json_object_new_array();
	struct json_object *files = jx_obj();
	char **gone = NULL, att[16];
	size_t ngone = 0, i;
	PGresult *now = NULL, *res;
	int root, rc = -1;
	const char *fp[4] = {session, org, turn, att};

	memset(&w, 0, sizeof(w));
	w.notes = json_object_new_array();
	w.snap = s;
	root = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0) {
		buf_adds(error, "The sandbox's files are gone.");
		goto out;
	}
	walk_dir(&w, root, "", 0);
	close(root);

	/* deletions: what the snapshot had and the walk did not see (none
	 * when the walk stopped short) */
	if (w.n)
		qsort(w.v, w.n, sizeof(*w.v), cur_by_path);
	gone = xcalloc(s->n ? s->n : 1, sizeof(char *));
	for (i = 0; i < s->n && !w.truncated; i++) {
		struct cur_ent key, *seen;
		if (is_skipped(&w, s->v[i].path))
			continue;
		key.path = s->v[i].path;
		seen = w.n ? bsearch(&key, w.v, w.n, sizeof(*w.v), cur_by_path)
			   : NULL;
		if (!seen || seen->is_dir != s->v[i].is_dir)
			gone[ngone++] = s->v[i].path;
	}
	if (w.truncated)
		note(w.notes,
		     "%s: no deletion was written back (too many files)", "/");
	qsort(gone, ngone, sizeof(char *), by_path_desc);

	snprintf(att, sizeof(att), "%d", attempt);
	if (db_begin(db) != 0) {
		buf_adds(
			error,
			"The database is unavailable: no file was written back.");
		goto out;
	}
	if (!(res = db_exec(db, fence, 4, fp)))
		goto db_fail;
	if (PQgetvalue(res, 0, 1)[0] != 't') {
		PQclear(res);
		db_rollback(db);
		buf_adds(
			error,
			"The turn no longer runs here: no file was written back.");
		goto out;
	}
	PQclear(res);
	if (!(now = current(db, session)))
		goto db_fail;

	for (i = 0; i < ngone; i++) {
		enum fs_status st;
		if (cur_find(now, gone[i]) < 0)
			continue; /* deleted over the API as well */
		if (conflict(now, s, gone[i])) {
			note(w.notes,
			     "%s: not deleted (conflict: it changed over "
			     "the API during the command; that version "
			     "was kept)",
			     gone[i]);
			continue;
		}
		st = fs_delete(&c, gone[i], 0);
		if (st == FS_DB_ERROR)
			goto db_fail;
		if (st == FS_OK)
			json_object_array_add(deleted,
					      json_object_new_string(gone[i]));
		else if (st == FS_NOT_EMPTY)
			note(w.notes,
			     "%s: not deleted (it holds files added over "
			     "the API during the command)",
			     gone[i]);
	}
	for (i = 0; i < w.n; i++) {
		struct cur_ent *e = &w.v[i];
		struct snap_ent *old = snap_find(s, e->path);
		struct buf info = BUF_INIT;
		long long limit = 0;
		enum fs_status st;

		if (e->is_dir ? (old && old->is_dir) : !e->changed)
			continue;
		if (conflict(now, s, e->path)) {
			note(w.notes,
			     "%s: not written back (conflict: it changed "
			     "over the API during the command; that "
			     "version was kept)",
			     e->path);
			continue;
		}
		buf_init(&info, 0);
		st = fs_write(&c, e->path,
			      e->is_dir ? NULL : (e->data ? e->data : ""),
			      e->len, e->is_dir ? FS_MKDIR : FS_REPLACE, &info,
			      &limit);
		buf_release(&info);
		if (st == FS_DB_ERROR)
			goto db_fail;
		if (st == FS_OK || st == FS_CREATED) {
			json_object_array_add(written,
					      json_object_new_string(e->path));
		} else {
			struct apierr ae;
			char line[FS_PATH_MAX + 400];
			fs_error(st, e->path, limit, &ae);
			snprintf(line, sizeof(line),
				 "%s: not written back (%s)", e->path, ae.msg);
			json_object_array_add(w.notes,
					      json_object_new_string(line));
		}
	}
	PQclear(now);
	now = NULL;
	if (db_commit(db) != 0) {
		buf_adds(error, "The files could not be written back (the "
				"database failed); nothing was written.");
		goto out;
	}
	for (i = 0; i < ev.n; i++)
		emit(arg, ev.type[i], ev.data[i]);
	rc = 0;
	goto out;
db_fail:
	PQclear(now);
	now = NULL;
	db_rollback(db);
	buf_adds(error, "The files could not be written back (the database "
			"failed); nothing was written.");
out:
	json_object_object_add(files, "written", written);
	json_object_object_add(files, "deleted", deleted);
	json_object_object_add(report, "files", files);
	json_object_object_add(report, "notes", w.notes);
	for (i = 0; i < ev.n; i++) {
		free(ev.type[i]);
		free(ev.data[i]);
	}
	free(ev.type);
	free(ev.data);
	free(gone);
	walk_free(&w);
	return rc;
}
