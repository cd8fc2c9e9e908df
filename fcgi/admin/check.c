/*
 * check-config: what a program needs before it starts: the database
 * (main.c has connected by now) and a well-formed server key.
 */
#include "admin.h"
#include "crypto.h"

#include <stdio.h>

int admin_check_config(int argc, char **argv)
{
	unsigned char k[CRYPTO_KEY_LEN];

	(void)argc;
	(void)argv;
	printf("database: ok\n");
	if (crypto_load_key(admin_server_key_path(), k) != 0) {
		printf("server key: missing or malformed (%s)\n",
		       admin_server_key_path());
		return 1;
	}
	printf("server key: ok (%s)\n", admin_server_key_path());
	return 0;
}
