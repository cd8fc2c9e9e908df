/*
 * sandbox: runs one shell command in a bubblewrap sandbox (the bash tool of
 * the virtual_bash capability, fcgi/runner/tools/virtual_bash.c).
 *
 * The command sees: /usr read-only (bash, coreutils, python3 and its
 * standard library; /bin, /lib... as the usual links), a fresh /proc and
 * /dev, a private size-limited /tmp, and its working directory /workspace
 * (a private host directory the caller fills and reads back). No network
 * (its own empty network namespace, loopback included), fresh user, PID,
 * IPC, UTS and cgroup namespaces, no further user namespaces, a new
 * session (no terminal), a clean environment, and rlimits on CPU seconds,
 * address space, processes, open files and file size. It never runs as
 * root: a runner started as root refuses to sandbox anything.
 *
 * Process tree: the runner forks bwrap (PR_SET_PDEATHSIG SIGKILL: it dies
 * with the runner); bwrap runs the command under an init of the new PID
 * namespace with --die-with-parent. Killing bwrap kills that init, and
 * the kernel kills every process of a PID namespace whose init dies, so
 * one SIGKILL ends the whole tree, daemons included; so does the end of
 * the runner, however it ends.
 *
 * Nothing here blocks: the caller polls the stdout/stderr pipes and the
 * pidfd (readable when bwrap exits) from its event loop. Killed children
 * are reaped later by sandbox_reap().
 *
 * Ownership: struct sbx is the caller's; sbx_close() releases its fds.
 */
#ifndef EVR_SANDBOX_H
#define EVR_SANDBOX_H

#include <sys/types.h>

#include "buf.h"

struct sbx_limits {
	long cpu_s;     /* RLIMIT_CPU of each process */
	long wall_s;    /* then the whole tree is killed (caller's timer) */
	long mem_mb;    /* RLIMIT_AS of each process */
	long procs;     /* processes more than the user has (RLIMIT_NPROC) */
	long nofile;    /* RLIMIT_NOFILE */
	long file_mb;   /* RLIMIT_FSIZE */
	long tmp_mb;    /* size of the private /tmp */
	long out_bytes; /* output kept per stream (caller's) */
	long disk_mb;   /* of the working directory (caller's watch) */
};

/* The server's limits (config keys sandbox_*), clamped to their bounds. */
void sandbox_limits(struct sbx_limits *l);

/* Check once at start that bwrap can create its namespaces here (runs
 * `true` in the sandbox, blocking, a few ms); logs the outcome. */
void sandbox_init(void);
/* NULL when the sandbox works, else why it cannot (a sentence). */
const char *sandbox_unavailable(void);

struct sbx {
	pid_t pid;    /* bwrap, or 0 once reaped/handed to the reaper */
	int pidfd;    /* readable when pid exits (-1 if not available) */
	int out, err; /* read ends, non-blocking; -1 once at EOF */
	int exited;   /* reaped: status holds the wait status */
	int status;
};

/* Start `command` (bash -c) in dir, which becomes /workspace. 0, or -1
 * with a sentence in err. */
int sbx_spawn(struct sbx *s, const char *dir, const char *command,
	      const struct sbx_limits *l, struct buf *err);
/* Reap bwrap if it exited (non-blocking): 1 when it has. */
int sbx_poll_exit(struct sbx *s);
/* SIGKILL the tree now (see above) and leave the reaping to
 * sandbox_reap(). */
void sbx_kill(struct sbx *s);
/* The same, and remove dir once bwrap is reaped (its processes are
 * dying: removing it earlier could leave files they still write). 1 if
 * the removal was taken over, 0 if there was nothing to kill. */
int sbx_kill_rm(struct sbx *s, const char *dir);
void sbx_close(struct sbx *s);
/* Reap killed sandboxes (each loop pass). */
void sandbox_reap(void);

/* A private directory for a sandbox's files (mode 0700) under
 * sandbox_dir (default $TMPDIR or /tmp): 0, or -1 with err. path holds
 * PATH_MAX bytes. */
int sandbox_mkdir(char *path, struct buf *err);
/* Bytes (allocated) under dir and, in *entries, how many files and
 * directories; the count stops past max_entries. Never follows links. */
long long sandbox_usage(const char *dir, long max_entries, long *entries);
/* Remove a tree made by sandbox_mkdir (whatever the command left in it;
 * never follows a link). */
void sandbox_rmtree(const char *path);

#endif
