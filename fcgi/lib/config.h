/*
 * config: settings from one `key = value` file with EVERRUNS_* environment
 * overrides (key `lease_s` is overridden by EVERRUNS_LEASE_S).
 *
 * The file is $EVERRUNS_CONF, else $EVERRUNS_HOME/everruns.conf, else (no
 * EVERRUNS_HOME: an installed system) $(sysconfdir)/everruns/everruns.conf
 * when it exists, else ./var/everruns.conf; a missing
 * file is not an error (every key has a default at its point of use).
 * Lines are `key = value`; `#` starts a comment line; surrounding blanks
 * are trimmed. config_load() runs once at start, before threads; after it
 * the table is read-only, so the getters are thread-safe. Returned strings
 * live until config_free().
 */
#ifndef EVR_CONFIG_H
#define EVR_CONFIG_H

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
