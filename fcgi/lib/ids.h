/*
 * ids: public identifiers, `<prefix>_<32 lowercase hex>` where the hex is
 * a UUIDv7. The database stores the UUID; the prefix is added on output
 * (SQL function evr_id) and checked on input here. PostgreSQL accepts the
 * 32 hex digits without dashes as uuid input, so ids_parse() hands back
 * the hex part for use as a query parameter.
 */
#ifndef EVR_IDS_H
#define EVR_IDS_H

#include <stddef.h>

#define IDS_HEX_LEN 32
#define IDS_MAX_LEN 48 /* prefix + '_' + 32 hex + NUL, with room */

/* Returns 1 if `s` is `<prefix>_` followed by exactly 32 lowercase hex
 * digits, and copies those 33 bytes (with NUL) into hex. 0 otherwise. */
int ids_parse(const char *s, const char *prefix, char hex[IDS_HEX_LEN + 1]);
/* Does s start with "<prefix>_"? Used to tell ids from names. */
int ids_has_prefix(const char *s, const char *prefix);
/* n new UUIDv7s (16 bytes each, into u) of the current millisecond and
 * 74 random bits each, from one draw of the CSPRNG. */
void ids_uuid7(unsigned char *u, size_t n);
/* A new UUIDv7 id with the prefix, into out (at least IDS_MAX_LEN). */
void ids_new(const char *prefix, char *out, size_t outlen);
/* The id of a uuid's 16 bytes (its binary form), into out (at least
 * IDS_MAX_LEN; nothing past outlen is written). */
void ids_format(const char *prefix, const unsigned char u[16], char *out,
		size_t outlen);

#endif
