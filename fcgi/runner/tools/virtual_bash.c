/*
 * virtual_bash: the `bash` tool on the runner's loop (see virtual_bash.h).
 *
 * A call: the session's files are laid into a private directory
 * (vbash_files.c), the command starts in the sandbox (../sandbox.c), and
 * from then on each loop pass reads what its stdout and stderr pipes hold
 * (non-blocking) and checks its exit and its wall time. Output is kept
 * up to sandbox_output_bytes per stream (the rest is counted, and the
 * result says it was cut) and streamed: every 50 ms tick the new output
 * goes out as tool.output.delta (live_text rows of the tool.started event
 * plus `evd` notifications, sql/016), ephemeral like text deltas.
 *
 * The end: when bwrap exits (the command and everything it started are
 * dead by then: the namespace's init waits for them), the files are
 * written back in one fenced transaction and tool.completed carries
 * exit_code (or signal), stdout, stderr, truncated, timed_out, the files
 * written and deleted and the notes. Past its wall time the whole tree is
 * killed and the file changes are discarded (a killed command's files are
 * half-written by definition). A cancel, a fence or the runner's shutdown
 * kills the tree at once (vbash_abort).
 */
#define _GNU_SOURCE
#include "virtual_bash.h"
#include "../sandbox.h"
#include "../turn_int.h"
#include "json.h"
#include "log.h"
#include "utf8.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define LIVE_PIECE 1000 /* raw bytes per evd chunk (escaped: <= 6000) */

struct seg {
	size_t end; /* of this stream's run in live */
	int err;    /* stderr */
};

struct vbash {
	struct turn *t;
	struct sbx sbx;
	struct sbx_limits lim;
	char dir[PATH_MAX];
	char call_id[128];
	struct vb_snap *snap;
	struct buf out, err; /* raw, at most lim.out_bytes each */
	long long out_total, err_total;
	struct buf live; /* both streams in arrival order, capped */
	struct seg *segs;
	size_t nseg, capseg, seg_at; /* segs[seg_at..] not all sent */
	size_t live_sent, live_off;  /* raw bytes sent; text offset */
	long long m;                 /* seq of the tool.started event */
	long long started_ms, deadline_ms, next_du_ms;
	int timed_out;
	const char *killed; /* why the tree was killed, or NULL */
};

#define DU_EVERY_MS 250
#define DU_MAX_ENTRIES 20000

/* Append s[0..n) to b as UTF-8 without NUL (U+FFFD for what is not);
 * with partial, an incomplete sequence at the end is left: returns the
 * bytes consumed. */
static size_t add_utf8(struct buf *b, const char *s, size_t n, int partial)
{
	static const char repl[] = "\xEF\xBF\xBD";
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80         ? 1
			   : (c >> 5) == 6  ? 2
			   : (c >> 4) == 14 ? 3
			   : (c >> 3) == 30 ? 4
					    : 0;
		if (k && i + k > n && partial) {
			size_t j = i + 1;
			while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80)
				j++;
			if (j == n)
				break; /* the rest may still come */
		}
		if (!k || i + k > n || !utf8_valid(s + i, k, 0)) {
			buf_add(b, repl, 3);
			i++;
			continue;
		}
		buf_add(b, s + i, k);
		i += k;
	}
	return i;
}

static struct json_object *text_of(const struct buf *raw)
{
	struct buf b = BUF_INIT;
	struct json_object *o;
	buf_init(&b, raw->len + 16);
	add_utf8(&b, raw->data, raw->len, 0);
	o = json_object_new_string_len(b.data, (int)b.len);
	buf_release(&b);
	return o;
}

static void tool_event(void *arg, const char *type, const char *data)
{
	writer_event(arg, type, xstrdup(data), 0, 0, EV_NORMAL, NULL);
}

static void vbash_free(struct vbash *v)
{
	/* a killed tree's directory goes when its bwrap is reaped */
	if (!(v->dir[0] && sbx_kill_rm(&v->sbx, v->dir)) && v->dir[0])
		sandbox_rmtree(v->dir);
	sbx_close(&v->sbx);
	vbf_free(v->snap);
	buf_release(&v->out);
	buf_release(&v->err);
	buf_release(&v->live);
	free(v->segs);
	free(v);
}

void vbash_abort(struct vbash *v)
{
	if (!v)
		return;
	vbash_free(v); /* kills the whole tree, now */
}

