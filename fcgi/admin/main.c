/*
 * everruns-admin: the operator's jobs, run against the configured database
 * (database_url / EVERRUNS_DATABASE_URL) on a direct connection.
 *
 *   migrate [--sql-dir DIR]   apply sql/NNN_*.sql not yet recorded in
 *                             schema_migrations, in order, each in its own
 *                             transaction, under an advisory lock
 *   bootstrap                 first start only: the default organization,
 *                             an admin user and API key (printed once and
 *                             written to $EVERRUNS_HOME/admin-api-key, 0600);
 *                             the server key file if missing
 *   create-org NAME [--email E]   an organization with a user and a key;
 *                             prints {"organization_id","user_id","api_key"}
 *   create-user --org ORG EMAIL [--name N]
 *   create-key --org ORG [--user USR] [--name N] [--role admin|member]
 *              [--expires-in-days N]             prints the new key
 *   revoke-key KEY_ID
 *   check-config              connect, load the server key, report
 *   rotate-server-key         a new server key, every provider key
 *                             re-encrypted with it in one transaction
 *                             (rotate.c)
 *
 * Exit status: 0 ok, 1 failure (message on stderr), 2 usage.
 */
#include "admin.h"
#include "auth.h"
#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "ids.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct db db;

static const char *home(void)
{
	return config_home();
}

static const char *server_key_path(void)
{
	static char def[4096];
	snprintf(def, sizeof(def), "%s/server.key", home());
	return config_get("server_key_file", def);
}

