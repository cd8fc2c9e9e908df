/*
 * config: settings from one `key = value` file with EVERRUNS_* environment
 * overrides (key `lease_s` is overridden by EVERRUNS_LEASE_S).
 *
 * The file is $EVERRUNS_CONF, else $EVERRUNS_HOME/everruns.conf, else (no
 * EVERRUNS_HOME: an installed system) $(sysconfdir)/everruns/everruns.conf
 * when it exists, else ./var/everruns.conf; a missing
 * file is not an error (every key has its default in config_keys.c).
 * Lines are `key = value`; `#` starts a comment line; surrounding blanks
 * are trimmed. config_load() runs once at start, before threads; after it
 * the table is read-only, so the getters are thread-safe. Returned strings
 * live until config_free().
 *
 * Adding a key:
 *   1. a row in config_keys.c: name, type, default, bounds, one line of
 *      help (the only place its default is written);
 *   2. the key with its default and help in conf/everruns.conf.example
 *      (test_lib's config_example case fails until both agree);
 *   3. read it with config_int / config_num / config_str (a key missing
 *      from the table aborts the program at its first read).
 * config_long(key, def) and friends still read a key that is not in the
 * table yet, with the default at the call; move such a key into the
 * table and switch the call.
 */
#ifndef EVR_CONFIG_H
#define EVR_CONFIG_H

#include <stddef.h>

#include "buf.h"

enum config_type {
	CONFIG_STRING,
	CONFIG_LONG,   /* a decimal integer */
	CONFIG_DOUBLE, /* a number */
	CONFIG_ENUM,   /* one of `choices` */
};

struct config_key {
	const char *name;
	enum config_type type;
	const char *def;     /* as it would be written in the file */
	double min, max;     /* CONFIG_LONG, CONFIG_DOUBLE: inclusive */
	const char *choices; /* CONFIG_ENUM: "a|b|c" */
	const char *help;
};

/* Every key (config_keys.c). */
extern const struct config_key config_keys[];
extern const size_t config_nkeys;
/* The key's row, or NULL. */
const struct config_key *config_key_find(const char *name);

/* The value of a key of the table (environment, file, else its default);
 * a value that does not parse gives the default, and a number outside the
 * key's bounds the nearer bound, with a warning. */
long config_int(const char *key);
double config_num(const char *key);
const char *config_str(const char *key);
/* server_key_file, else <home>/server.key (static storage). */
const char *config_server_key_file(void);

/* Check the configuration against the table: keys of the file that are
 * not in it, values (file or environment) of the wrong type or out of
 * bounds. One line per problem appended to out; returns their number. */
int config_check(struct buf *out);

/* Returns 0, or -1 if the file exists but cannot be read or a line is
 * malformed (the message goes to the log). */
int config_load(const char *path);
/* Parse the text of a config file (used by config_load and tests). */
int config_parse(const char *text);
void config_set(const char *key, const char *value);
const char *config_get(const char *key, const char *def);
long config_long(const char *key, long def);
double config_double(const char *key, double def);
void config_free(void);
/* The state directory: $EVERRUNS_HOME, else the key `home`, else ./var. */
const char *config_home(void);

#endif
