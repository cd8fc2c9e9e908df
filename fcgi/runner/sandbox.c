/*
 * sandbox: bwrap argv, limits, spawning and killing (see sandbox.h).
 */
#define _GNU_SOURCE
#include "sandbox.h"
#include "config.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SBX_ARGS_MAX 80

static char unavailable[512];
static int probed;

/* Killed bwrap processes not reaped yet, with the directory to remove
 * once they are (or NULL). */
struct grave {
	pid_t pid;
	char *dir;
};
static struct grave *graveyard;
static size_t ngrave, capgrave;

/* (config_int keeps each within its bounds of config_keys.c) */
void sandbox_limits(struct sbx_limits *l)
{
	l->cpu_s = config_int("sandbox_cpu_s");
	l->wall_s = config_int("sandbox_wall_s");
	l->mem_mb = config_int("sandbox_memory_mb");
	l->procs = config_int("sandbox_max_processes");
	l->nofile = config_int("sandbox_open_files");
	l->file_mb = config_int("sandbox_file_mb");
	l->tmp_mb = config_int("sandbox_tmp_mb");
	l->out_bytes = config_int("sandbox_output_bytes");
	l->disk_mb = config_int("sandbox_disk_mb");
}

const char *sandbox_unavailable(void)
{
	return unavailable[0] ? unavailable : NULL;
}

static const char *bwrap_path(void)
{
	return config_str("sandbox_bwrap");
}

/* argv of bwrap for the command in dir; tmp_size (the /tmp size as
 * text) lives as long as argv. */
static int build_argv(const char *argv[], char tmp_size[32], const char *dir,
		      const char *command, const struct sbx_limits *l)
{
	static const char *const links[] = {"usr/bin", "usr/lib", "usr/lib64",
					    "usr/sbin"};
	static const char *const paths[] = {"/bin", "/lib", "/lib64", "/sbin"};
	int n = 0;
	struct stat st;
#define A(x) (argv[n++] = (x))
	A(bwrap_path());
	A("--unshare-user");
	A("--unshare-ipc");
	A("--unshare-pid");
	A("--unshare-net");
	A("--unshare-uts");
	A("--unshare-cgroup-try");
	A("--disable-userns");
	A("--die-with-parent");
	A("--new-session");
	A("--hostname");
	A("sandbox");
	A("--ro-bind");
	A("/usr");
	A("/usr");
	/* a merged /usr (Debian): the usual links; else the directories */
	for (int i = 0; i < 4; i++) {
		if (lstat(paths[i], &st) != 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			A("--symlink");
			A(links[i]);
		} else {
			A("--ro-bind");
			A(paths[i]);
		}
		A(paths[i]);
	}
	A("--ro-bind-try");
	A("/etc/ld.so.cache");
	A("/etc/ld.so.cache");
	A("--ro-bind-try");
	A("/etc/alternatives");
	A("/etc/alternatives");
	A("--proc");
	A("/proc");
	A("--dev");
	A("/dev");
	snprintf(tmp_size, 32, "%lld", (long long)l->tmp_mb * 1048576);
	A("--size");
	A(tmp_size);
	A("--tmpfs");
	A("/tmp");
	A("--bind");
	A(dir);
	A("/workspace");
	A("--chdir");
	A("/workspace");
	A("--clearenv");
	A("--setenv");
	A("PATH");
	A("/usr/local/bin:/usr/bin:/bin");
	A("--setenv");
	A("HOME");
	A("/workspace");
	A("--setenv");
	A("TMPDIR");
	A("/tmp");
	A("--setenv");
	A("LANG");
	A("C.UTF-8");
	A("--setenv");
	A("TERM");
	A("dumb");
	A("--setenv");
	A("PYTHONDONTWRITEBYTECODE");
	A("1");
	A("--");
	A("/bin/bash");
	A("-c");
	A(command);
	argv[n] = NULL;
#undef A
	return n;
}