static PGresult *must(PGresult *res)
{
	if (!res) {
		fprintf(stderr, "everruns-admin: database error %s\n",
			db.sqlstate);
		db_rollback(&db);
		exit(1);
	}
	return res;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
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

static int cmd_migrate(const char *dir)
{
	static const char lock[] = "SELECT pg_advisory_lock(4242001)";
	static const char unlock[] = "SELECT pg_advisory_unlock(4242001)";
	static const char table[] =
		"CREATE TABLE IF NOT EXISTS schema_migrations ("
		"version text PRIMARY KEY, "
		"applied_at timestamptz NOT NULL DEFAULT now())";
	static const char applied[] =
		"SELECT 1 FROM schema_migrations WHERE version = $1";
	static const char record[] =
		"INSERT INTO schema_migrations (version) VALUES ($1)";
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, i;
	int ret = 0, count = 0;

	if (!d) {
		fprintf(stderr, "everruns-admin: %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len > 4 && !strcmp(de->d_name + len - 4, ".sql") &&
		    de->d_name[0] >= '0' && de->d_name[0] <= '9') {
			names = xrealloc(names, (n + 1) * sizeof(*names));
			names[n++] = xstrdup(de->d_name);
		}
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);

	PQclear(must(db_exec(&db, lock, 0, NULL)));
	PQclear(must(db_exec(&db, table, 0, NULL)));
	for (i = 0; i < n && ret == 0; i++) {
		char version[256], path[4096];
		const char *p[1] = {version};
		struct buf sql = BUF_INIT;
		PGresult *res;

		snprintf(version, sizeof(version), "%.*s",
			 (int)(strlen(names[i]) - 4), names[i]);
		res = must(db_exec(&db, applied, 1, p));
		int done = PQntuples(res) > 0;
		PQclear(res);
		if (done)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		buf_init(&sql, 0);
		if (read_file(path, &sql) != 0) {
			fprintf(stderr, "everruns-admin: %s: %s\n", path,
				strerror(errno));
			ret = 1;
		} else if (db_begin(&db) != 0) {
			ret = 1;
		} else {
			res = PQexec(db.conn, sql.data);
			if (PQresultStatus(res) != PGRES_COMMAND_OK &&
			    PQresultStatus(res) != PGRES_TUPLES_OK) {
				fprintf(stderr, "everruns-admin: %s: %s\n",
					names[i], PQresultErrorMessage(res));
				ret = 1;
			}
			PQclear(res);
			if (ret == 0 && (res = db_exec(&db, record, 1, p)))
				PQclear(res);
			else
				ret = 1;
			if (ret == 0 && db_commit(&db) == 0) {
				printf("applied %s\n", version);
				count++;
			} else {
				db_rollback(&db);
				ret = 1;
			}
		}
		buf_release(&sql);
	}
	PQclear(must(db_exec(&db, unlock, 0, NULL)));
	if (ret == 0)
		printf("migrations: %d applied, %zu known\n", count, n);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

/* Insert a key for (org, user); key text into `key`. In the caller's tx. */
/* A key with role (NULL: admin) expiring in days (NULL: never). */
static void new_key_role(const char *org, const char *user, const char *name,
			 const char *role, const char *days,
			 char key[AUTH_KEY_LEN + 1], char id[33])
{
	static const char q[] =
		"INSERT INTO api_keys (org_id, user_id, name, key_prefix, "
		"key_hash, role, expires_at) VALUES ($1, $2, $3, $4, $5, "
		"coalesce($6, 'admin'), now() + make_interval(days => $7::int)) "
		"RETURNING replace(id::text, '-', '')";
	char hash[65], prefix[16];
	const char *p[7] = {org, user, name, prefix, hash, role, days};
	PGresult *res;

	auth_new_key(key, hash);
	snprintf(prefix, sizeof(prefix), "%.12s...", key);
	res = must(db_exec(&db, q, 7, p));
	memcpy(id, PQgetvalue(res, 0, 0), 33);
	PQclear(res);
}

static void new_key(const char *org, const char *user, const char *name,
		    char key[AUTH_KEY_LEN + 1], char id[33])
{
	new_key_role(org, user, name, NULL, NULL, key, id);
}

/* Create org + seed + user + key in one transaction. */
static void create_org(const char *name, const char *email, char org[33],
		       char user[33], char key[AUTH_KEY_LEN + 1])
{
	static const char qorg[] =
		"INSERT INTO organizations (name) VALUES ($1) "
		"RETURNING replace(id::text, '-', '')";
	static const char qseed[] = "SELECT evr_seed_org($1)";
	static const char quser[] =
		"INSERT INTO users (org_id, email, name) VALUES ($1, $2, $3) "
		"RETURNING replace(id::text, '-', '')";
	const char *p[3];
	char keyid[33];
	PGresult *res;

	if (db_begin(&db) != 0)
		must(NULL);
	p[0] = name;
	res = must(db_exec(&db, qorg, 1, p));
	memcpy(org, PQgetvalue(res, 0, 0), 33);
	PQclear(res);
	p[0] = org;
	PQclear(must(db_exec(&db, qseed, 1, p)));
	p[1] = email;
	p[2] = "Administrator";
	res = must(db_exec(&db, quser, 3, p));
	memcpy(user, PQgetvalue(res, 0, 0), 33);
	PQclear(res);
	new_key(org, user, "admin", key, keyid);
}

/* Providers for the API keys found in the environment at bootstrap. */
static void env_providers(const char *org)
{
	static const char qp[] =
		"INSERT INTO llm_providers (org_id, name, provider_type, "
		"base_url, api_key_enc) VALUES ($1, $2, $3, $4, $5) "
		"RETURNING id";
	static const char qm[] =
		"INSERT INTO llm_models (org_id, provider_id, model_id, "
		"display_name, capabilities, context_tokens) "
		"VALUES ($1, $2, $3, $4, '{chat,tools,vision}', $5)";
	static const struct {
		const char *env, *name, *type, *url, *model, *display, *ctx;
	} known[] = {
		{"OPENAI_API_KEY", "openai", "openai_completions",
		 "https://api.openai.com/v1", "gpt-4o-mini", "GPT-4o mini",
		 "128000"},
		{"ANTHROPIC_API_KEY", "anthropic", "anthropic",
		 "https://api.anthropic.com", "claude-sonnet-4-5",
		 "Claude Sonnet 4.5", "200000"},
	};
	unsigned char skey[CRYPTO_KEY_LEN];
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		const char *v = getenv(known[i].env);
		struct buf sealed = BUF_INIT;
		PGresult *res;
		const char *p[5];

		if (!v || !*v)
			continue;
		if (crypto_load_key(server_key_path(), skey) != 0)
			must(NULL);
		buf_init(&sealed, 0);
		if (crypto_seal(skey, v, strlen(v), &sealed) != 0)
			must(NULL);
		p[0] = org;
		p[1] = known[i].name;
		p[2] = known[i].type;
		p[3] = known[i].url;
		p[4] = sealed.data;
		res = must(db_exec(&db, qp, 5, p));
		p[1] = PQgetvalue(res, 0, 0);
		p[2] = known[i].model;
		p[3] = known[i].display;
		p[4] = known[i].ctx;
		PQclear(must(db_exec(&db, qm, 5, p)));
		PQclear(res);
		buf_release(&sealed);
		printf("provider %s added from %s\n", known[i].name,
		       known[i].env);
	}
}

static int cmd_bootstrap(void)
{
	static const char any[] = "SELECT 1 FROM organizations LIMIT 1";
	char org[33], user[33], key[AUTH_KEY_LEN + 1], path[4096];
	struct stat st;
	PGresult *res;
	int fd, exists;

	if (stat(server_key_path(), &st) != 0) {
		if (crypto_create_key_file(server_key_path()) != 0)
			return 1;
		printf("server key created: %s\n", server_key_path());
	}
	res = must(db_exec(&db, any, 0, NULL));
	exists = PQntuples(res) > 0;
	PQclear(res);
	if (exists) {
		printf("bootstrap: already done\n");
		return 0;
	}
	create_org("default", "admin@localhost", org, user, key);
	env_providers(org);
	snprintf(path, sizeof(path), "%s/admin-api-key", home());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, key, strlen(key)) < 0 || write(fd, "\n", 1) < 0 ||
	    close(fd) != 0) {
		fprintf(stderr, "everruns-admin: %s: %s\n", path,
			strerror(errno));
		db_rollback(&db);
		return 1;
	}
	if (db_commit(&db) != 0) {
		unlink(path);
		return 1;
	}
	printf("admin API key: %s\n(also in %s; it is not shown again)\n", key,
	       path);
	return 0;
}

