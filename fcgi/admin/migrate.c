/*
 * migrate [--sql-dir DIR]: apply the files DIR/NNN_name.sql (default: the
 * installed sql/) that schema_migrations does not list, in name order,
 * each in its own transaction, under an advisory lock (one migrate at a
 * time across hosts). ARCHITECTURE 9.
 *
 * schema_migrations(version, applied_at, checksum) belongs to this file:
 * it creates the table and adds the checksum column (the SHA-256 of the
 * file, hex) itself. Rows applied before checksums existed get theirs on
 * the first run after the upgrade. Before applying anything it refuses
 * (exit 1, nothing applied):
 *   - an applied file whose checksum changed: the database keeps what the
 *     old text created, so a change to an applied migration must be a new
 *     migration (restore the file, put the change in the next number);
 *   - a number used by two files, except the pair in grandfathered[]
 *     (both applied on every installation; renaming either would apply it
 *     again).
 */
#include "admin.h"
#include "buf.h"
#include "crypto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Files that share their number with another and may: "NNN_a", "NNN_b". */
static const char *const grandfathered[][2] = {
	{"006_metrics", "006_session_fs"},
};

struct mig {
	char *name;        /* NNN_name.sql */
	char version[256]; /* the name without .sql */
	size_t numlen;     /* length of the leading digits */
	char sum[65];      /* SHA-256 of the file, hex */
	struct buf sql;
};

static int cmp_mig(const void *a, const void *b)
{
	return strcmp(((const struct mig *)a)->name,
		      ((const struct mig *)b)->name);
}

static int read_file(const char *path, struct buf *out)
{
	char chunk[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(out, chunk, (size_t)n);
	close(fd);
	return n < 0 ? -1 : 0;
}

/* The NNN_*.sql files of dir, sorted and read; -1 (reported) on error. */
static int list_files(const char *dir, struct mig **out, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct mig *v = NULL;
	size_t n = 0, i;

	if (!d) {
		fprintf(stderr, "everruns-admin: %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len > 4 && !strcmp(de->d_name + len - 4, ".sql") &&
		    de->d_name[0] >= '0' && de->d_name[0] <= '9') {
			struct mig *m;
			v = xrealloc(v, (n + 1) * sizeof(*v));
			m = &v[n++];
			memset(m, 0, sizeof(*m));
			m->name = xstrdup(de->d_name);
			snprintf(m->version, sizeof(m->version), "%.*s",
				 (int)(len - 4), de->d_name);
			m->numlen = strspn(m->name, "0123456789");
		}
	}
	closedir(d);
	qsort(v, n, sizeof(*v), cmp_mig);
	*out = v;
	*count = n;
	for (i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, v[i].name);
		buf_init(&v[i].sql, 0);
		if (read_file(path, &v[i].sql) != 0) {
			fprintf(stderr, "everruns-admin: %s: %s\n", path,
				strerror(errno));
			return -1;
		}
		crypto_sha256_hex(v[i].sql.data, v[i].sql.len, v[i].sum);
	}
	return 0;
}

static int is_grandfathered(const char *a, const char *b)
{
	size_t i;
	for (i = 0; i < sizeof(grandfathered) / sizeof(grandfathered[0]); i++)
		if ((!strcmp(a, grandfathered[i][0]) &&
		     !strcmp(b, grandfathered[i][1])) ||
		    (!strcmp(a, grandfathered[i][1]) &&
		     !strcmp(b, grandfathered[i][0])))
			return 1;
	return 0;
}

/* Two files with one number (sorted: they are neighbours). */
static int check_numbers(const struct mig *v, size_t n)
{
	size_t i;
	int bad = 0;
	for (i = 1; i < n; i++) {
		const struct mig *a = &v[i - 1], *b = &v[i];
		if (a->numlen != b->numlen ||
		    memcmp(a->name, b->name, a->numlen) != 0)
			continue;
		if (is_grandfathered(a->version, b->version))
			continue;
		fprintf(stderr,
			"everruns-admin: %s and %s share the number %.*s: "
			"give the new migration the next free number\n",
			a->name, b->name, (int)a->numlen, a->name);
		bad = 1;
	}
	return bad ? -1 : 0;
}

/*
 * Compare each applied file with its recorded checksum (recording the ones
 * applied before checksums existed); mark applied files (sql emptied).
 * -1 if one changed.
 */
