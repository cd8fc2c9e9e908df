/*
 * everruns-admin: the command table and the dispatch (see admin.h for
 * the files of the commands). The table is the usage: adding a command is
 * one row here and its handler in the file of its job.
 */
#include "admin.h"
#include "config.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct db admin_db;

const char *admin_server_key_path(void)
{
	return config_server_key_file();
}

PGresult *admin_must(PGresult *res)
{
	if (!res) {
		fprintf(stderr, "everruns-admin: database error %s\n",
			admin_db.sqlstate);
		db_rollback(&admin_db);
		exit(1);
	}
	return res;
}

static int cmd_rotate(int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		return 2;
	return admin_rotate_server_key(&admin_db, admin_server_key_path());
}

static const struct admin_cmd {
	const char *name;
	const char *args; /* for the usage line */
	const char *help;
	int (*fn)(int argc, char **argv);
	int nodb; /* runs without the database connection */
} cmds[] = {
	{"migrate", "[--sql-dir DIR]",
	 "apply the sql/NNN_*.sql not yet applied (refused: a changed "
	 "applied file, a number used twice)",
	 admin_migrate, 0},
	{"bootstrap", "",
	 "first start: default organization, admin user and key, server key",
	 admin_bootstrap, 0},
	{"create-org", "NAME [--email EMAIL]",
	 "an organization with a user and a key (printed as JSON)",
	 admin_create_org, 0},
	{"create-user", "--org ORG_ID EMAIL [--name NAME]",
	 "a user in an organization", admin_create_user, 0},
	{"create-key",
	 "--org ORG_ID [--user USER_ID] [--name NAME] "
	 "[--role admin|member] [--expires-in-days N]",
	 "an API key (printed once)", admin_create_key, 0},
	{"revoke-key", "KEY_ID", "revoke an API key", admin_revoke_key, 0},
	{"check-config", "",
	 "check the configuration (keys, types, bounds), the database and "
	 "the server key",
	 admin_check_config, 0},
	{"list-config", "", "every configuration key: value, type, default",
	 admin_list_config, 1},
	{"fs-body-limit", "",
	 "KiB of the file routes' request bodies (nginx), from fs_max_file_mb",
	 admin_fs_body_limit, 1},
	{"rotate-server-key", "",
	 "a new server key, provider keys re-encrypted with it", cmd_rotate, 0},
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static int usage(void)
{
	size_t i;
	fprintf(stderr, "usage: everruns-admin COMMAND\n");
	for (i = 0; i < NCMDS; i++)
		fprintf(stderr, "  %s%s%s\n      %s\n", cmds[i].name,
			*cmds[i].args ? " " : "", cmds[i].args, cmds[i].help);
	return 2;
}

int main(int argc, char **argv)
{
	const struct admin_cmd *c = NULL;
	size_t i;
	int ret;

	log_init("admin", LOG_WARN);
	for (i = 0; argc > 1 && i < NCMDS; i++)
		if (!strcmp(argv[1], cmds[i].name))
			c = &cmds[i];
	if (!c)
		return usage();
	if (config_load(NULL) != 0)
		return 1;
	if (c->nodb) {
		ret = c->fn(argc - 2, argv + 2);
		config_free();
		return ret == 2 ? usage() : ret;
	}
	if (db_connect(&admin_db, config_str("database_url"), 0) != 0) {
		fprintf(stderr, "everruns-admin: cannot connect to the "
				"database (database_url)\n");
		db_close(&admin_db);
		return 1;
	}
	ret = c->fn(argc - 2, argv + 2);
	db_close(&admin_db);
	config_free();
	if (ret == 2)
		usage();
	return ret;
}