struct vbash *vbash_start(struct runner *r, struct turn *t, const char *call_id,
			  struct json_object *args, struct json_object *cfg,
			  struct buf *error)
{
	struct vbash *v;
	const char *cmd = jx_gets(args, "command");
	struct json_object *to = jx_get(args, "timeout");
	struct json_object *cto = jx_get(cfg, "timeout_s");
	long wall;

	if (sandbox_unavailable()) {
		buf_adds(error, sandbox_unavailable());
		return NULL;
	}
	if (!cmd || !*cmd || strlen(cmd) > 65536 ||
	    memchr(cmd, 0, strlen(cmd)) || !utf8_valid(cmd, strlen(cmd), 0)) {
		buf_adds(error, "Invalid arguments for bash: command must be a "
				"non-empty UTF-8 text of at most 65536 bytes.");
		return NULL;
	}
	v = xcalloc(1, sizeof(*v));
	v->t = t;
	sandbox_limits(&v->lim);
	wall = v->lim.wall_s;
	if (cto && json_object_is_type(cto, json_type_int) &&
	    json_object_get_int64(cto) > 0 && json_object_get_int64(cto) < wall)
		wall = (long)json_object_get_int64(cto);
	if (to && json_object_is_type(to, json_type_int) &&
	    json_object_get_int64(to) > 0 && json_object_get_int64(to) < wall)
		wall = (long)json_object_get_int64(to);
	v->lim.wall_s = wall;
	snprintf(v->call_id, sizeof(v->call_id), "%s", call_id ? call_id : "");
	buf_init(&v->out, 0);
	buf_init(&v->err, 0);
	buf_init(&v->live, 0);
	v->sbx.pid = 0;
	v->sbx.pidfd = v->sbx.out = v->sbx.err = -1;
	if (sandbox_mkdir(v->dir, error) != 0) {
		v->dir[0] = '\0';
		goto fail;
	}
	if (!(v->snap =
		      vbf_lay_in(&r->tools, t->org, t->session, v->dir, error)))
		goto fail;
	if (sbx_spawn(&v->sbx, v->dir, cmd, &v->lim, error) != 0)
		goto fail;
	v->started_ms = now_ms();
	v->deadline_ms = v->started_ms + wall * 1000;
	log_debug("turn %s: bash started (pid %d, %ld s)", t->id,
		  (int)v->sbx.pid, wall);
	return v;
fail:
	vbash_free(v);
	return NULL;
}

int vbash_fds(struct vbash *v, int fds[3])
{
	int n = 0;
	if (v->sbx.out >= 0)
		fds[n++] = v->sbx.out;
	if (v->sbx.err >= 0)
		fds[n++] = v->sbx.err;
	if (v->sbx.pidfd >= 0 && !v->sbx.exited)
		fds[n++] = v->sbx.pidfd;
	return n;
}

long long vbash_deadline(struct vbash *v)
{
	return v->next_du_ms < v->deadline_ms ? v->next_du_ms : v->deadline_ms;
}

/* Read what fd holds (up to max bytes this pass). */
static void pump(struct vbash *v, int *fd, int is_err, size_t max)
{
	char chunk[READ_CHUNK];
	struct buf *keep = is_err ? &v->err : &v->out;
	long long *total = is_err ? &v->err_total : &v->out_total;
	size_t got = 0;

	while (*fd >= 0 && got < max) {
		ssize_t k = read(*fd, chunk, sizeof(chunk));
		size_t room, take;
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0 || errno != EAGAIN) {
				close(*fd);
				*fd = -1;
			}
			break;
		}
		got += (size_t)k;
		*total += k;
		room = (size_t)v->lim.out_bytes - keep->len;
		take = (size_t)k < room ? (size_t)k : room;
		buf_add(keep, chunk, take);
		/* the live copy: both streams, twice the cap */
		room = 2 * (size_t)v->lim.out_bytes - v->live.len;
		take = (size_t)k < room ? (size_t)k : room;
		if (!take)
			continue;
		buf_add(&v->live, chunk, take);
		if (v->nseg > v->seg_at && v->segs[v->nseg - 1].err == is_err) {
			v->segs[v->nseg - 1].end = v->live.len;
			continue;
		}
		if (v->nseg == v->capseg) {
			v->capseg = v->capseg ? v->capseg * 2 : 16;
			v->segs =
				xrealloc(v->segs, v->capseg * sizeof(*v->segs));
		}
		v->segs[v->nseg].end = v->live.len;
		v->segs[v->nseg++].err = is_err;
	}
}