static void set_limit(int res, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = {soft, hard};
	if (setrlimit(res, &rl) != 0)
		_exit(126);
}

/* Tasks (threads) of this real user on the host: what the kernel
 * compares RLIMIT_NPROC with, whatever the namespace (every sandbox, and
 * every other program of the user, shares the count). */
static long user_tasks(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	uid_t me = getuid();
	long n = 0;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[300], buf[1024], *p;
		struct stat st;
		ssize_t k;
		int fd;
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 ||
		    st.st_uid != me)
			continue;
		snprintf(path, sizeof(path), "%s/stat", de->d_name);
		fd = openat(dirfd(d), path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		k = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (k <= 0)
			continue;
		buf[k] = '\0';
		/* num_threads: the 18th field after the comm's ")" */
		p = strrchr(buf, ')');
		for (int f = 0; p && f < 18; f++)
			p = strchr(p + 1, ' ');
		n += p ? strtol(p + 1, NULL, 10) : 1;
	}
	closedir(d);
	return n;
}

/* In the forked child: never returns. nproc: RLIMIT_NPROC (the user's
 * tasks now plus the sandbox's allowance). */
static void child(const char *const argv[], int out, int err,
		  const struct sbx_limits *l, pid_t parent, long nproc)
{
	static char *const envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct sigaction sa;
	sigset_t none;
	int fd;

	/* dies with the runner, whatever ends it */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(126);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL); /* SIGPIPE was ignored */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	fd = open("/dev/null", O_RDONLY);
	if (fd < 0 || dup2(fd, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(126);
	/* nothing of the runner's (database and provider sockets) passes */
	if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
		struct rlimit nf;
		long max = getrlimit(RLIMIT_NOFILE, &nf) == 0 &&
					   nf.rlim_cur != RLIM_INFINITY &&
					   nf.rlim_cur < 1048576
				   ? (long)nf.rlim_cur
				   : 65536;
		for (long i = 3; i < max; i++)
			close((int)i);
	}
	set_limit(RLIMIT_CPU, (rlim_t)l->cpu_s, (rlim_t)l->cpu_s + 1);
	set_limit(RLIMIT_AS, (rlim_t)l->mem_mb * 1048576,
		  (rlim_t)l->mem_mb * 1048576);
	set_limit(RLIMIT_NPROC, (rlim_t)nproc, (rlim_t)nproc);
	set_limit(RLIMIT_NOFILE, (rlim_t)l->nofile, (rlim_t)l->nofile);
	set_limit(RLIMIT_FSIZE, (rlim_t)l->file_mb * 1048576,
		  (rlim_t)l->file_mb * 1048576);
	set_limit(RLIMIT_CORE, 0, 0);
	execve(argv[0], (char *const *)argv, envp);
	_exit(127);
}

int sbx_spawn(struct sbx *s, const char *dir, const char *command,
	      const struct sbx_limits *l, struct buf *err)
{
	const char *argv[SBX_ARGS_MAX];
	char tmp_size[32];
	int po[2] = {-1, -1}, pe[2] = {-1, -1};
	pid_t parent = getpid(), pid;
	long nproc;

	memset(s, 0, sizeof(*s));
	s->pidfd = s->out = s->err = -1;
	if (sandbox_unavailable()) {
		buf_adds(err, sandbox_unavailable());
		return -1;
	}
	build_argv(argv, tmp_size, dir, command, l);
	nproc = user_tasks() + l->procs;
	if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
		buf_addf(err, "The sandbox could not start: %s.",
			 strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		buf_addf(err, "The sandbox could not start: %s.",
			 strerror(errno));
		goto fail;
	}
	if (pid == 0)
		child(argv, po[1], pe[1], l, parent, nproc);
	close(po[1]);
	close(pe[1]);
	s->pid = pid;
	s->out = po[0];
	s->err = pe[0];
	fcntl(s->out, F_SETFL, O_NONBLOCK);
	fcntl(s->err, F_SETFL, O_NONBLOCK);
	s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (s->pidfd >= 0)
		fcntl(s->pidfd, F_SETFD, FD_CLOEXEC);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	return -1;
}

