/*
 * json: request-body parsing and typed field access on top of json-c.
 *
 * jx_parse() is the only way request JSON enters the program: strict mode,
 * UTF-8 validated, at most JX_MAX_DEPTH levels of nesting (32 accepted, 33
 * refused). The returned object is owned by the caller (json_object_put).
 *
 * The jx_get_* accessors borrow: strings they return point into the json-c
 * object and live as long as it does. Each returns 0 when the field is
 * absent (output untouched) or valid, 1 when present and valid, and -1
 * with a 400 naming the field in `e` when the type or a limit is wrong.
 * JSON null counts as absent for optional fields.
 */
#ifndef EVR_JSON_H
#define EVR_JSON_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "apierr.h"
#include "buf.h"

#define JX_MAX_DEPTH 32

struct json_object *jx_parse(const char *s, size_t len, struct apierr *e);
/* The same with another nesting bound (the runner reads documents that
 * wrap what the API accepted in a few more levels). */
struct json_object *jx_parse_depth(const char *s, size_t len, int depth,
				   struct apierr *e);

/* Text that parsed (jx_parse) but cannot be stored as PostgreSQL text or
 * jsonb: a \u0000 escape or a lone UTF-16 surrogate escape anywhere, in a
 * key or a value. (json-c decodes escapes after its UTF-8 check, and
 * quietly turns lone surrogates into U+FFFD, so this looks at the text.)
 * -1 with a 400 naming the JSON path of the first such string ("metadata.x",
 * "tags[2]"), else 0. A string member of the top-level object named
 * `exempt` (a field stored as bytes) is not checked. With max_depth > 0,
 * a container nested deeper is refused the same way (to name where). */
int jx_check_text(const char *s, size_t len, const char *exempt, int max_depth,
		  struct apierr *e);

/* Make *o storable and loadable again by jx_parse_depth(max_depth): in
 * every string and key, NUL and invalid UTF-8 become U+FFFD; a container
 * nested deeper than max_depth is replaced by its JSON text as a string.
 * *o may be replaced (the old one is released). Returns how many values
 * were changed. */
int jx_storable(struct json_object **o, int max_depth);

/* A string of at most `max` bytes (0 = no limit). */
int jx_get_str(struct json_object *o, const char *key, size_t max,
	       const char **out, struct apierr *e);
int jx_get_int(struct json_object *o, const char *key, int64_t min, int64_t max,
	       int64_t *out, struct apierr *e);
int jx_get_double(struct json_object *o, const char *key, double min,
		  double max, double *out, struct apierr *e);
int jx_get_bool(struct json_object *o, const char *key, int *out,
		struct apierr *e);
int jx_get_obj(struct json_object *o, const char *key, struct json_object **out,
	       struct apierr *e);
int jx_get_array(struct json_object *o, const char *key, size_t max_items,
		 struct json_object **out, struct apierr *e);
/* The same checks for a value already in hand; `name` is the field name
 * used in the error message (e.g. "tags[3]"). */
int jx_check_str(struct json_object *v, const char *name, size_t max,
		 struct apierr *e);

/* Member `key` of object o (borrowed), or NULL when o is not an object,
 * has no such member, or it is JSON null. */
struct json_object *jx_get(struct json_object *o, const char *key);
/* The same when it is a string (borrowed), else NULL. */
const char *jx_gets(struct json_object *o, const char *key);

/* Building objects: a new empty object; set a string member (NULL value =
 * JSON null) or an integer member. */
struct json_object *jx_obj(void);
void jx_put_str(struct json_object *o, const char *key, const char *v);
void jx_put_int(struct json_object *o, const char *key, long long v);

/* Serialize compactly into b (appends). */
void jx_append(struct buf *b, struct json_object *o);
const char *jx_str(struct json_object *o); /* compact, owned by o */

#endif