static int check_applied(struct mig *v, size_t n, int *applied)
{
	static const char rows[] =
		"SELECT version, checksum FROM schema_migrations";
	static const char record[] =
		"UPDATE schema_migrations SET checksum = $2 "
		"WHERE version = $1 AND checksum IS NULL";
	PGresult *res = admin_must(db_exec(&admin_db, rows, 0, NULL));
	int r, nr = PQntuples(res), bad = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		applied[i] = 0;
		for (r = 0; r < nr; r++) {
			const char *sum;
			if (strcmp(PQgetvalue(res, r, 0), v[i].version))
				continue;
			applied[i] = 1;
			sum = PQgetvalue(res, r, 1);
			if (PQgetisnull(res, r, 1)) {
				const char *p[2] = {v[i].version, v[i].sum};
				PQclear(admin_must(
					db_exec(&admin_db, record, 2, p)));
			} else if (strcmp(sum, v[i].sum)) {
				fprintf(stderr,
					"everruns-admin: %s was changed after "
					"it was applied (applied: sha256 %.12s, "
					"file: %.12s); an applied migration "
					"never changes: restore the file and "
					"put the change in a new migration\n",
					v[i].name, sum, v[i].sum);
				bad = 1;
			}
			break;
		}
	}
	PQclear(res);
	return bad ? -1 : 0;
}

static int apply(const struct mig *m)
{
	static const char record[] =
		"INSERT INTO schema_migrations (version, checksum) "
		"VALUES ($1, $2)";
	const char *p[2] = {m->version, m->sum};
	PGresult *res;
	int ret = 0;

	if (db_begin(&admin_db) != 0)
		return 1;
	res = PQexec(admin_db.conn, m->sql.data);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "everruns-admin: %s: %s\n", m->name,
			PQresultErrorMessage(res));
		ret = 1;
	}
	PQclear(res);
	if (ret == 0 && (res = db_exec(&admin_db, record, 2, p)))
		PQclear(res);
	else
		ret = 1;
	if (ret == 0 && db_commit(&admin_db) == 0) {
		printf("applied %s\n", m->version);
		return 0;
	}
	db_rollback(&admin_db);
	return 1;
}

int admin_migrate(int argc, char **argv)
{
	static const char lock[] = "SELECT pg_advisory_lock(4242001)";
	static const char unlock[] = "SELECT pg_advisory_unlock(4242001)";
	static const char table[] =
		"CREATE TABLE IF NOT EXISTS schema_migrations ("
		"version text PRIMARY KEY, "
		"applied_at timestamptz NOT NULL DEFAULT now()); "
		"ALTER TABLE schema_migrations "
		"ADD COLUMN IF NOT EXISTS checksum text";
	const char *dir = PKGDATADIR "/sql";
	struct mig *v = NULL;
	size_t n = 0, i;
	int ret = 1, count = 0, *applied = NULL;

	if (argc == 2 && !strcmp(argv[0], "--sql-dir"))
		dir = argv[1];
	else if (argc != 0)
		return 2;
	if (list_files(dir, &v, &n) != 0 || check_numbers(v, n) != 0)
		goto out;
	applied = xmalloc((n ? n : 1) * sizeof(*applied));
	PQclear(admin_must(db_exec(&admin_db, lock, 0, NULL)));
	/* not db_exec: two statements, which a prepared statement cannot be */
	{
		PGresult *res = PQexec(admin_db.conn, table);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			fprintf(stderr, "everruns-admin: schema_migrations: %s",
				PQresultErrorMessage(res));
			PQclear(res);
			goto unlock;
		}
		PQclear(res);
	}
	if (check_applied(v, n, applied) != 0)
		goto unlock;
	ret = 0;
	for (i = 0; i < n && ret == 0; i++) {
		if (applied[i])
			continue;
		ret = apply(&v[i]);
		if (ret == 0)
			count++;
	}
unlock:
	PQclear(admin_must(db_exec(&admin_db, unlock, 0, NULL)));
	if (ret == 0)
		printf("migrations: %d applied, %zu known\n", count, n);
out:
	for (i = 0; i < n; i++) {
		free(v[i].name);
		buf_release(&v[i].sql);
	}
	free(v);
	free(applied);
	return ret;
}
