/*
 * check-config: the configuration against the table of keys (unknown
 * keys of the file, values of the file or the environment of the wrong
 * type or out of bounds: config_check), the database (main.c has
 * connected by now) and a well-formed server key. list-config: the table
 * (fcgi/lib/config_keys.c) with the value in force of each key.
 * fs-body-limit: nginx's client_max_body_size for the file routes, in
 * KiB, from fs_body_max() (the limit everruns-api itself enforces), for
 * conf/everrunsctl and make install's nginx site.
 */
#include "admin.h"
#include "config.h"
#include "crypto.h"
#include "fs.h"

#include <stdio.h>

static const char *const type_names[] = {
	[CONFIG_STRING] = "string",
	[CONFIG_LONG] = "integer",
	[CONFIG_DOUBLE] = "number",
	[CONFIG_ENUM] = "one of",
};

int admin_check_config(int argc, char **argv)
{
	unsigned char k[CRYPTO_KEY_LEN];
	struct buf problems = BUF_INIT;
	int ret = 0;

	(void)argc;
	(void)argv;
	if (config_check(&problems) > 0) {
		printf("config: %s", problems.data);
		ret = 1;
	} else {
		printf("config: ok\n");
	}
	buf_release(&problems);
	printf("database: ok\n");
	if (crypto_load_key(admin_server_key_path(), k) != 0) {
		printf("server key: missing or malformed (%s)\n",
		       admin_server_key_path());
		return 1;
	}
	printf("server key: ok (%s)\n", admin_server_key_path());
	return ret;
}

int admin_list_config(int argc, char **argv)
{
	size_t i;

	(void)argc;
	(void)argv;
	for (i = 0; i < config_nkeys; i++) {
		const struct config_key *c = &config_keys[i];
		printf("%s = %s\n    %s; %s", c->name,
		       config_get(c->name, c->def), c->help,
		       type_names[c->type]);
		if (c->type == CONFIG_ENUM)
			printf(" %s", c->choices);
		if (c->type == CONFIG_LONG || c->type == CONFIG_DOUBLE)
			printf(" %g..%g", c->min, c->max);
		printf(", default '%s'\n", c->def);
	}
	return 0;
}

int admin_fs_body_limit(int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		return 2;
	printf("%zu\n", fs_body_max() / 1024);
	return 0;
}