static const char *sig_name(int sig)
{
	switch (sig) {
	case SIGKILL:
		return "SIGKILL";
	case SIGTERM:
		return "SIGTERM";
	case SIGXCPU:
		return "SIGXCPU";
	case SIGXFSZ:
		return "SIGXFSZ";
	case SIGSEGV:
		return "SIGSEGV";
	case SIGABRT:
		return "SIGABRT";
	case SIGINT:
		return "SIGINT";
	case SIGPIPE:
		return "SIGPIPE";
	default:
		return "signal";
	}
}

/* The result, its outputs cut further until it fits in max bytes. */
static void result_json(struct vbash *v, struct json_object *report, long max,
			struct buf *out)
{
	for (int round = 0; round < 40; round++) {
		int cut = v->out_total > (long long)v->out.len ||
			  v->err_total > (long long)v->err.len;
		json_object_object_add(report, "stdout", text_of(&v->out));
		json_object_object_add(report, "stderr", text_of(&v->err));
		json_object_object_add(report, "truncated",
				       json_object_new_boolean(cut));
		jx_put_int(report, "stdout_bytes", v->out_total);
		jx_put_int(report, "stderr_bytes", v->err_total);
		buf_reset(out);
		jx_append(out, report);
		if ((long)out->len <= max || (!v->out.len && !v->err.len))
			return;
		if (v->out.len >= v->err.len)
			v->out.len /= 2;
		else
			v->err.len /= 2;
	}
}

static void finish(struct runner *r, struct turn *t, struct vbash *v)
{
	struct json_object *report = jx_obj();
	struct buf result = BUF_INIT, error = BUF_INIT;
	enum tool_status st = TOOL_OK;
	int status = v->sbx.status;

	buf_init(&result, 0);
	buf_init(&error, 0);
	vbash_deltas(r, t); /* the last output before the completion */
	if (v->killed) {
		json_object_object_add(report, "exit_code", NULL);
		jx_put_str(report, "signal", "SIGKILL");
		json_object_object_add(report, "timed_out",
				       json_object_new_boolean(v->timed_out));
		json_object_object_add(report, "notes",
				       json_object_new_array());
		json_object_array_add(jx_get(report, "notes"),
				      json_object_new_string(v->killed));
	} else {
		if (WIFEXITED(status)) {
			jx_put_int(report, "exit_code", WEXITSTATUS(status));
		} else {
			json_object_object_add(report, "exit_code", NULL);
			jx_put_str(report, "signal",
				   sig_name(WIFSIGNALED(status)
						    ? WTERMSIG(status)
						    : 0));
		}
		json_object_object_add(report, "timed_out",
				       json_object_new_boolean(0));
		if (!t->dropped &&
		    vbf_write_back(&r->tools, t->org, t->session, t->id,
				   t->attempt, v->dir, v->snap, report,
				   tool_event, t, &error) != 0)
			st = TOOL_ERROR;
	}
	jx_put_int(report, "duration_ms", now_ms() - v->started_ms);
	if (st == TOOL_OK)
		result_json(v, report, r->tool_result_max, &result);
	log_debug("turn %s: bash ended (status %d, %lld+%lld bytes)", t->id,
		  status, v->out_total, v->err_total);
	json_object_put(report);
	t->vbash = NULL;
	vbash_free(v);
	if (!t->dropped && t->phase == PH_ACT)
		turn_act_tool_done(r, t, st, &result, &error);
	buf_release(&result);
	buf_release(&error);
}

void vbash_step(struct runner *r, struct turn *t)
{
	struct vbash *v = t->vbash;
	int exited;

	if (!v)
		return;
	pump(v, &v->sbx.out, 0, 4 * READ_CHUNK);
	pump(v, &v->sbx.err, 1, 4 * READ_CHUNK);
	exited = sbx_poll_exit(&v->sbx);
	if (exited) {
		/* everything in the sandbox is dead: what the pipes hold is
		 * all there is */
		pump(v, &v->sbx.out, 0, (size_t)-1);
		pump(v, &v->sbx.err, 1, (size_t)-1);
		finish(r, t, v);
		return;
	}
	if (now_ms() >= v->deadline_ms) {
		v->timed_out = 1;
		v->killed = "the command passed its time limit: the whole "
			    "process tree was killed and its file changes were "
			    "discarded";
	} else if (now_ms() >= v->next_du_ms) {
		long n;
		long long used = sandbox_usage(v->dir, DU_MAX_ENTRIES, &n);
		v->next_du_ms = now_ms() + DU_EVERY_MS;
		if (used > (long long)v->lim.disk_mb * 1048576 ||
		    n > DU_MAX_ENTRIES)
			v->killed =
				n > DU_MAX_ENTRIES
					? "the command created too many files: the whole "
					  "process tree was killed and its file changes "
					  "were discarded"
					: "the command wrote more than the sandbox's disk "
					  "limit: the whole process tree was killed and "
					  "its file changes were discarded";
	}
	if (v->killed) {
		log_info("turn %s: bash killed: %s", t->id, v->killed);
		/* killed by vbash_free, below */
		pump(v, &v->sbx.out, 0, 4 * READ_CHUNK);
		pump(v, &v->sbx.err, 1, 4 * READ_CHUNK);
		finish(r, t, v);
	}
}

