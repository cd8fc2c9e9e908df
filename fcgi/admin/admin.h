/*
 * admin: everruns-admin, the operator's jobs, run against the configured
 * database (database_url / EVERRUNS_DATABASE_URL) on a direct connection.
 * One file per job:
 *
 *   main.c      the command table (name, arguments, help, handler) and
 *               the dispatch; `everruns-admin` alone prints the table
 *   migrate.c   migrate: sql/NNN_*.sql in order, checksummed
 *   accounts.c  bootstrap, create-org, create-user, create-key, revoke-key
 *   check.c     check-config, list-config, fs-body-limit
 *   rotate.c    rotate-server-key
 *
 * A command gets the arguments after its name and returns the exit
 * status: 0 ok, 1 failure (its message on stderr), 2 usage (main then
 * prints the usage). admin_db is connected before a command runs and
 * closed after it; commands share nothing else.
 */
#ifndef EVR_ADMIN_H
#define EVR_ADMIN_H

#include "db.h"

extern struct db admin_db;

/* server_key_file, default $EVERRUNS_HOME/server.key (static storage). */
const char *admin_server_key_path(void);
/* res, or (NULL: a database error) a message, a rollback and exit(1). */
PGresult *admin_must(PGresult *res);

/* The commands (argc/argv: the arguments after the command's name). */
int admin_migrate(int argc, char **argv);
int admin_bootstrap(int argc, char **argv);
int admin_create_org(int argc, char **argv);
int admin_create_user(int argc, char **argv);
int admin_create_key(int argc, char **argv);
int admin_revoke_key(int argc, char **argv);
int admin_check_config(int argc, char **argv);
int admin_list_config(int argc, char **argv);
int admin_fs_body_limit(int argc, char **argv);

/* rotate-server-key: see rotate.c. Exit status: 0 or 1. */
int admin_rotate_server_key(struct db *db, const char *key_path);

#endif
