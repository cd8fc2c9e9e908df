/*
 * virtual_bash: the `bash` tool (capability virtual_bash). Unlike the
 * tools of tools.c it runs on the runner's event loop: virtual_bash.c
 * starts the command in the sandbox (../sandbox.h), pumps its output
 * (kept for the result, streamed as tool.output.delta) and ends it;
 * vbash_files.c lays the session's files into the sandbox's directory
 * before and writes every change back after, in one fenced transaction.
 *
 * The turn owns its struct vbash (t->vbash); turn_act.c starts it,
 * turn.c's stop_transfer aborts it (cancel, fence, shutdown), main.c
 * polls its fds.
 */
#ifndef EVR_VIRTUAL_BASH_H
#define EVR_VIRTUAL_BASH_H

#include <json-c/json.h>

#include "buf.h"
#include "db.h"

struct runner;
struct turn;
struct vbash;

/* Start the call (args and cfg borrowed) for the turn's current tool
 * call: NULL with a sentence for the model in error. */
struct vbash *vbash_start(struct runner *r, struct turn *t, const char *call_id,
			  struct json_object *args, struct json_object *cfg,
			  struct buf *error);
/* Read its output, watch its exit and time; when it has ended, write
 * the files back and complete the tool (turn_act_tool_done) and free it
 * (t->vbash = NULL). */
void vbash_step(struct runner *r, struct turn *t);
/* Kill it now and free it (no result, nothing written back). */
void vbash_abort(struct vbash *v);
/* Its fds to poll (room for 3) and when the loop must look at it next
 * (its wall time ends, its disk use is due for a check). */
int vbash_fds(struct vbash *v, int fds[3]);
long long vbash_deadline(struct vbash *v);
/* Send the new output of every running command (or only that turn's)
 * as deltas (one transaction on the deltas connection). */
int vbash_deltas(struct runner *r, struct turn *only);

/* --- vbash_files.c ------------------------------------------------------ */

struct vb_snap;
/* Copy the session's files into dir: the snapshot, or NULL with error. */
struct vb_snap *vbf_lay_in(struct db *db, const char *org, const char *session,
			   const char *dir, struct buf *error);
/* Write back every change of dir since the snapshot in one transaction
 * that holds only while the turn (id, attempt) is still running (fence).
 * Adds "files" {written: [...], deleted: [...]} and "notes" [...] to
 * report; the file.written events go to emit after the commit. 0, or -1
 * with the reason in error (nothing was written). */
int vbf_write_back(struct db *db, const char *org, const char *session,
		   const char *turn, int attempt, const char *dir,
		   struct vb_snap *s, struct json_object *report,
		   void (*emit)(void *arg, const char *type, const char *data),
		   void *arg, struct buf *error);
void vbf_free(struct vb_snap *s);

#endif
