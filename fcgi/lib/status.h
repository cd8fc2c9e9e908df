/*
 * status: small status files the long-running programs keep for the
 * operator's metrics (GET /metrics in everruns-api reads them).
 *
 * They live in the run directory (`run_dir`, default $EVERRUNS_HOME/run),
 * next to the pid files everrunsctl or the systemd units write: host-local
 * facts that are not in the database, such as the streams one
 * everruns-sse process holds. A file is "key value" lines, replaced
 * atomically (write + rename), so a reader never sees half of one.
 */
#ifndef EVR_STATUS_H
#define EVR_STATUS_H

#include "buf.h"

/* The run directory (config `run_dir`, else <config_home()>/run). */
const char *status_dir(void);

/* Replace <run_dir>/<name> with text. 0, or -1 (errno set; not logged:
 * a missing directory must not disturb the program). */
int status_write(const char *name, const char *text, size_t len);

/* Read <run_dir>/<name> (at most 64 KiB) into out. 0, or -1. */
int status_read(const char *name, struct buf *out);

/* The value of "key value" line `key` in text, as a long; def if absent. */
long status_value(const char *text, const char *key, long def);

#endif