int sbx_poll_exit(struct sbx *s)
{
	int st;
	pid_t p;
	if (s->exited)
		return 1;
	if (s->pid <= 0)
		return 0;
	p = waitpid(s->pid, &st, WNOHANG);
	if (p == s->pid || (p < 0 && errno == ECHILD)) {
		s->exited = 1;
		s->status = p == s->pid ? st : 0;
		s->pid = 0;
		return 1;
	}
	return 0;
}

void sbx_kill(struct sbx *s)
{
	sbx_kill_rm(s, NULL);
}

int sbx_kill_rm(struct sbx *s, const char *dir)
{
	if (s->pid <= 0 || s->exited)
		return 0;
	kill(s->pid, SIGKILL);
	if (ngrave == capgrave) {
		capgrave = capgrave ? capgrave * 2 : 16;
		graveyard = xrealloc(graveyard, capgrave * sizeof(*graveyard));
	}
	graveyard[ngrave].pid = s->pid;
	graveyard[ngrave++].dir = dir ? xstrdup(dir) : NULL;
	s->pid = 0;
	return dir != NULL;
}

void sbx_close(struct sbx *s)
{
	if (s->pid > 0 && !s->exited)
		sbx_kill(s);
	if (s->out >= 0)
		close(s->out);
	if (s->err >= 0)
		close(s->err);
	if (s->pidfd >= 0)
		close(s->pidfd);
	s->out = s->err = s->pidfd = -1;
}

void sandbox_reap(void)
{
	size_t i = 0;
	while (i < ngrave) {
		pid_t p = waitpid(graveyard[i].pid, NULL, WNOHANG);
		if (p == graveyard[i].pid || (p < 0 && errno == ECHILD)) {
			if (graveyard[i].dir) {
				sandbox_rmtree(graveyard[i].dir);
				free(graveyard[i].dir);
			}
			graveyard[i] = graveyard[--ngrave];
		} else {
			i++;
		}
	}
}