static int cmd_create_org(int argc, char **argv)
{
	const char *name = NULL, *email = "admin@localhost";
	char org[33], user[33], key[AUTH_KEY_LEN + 1];
	int i;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--email") && i + 1 < argc)
			email = argv[++i];
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else
			return 2;
	}
	if (!name)
		return 2;
	create_org(name, email, org, user, key);
	if (db_commit(&db) != 0)
		return 1;
	printf("{\"organization_id\":\"org_%s\",\"user_id\":\"usr_%s\","
	       "\"api_key\":\"%s\"}\n",
	       org, user, key);
	return 0;
}

static int parse_id(const char *s, const char *prefix, char hex[33])
{
	if (s && ids_parse(s, prefix, hex))
		return 0;
	fprintf(stderr, "everruns-admin: expected a %s_ id, got '%s'\n", prefix,
		s ? s : "");
	return -1;
}

static int cmd_create_user(int argc, char **argv)
{
	static const char q[] =
		"INSERT INTO users (org_id, email, name) VALUES ($1, $2, $3) "
		"RETURNING evr_id('usr', id)";
	const char *orgs = NULL, *email = NULL, *name = "";
	char org[33];
	const char *p[3];
	PGresult *res;
	int i;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--org") && i + 1 < argc)
			orgs = argv[++i];
		else if (!strcmp(argv[i], "--name") && i + 1 < argc)
			name = argv[++i];
		else if (!email && argv[i][0] != '-')
			email = argv[i];
		else
			return 2;
	}
	if (!orgs || !email)
		return 2;
	if (parse_id(orgs, "org", org) != 0)
		return 1;
	p[0] = org;
	p[1] = email;
	p[2] = name;
	res = must(db_exec(&db, q, 3, p));
	printf("%s\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static int cmd_create_key(int argc, char **argv)
{
	static const char first_user[] =
		"SELECT replace(id::text, '-', '') FROM users WHERE org_id = $1 "
		"ORDER BY created_at LIMIT 1";
	static const char check_user[] =
		"SELECT 1 FROM users WHERE id = $1 AND org_id = $2";
	const char *orgs = NULL, *users = NULL, *name = "cli";
	const char *role = "admin", *days = NULL;
	char *end;
	char org[33], user[33], key[AUTH_KEY_LEN + 1], keyid[33];
	const char *p[2];
	PGresult *res;
	int i, ok;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--org") && i + 1 < argc)
			orgs = argv[++i];
		else if (!strcmp(argv[i], "--user") && i + 1 < argc)
			users = argv[++i];
		else if (!strcmp(argv[i], "--name") && i + 1 < argc)
			name = argv[++i];
		else if (!strcmp(argv[i], "--role") && i + 1 < argc)
			role = argv[++i];
		else if (!strcmp(argv[i], "--expires-in-days") && i + 1 < argc)
			days = argv[++i];
		else
			return 2;
	}
	if (!orgs || (strcmp(role, "admin") && strcmp(role, "member")))
		return 2;
	if (days && (strtol(days, &end, 10) < 1 || *end ||
		     strtol(days, NULL, 10) > 3650))
		return 2;
	if (parse_id(orgs, "org", org) != 0 ||
	    (users && parse_id(users, "usr", user) != 0))
		return 1;
	p[0] = org;
	if (users) {
		p[0] = user;
		p[1] = org;
		res = must(db_exec(&db, check_user, 2, p));
	} else {
		res = must(db_exec(&db, first_user, 1, p));
		if (PQntuples(res))
			memcpy(user, PQgetvalue(res, 0, 0), 33);
	}
	ok = PQntuples(res) > 0;
	PQclear(res);
	if (!ok) {
		fprintf(stderr, "everruns-admin: no such user in that "
				"organization\n");
		return 1;
	}
	new_key_role(org, user, name, role, days, key, keyid);
	printf("%s\n", key);
	return 0;
}

