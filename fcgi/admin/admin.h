/*
 * admin: the commands of everruns-admin that live outside main.c.
 */
#ifndef EVR_ADMIN_H
#define EVR_ADMIN_H

#include "db.h"

/* rotate-server-key: see rotate.c. Exit status: 0 or 1. */
int admin_rotate_server_key(struct db *db, const char *key_path);

#endif