/* --- live output -------------------------------------------------------- */

static void add_piece(struct vbash *v, struct buf *a, const char *text,
		      size_t n, int is_err)
{
	struct json_object *x = jx_obj();
	char num[32];
	jx_put_str(x, "tool_call_id", v->call_id);
	jx_put_str(x, "tool_name", "bash");
	jx_put_str(x, "stream", is_err ? "stderr" : "stdout");
	db_array_add(&a[0], v->t->session);
	snprintf(num, sizeof(num), "%lld", v->m);
	db_array_add(&a[1], num);
	snprintf(num, sizeof(num), "%zu", v->live_off);
	db_array_add(&a[2], num);
	char *s = xstrndup(text, n);
	db_array_add(&a[3], s);
	free(s);
	db_array_add(&a[4], jx_str(x));
	json_object_put(x);
	/* its fence: written only while the turn runs under this attempt */
	db_array_add(&a[5], v->t->id);
	snprintf(num, sizeof(num), "%d", v->t->attempt);
	db_array_add(&a[6], num);
	v->live_off += n;
}

/* The tool.started event's sequence, once written (the deltas continue
 * it, as text deltas continue output.message.started). */
static void find_m(struct runner *r, struct vbash *v)
{
	static const char q[] =
		"SELECT seq FROM events WHERE session_id = $1 AND turn_id = $2 "
		"AND type = 'tool.started' AND data->'tool_call'->>'id' = $3 "
		"ORDER BY seq DESC LIMIT 1";
	const char *p[3] = {v->t->session, v->t->id, v->call_id};
	PGresult *res = db_exec(&r->deltas, q, 3, p);
	if (res && PQntuples(res) == 1)
		v->m = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
}

static void collect(struct vbash *v, struct buf *a)
{
	int running = !v->sbx.exited && !v->killed;
	while (v->seg_at < v->nseg) {
		struct seg *s = &v->segs[v->seg_at];
		struct buf text = BUF_INIT;
		size_t used, k = 0;
		buf_init(&text, 0);
		used = add_utf8(&text, v->live.data + v->live_sent,
				s->end - v->live_sent,
				running && v->seg_at == v->nseg - 1);
		v->live_sent += used;
		while (k < text.len) { /* pieces that end on a character */
			size_t n = text.len - k < LIVE_PIECE ? text.len - k
							     : LIVE_PIECE;
			while (k + n < text.len &&
			       ((unsigned char)text.data[k + n] & 0xC0) == 0x80)
				n--;
			add_piece(v, a, text.data + k, n, s->err);
			k += n;
		}
		buf_release(&text);
		if (v->live_sent < s->end)
			break; /* an incomplete character waits */
		v->seg_at++;
	}
}

int vbash_deltas(struct runner *r, struct turn *only)
{
	static const char sql[] =
		"SELECT evr_write_tool_deltas($1::uuid[], "
		"$2::bigint[], $3::int[], $4::text[], $5::json[], "
		"$6::uuid[], $7::int[])";
	struct buf a[7];
	const char *p[7];
	struct turn *t;
	int k, ret = 0;

	for (k = 0; k < 7; k++)
		buf_init(&a[k], 0);
	for (t = only ? only : r->turns; t; t = only ? NULL : t->next) {
		struct vbash *v = t->vbash;
		if (t->dropped || !v || v->seg_at >= v->nseg)
			continue;
		if (!v->m)
			find_m(r, v);
		if (v->m > 0)
			collect(v, a);
	}
	if (!a[0].len)
		goto out;
	for (k = 0; k < 7; k++) {
		db_array_end(&a[k]);
		p[k] = a[k].data;
	}
	ret = db_exec_nosync(&r->deltas, sql, 7, p);
out:
	for (k = 0; k < 7; k++)
		buf_release(&a[k]);
	return ret;
}