static int cmd_revoke_key(const char *id)
{
	static const char q[] =
		"WITH r AS (UPDATE api_keys SET revoked_at = now() WHERE id IN "
		"(SELECT evr_key_revocation($1, NULL, NULL)) RETURNING id) "
		"SELECT pg_notify('" AUTH_REVOKE_CHANNEL "', "
		"replace(id::text, '-', '')) FROM r";
	char hex[33];
	const char *p[1] = {hex};
	PGresult *res;
	int n;

	if (parse_id(id, "key", hex) != 0)
		return 1;
	res = must(db_exec(&db, q, 1, p));
	n = PQntuples(res);
	PQclear(res);
	if (!n) {
		fprintf(stderr, "everruns-admin: no active key %s\n", id);
		return 1;
	}
	printf("revoked %s\n", id);
	return 0;
}

static int cmd_check_config(void)
{
	unsigned char k[CRYPTO_KEY_LEN];
	printf("database: ok\n");
	if (crypto_load_key(server_key_path(), k) != 0) {
		printf("server key: missing or malformed (%s)\n",
		       server_key_path());
		return 1;
	}
	printf("server key: ok (%s)\n", server_key_path());
	return 0;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: everruns-admin COMMAND\n"
		"  migrate [--sql-dir DIR]\n"
		"  bootstrap\n"
		"  create-org NAME [--email EMAIL]\n"
		"  create-user --org ORG_ID EMAIL [--name NAME]\n"
		"  create-key --org ORG_ID [--user USER_ID] [--name NAME]\n"
		"             [--role admin|member] [--expires-in-days N]\n"
		"  revoke-key KEY_ID\n"
		"  check-config\n"
		"  rotate-server-key\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	int ret;

	log_init("admin", LOG_WARN);
	if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
		return usage();
	if (config_load(NULL) != 0)
		return 1;
	if (db_connect(&db, config_get("database_url", "dbname=everruns"),
		       0) != 0) {
		fprintf(stderr, "everruns-admin: cannot connect to the "
				"database (database_url)\n");
		db_close(&db);
		return 1;
	}
	if (!strcmp(cmd, "migrate")) {
		const char *dir = PKGDATADIR "/sql";
		if (argc == 4 && !strcmp(argv[2], "--sql-dir"))
			dir = argv[3];
		ret = argc == 2 || argc == 4 ? cmd_migrate(dir) : 2;
	} else if (!strcmp(cmd, "bootstrap")) {
		ret = cmd_bootstrap();
	} else if (!strcmp(cmd, "create-org")) {
		ret = cmd_create_org(argc - 2, argv + 2);
	} else if (!strcmp(cmd, "create-user")) {
		ret = cmd_create_user(argc - 2, argv + 2);
	} else if (!strcmp(cmd, "create-key")) {
		ret = cmd_create_key(argc - 2, argv + 2);
	} else if (!strcmp(cmd, "revoke-key") && argc == 3) {
		ret = cmd_revoke_key(argv[2]);
	} else if (!strcmp(cmd, "check-config")) {
		ret = cmd_check_config();
	} else if (!strcmp(cmd, "rotate-server-key") && argc == 2) {
		ret = admin_rotate_server_key(&db, server_key_path());
	} else {
		ret = 2;
	}
	db_close(&db);
	config_free();
	if (ret == 2)
		usage();
	return ret;
}