static const char *base_dir(void)
{
	const char *d = config_str("sandbox_dir");
	if (!*d)
		d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

int sandbox_mkdir(char *path, struct buf *err)
{
	snprintf(path, PATH_MAX, "%s/evr-sbx-%d-XXXXXX", base_dir(),
		 (int)getpid());
	if (!mkdtemp(path)) {
		buf_addf(err, "The sandbox has no room: %s.", strerror(errno));
		return -1;
	}
	return 0;
}

/* Remove dirfd/name (never following links): a directory's contents
 * first, made accessible whatever the command left as its mode. */
static void rm_at(int at, const char *name, int depth)
{
	struct stat st;
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return;
	if (S_ISDIR(st.st_mode) && depth < 256) {
		int fd;
		DIR *d;
		struct dirent *de;
		fchmodat(at, name, 0700, 0);
		fd = openat(at, name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && (d = fdopendir(fd))) {
			while ((de = readdir(d)))
				if (strcmp(de->d_name, ".") &&
				    strcmp(de->d_name, ".."))
					rm_at(dirfd(d), de->d_name, depth + 1);
			closedir(d);
		} else if (fd >= 0) {
			close(fd);
		}
		unlinkat(at, name, AT_REMOVEDIR);
	} else {
		unlinkat(at, name, 0);
	}
}

static void usage_at(int at, const char *name, int depth, long max,
		     long *entries, long long *bytes)
{
	struct stat st;
	if (*entries > max || fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return;
	(*entries)++;
	*bytes += (long long)st.st_blocks * 512;
	if (S_ISDIR(st.st_mode) && depth < 256) {
		int fd =
			openat(at, name,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;
		if (!d) {
			if (fd >= 0)
				close(fd);
			return;
		}
		while ((de = readdir(d)) && *entries <= max)
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				usage_at(dirfd(d), de->d_name, depth + 1, max,
					 entries, bytes);
		closedir(d);
	}
}

long long sandbox_usage(const char *dir, long max_entries, long *entries)
{
	long long bytes = 0;
	*entries = 0;
	usage_at(AT_FDCWD, dir, 0, max_entries, entries, &bytes);
	return bytes;
}

void sandbox_rmtree(const char *path)
{
	rm_at(AT_FDCWD, path, 0);
}

/* Directories left by runners of this host that are gone (a killed
 * runner cannot clean up; its sandbox died with it). */
static void remove_stale(void)
{
	DIR *d = opendir(base_dir());
	struct dirent *de;
	char path[PATH_MAX];
	if (!d)
		return;
	while ((de = readdir(d))) {
		int pid;
		if (sscanf(de->d_name, "evr-sbx-%d-", &pid) != 1 || pid <= 0)
			continue;
		if (pid != (int)getpid() && kill(pid, 0) == 0)
			continue;
		if (pid != (int)getpid() && errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", base_dir(), de->d_name);
		sandbox_rmtree(path);
	}
	closedir(d);
}

void sandbox_init(void)
{
	struct sbx_limits l;
	struct sbx s;
	struct buf err = BUF_INIT;
	char dir[PATH_MAX], out[512];
	ssize_t n = 0;
	long long t0;

	if (probed)
		return;
	probed = 1;
	if (geteuid() == 0) {
		snprintf(unavailable, sizeof(unavailable),
			 "The sandbox is unavailable: the runner runs as root "
			 "and never sandboxes commands as root (run it as an "
			 "unprivileged user).");
		log_warn("virtual_bash: %s", unavailable);
		return;
	}
	if (access(bwrap_path(), X_OK) != 0) {
		snprintf(unavailable, sizeof(unavailable),
			 "The sandbox is unavailable: %s is not installed "
			 "(Debian package bubblewrap).",
			 bwrap_path());
		log_warn("virtual_bash: %s", unavailable);
		return;
	}
	remove_stale();
	sandbox_limits(&l);
	buf_init(&err, 0);
	if (sandbox_mkdir(dir, &err) != 0) {
		snprintf(unavailable, sizeof(unavailable), "%s", err.data);
		goto out;
	}
	if (sbx_spawn(&s, dir, "echo ok", &l, &err) != 0) {
		snprintf(unavailable, sizeof(unavailable), "%s", err.data);
		goto rm;
	}
	/* blocking, once at start: a few ms */
	t0 = time(NULL);
	for (;;) {
		ssize_t k = read(s.err, out + n, sizeof(out) - 1 - (size_t)n);
		if (k > 0) {
			n += k;
			if ((size_t)n >= sizeof(out) - 1)
				break;
			continue;
		}
		if (k == 0)
			break;
		if (time(NULL) - t0 > 10)
			break;
		usleep(2000);
	}
	out[n] = '\0';
	while (!sbx_poll_exit(&s) && time(NULL) - t0 <= 10)
		usleep(2000);
	if (!s.exited || !WIFEXITED(s.status) || WEXITSTATUS(s.status) != 0) {
		char *nl = strchr(out, '\n');
		if (nl)
			*nl = '\0';
		snprintf(unavailable, sizeof(unavailable),
			 "The sandbox is unavailable: bubblewrap cannot create "
			 "its namespaces on this host (%.300s).",
			 out[0] ? out : "no reason given");
	}
	sbx_close(&s);
rm:
	sandbox_rmtree(dir);
out:
	buf_release(&err);
	if (unavailable[0])
		log_warn("virtual_bash: %s", unavailable);
	else
		log_info("virtual_bash: the sandbox works (bubblewrap)");
}
