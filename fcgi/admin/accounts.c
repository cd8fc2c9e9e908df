/*
 * accounts: the commands that create what a first request needs and the
 * organizations, users and keys after it: bootstrap (first start: the
 * default organization, an admin user and API key, printed once and
 * written to $EVERRUNS_HOME/admin-api-key with mode 0600; the server key
 * file if missing; providers for OPENAI_API_KEY / ANTHROPIC_API_KEY),
 * create-org, create-user, create-key, revoke-key. See admin.h.
 */
#include "admin.h"
#include "auth.h"
#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "ids.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Insert a key for (org, user) with role (NULL: admin) expiring in days
 * (NULL: never); key text into `key`. In the caller's tx. */
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
	res = admin_must(db_exec(&admin_db, q, 7, p));
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

	if (db_begin(&admin_db) != 0)
		admin_must(NULL);
	p[0] = name;
	res = admin_must(db_exec(&admin_db, qorg, 1, p));
	memcpy(org, PQgetvalue(res, 0, 0), 33);
	PQclear(res);
	p[0] = org;
	PQclear(admin_must(db_exec(&admin_db, qseed, 1, p)));
	p[1] = email;
	p[2] = "Administrator";
	res = admin_must(db_exec(&admin_db, quser, 3, p));
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
		if (crypto_load_key(admin_server_key_path(), skey) != 0)
			admin_must(NULL);
		if (crypto_seal(skey, v, strlen(v), &sealed) != 0)
			admin_must(NULL);
		p[0] = org;
		p[1] = known[i].name;
		p[2] = known[i].type;
		p[3] = known[i].url;
		p[4] = sealed.data;
		res = admin_must(db_exec(&admin_db, qp, 5, p));
		p[1] = PQgetvalue(res, 0, 0);
		p[2] = known[i].model;
		p[3] = known[i].display;
		p[4] = known[i].ctx;
		PQclear(admin_must(db_exec(&admin_db, qm, 5, p)));
		PQclear(res);
		buf_release(&sealed);
		printf("provider %s added from %s\n", known[i].name,
		       known[i].env);
	}
}

int admin_bootstrap(int argc, char **argv)
{
	static const char any[] = "SELECT 1 FROM organizations LIMIT 1";
	char org[33], user[33], key[AUTH_KEY_LEN + 1], path[4096];
	struct stat st;
	PGresult *res;
	int fd, exists;

	(void)argc;
	(void)argv;
	if (stat(admin_server_key_path(), &st) != 0) {
		if (crypto_create_key_file(admin_server_key_path()) != 0)
			return 1;
		printf("server key created: %s\n", admin_server_key_path());
	}
	res = admin_must(db_exec(&admin_db, any, 0, NULL));
	exists = PQntuples(res) > 0;
	PQclear(res);
	if (exists) {
		printf("bootstrap: already done\n");
		return 0;
	}
	create_org("default", "admin@localhost", org, user, key);
	env_providers(org);
	snprintf(path, sizeof(path), "%s/admin-api-key", config_home());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, key, strlen(key)) < 0 ||
	    write(fd, "\n", 1) < 0 || close(fd) != 0) {
		fprintf(stderr, "everruns-admin: %s: %s\n", path,
			strerror(errno));
		db_rollback(&admin_db);
		return 1;
	}
	if (db_commit(&admin_db) != 0) {
		unlink(path);
		return 1;
	}
	printf("admin API key: %s\n(also in %s; it is not shown again)\n", key,
	       path);
	return 0;
}

int admin_create_org(int argc, char **argv)
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
	if (db_commit(&admin_db) != 0)
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

int admin_create_user(int argc, char **argv)
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
	res = admin_must(db_exec(&admin_db, q, 3, p));
	printf("%s\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

int admin_create_key(int argc, char **argv)
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
		res = admin_must(db_exec(&admin_db, check_user, 2, p));
	} else {
		res = admin_must(db_exec(&admin_db, first_user, 1, p));
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

int admin_revoke_key(int argc, char **argv)
{
	static const char q[] =
		"WITH r AS (UPDATE api_keys SET revoked_at = now() WHERE id IN "
		"(SELECT evr_key_revocation($1, NULL, NULL)) RETURNING id) "
		"SELECT pg_notify('" AUTH_REVOKE_CHANNEL "', "
		"replace(id::text, '-', '')) FROM r";
	char hex[33];
	const char *p[1] = {hex};
	PGresult *res;
	const char *id = argv[0];
	int n;

	if (argc != 1)
		return 2;
	if (parse_id(id, "key", hex) != 0)
		return 1;
	res = admin_must(db_exec(&admin_db, q, 1, p));
	n = PQntuples(res);
	PQclear(res);
	if (!n) {
		fprintf(stderr, "everruns-admin: no active key %s\n", id);
		return 1;
	}
	printf("revoked %s\n", id);
	return 0;
}
