/*
 * catalog_schema: the JSON-Schema subset that validates capability
 * configs (catalog_check_config) and tool-call arguments
 * (catalog_check_value); see catalog.h for the keywords and the shape of
 * its messages. Schemas are only read: json_object_to_json_string() and
 * json_object_get()/put() write into an object, so the validator never
 * calls them on a schema node (the catalog's parsed schemas are shared by
 * every thread).
 */
#include "catalog.h"
#include "utf8.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keywords: type, properties, required, additionalProperties (false or a
 * schema), enum, minimum, maximum, minLength, maxLength, items, minItems,
 * maxItems. Everything else (description, default, ...) is ignored. */

#define PATH_MAX_LEN 256

static struct json_object *kw(struct json_object *schema, const char *name)
{
	struct json_object *v = NULL;
	json_object_object_get_ex(schema, name, &v);
	return v;
}

static int is_integral(struct json_object *v)
{
	double d;
	if (json_object_is_type(v, json_type_int))
		return 1;
	if (!json_object_is_type(v, json_type_double))
		return 0;
	/* 5.0 is an integer in JSON Schema (draft 6 on), as in jx_get_int */
	d = json_object_get_double(v);
	return d == floor(d) && fabs(d) <= 9e15;
}

static int type_ok(const char *type, struct json_object *v)
{
	if (!strcmp(type, "object"))
		return json_object_is_type(v, json_type_object);
	if (!strcmp(type, "array"))
		return json_object_is_type(v, json_type_array);
	if (!strcmp(type, "string"))
		return json_object_is_type(v, json_type_string);
	if (!strcmp(type, "boolean"))
		return json_object_is_type(v, json_type_boolean);
	if (!strcmp(type, "null"))
		return json_object_is_type(v, json_type_null);
	if (!strcmp(type, "integer"))
		return is_integral(v);
	if (!strcmp(type, "number"))
		return json_object_is_type(v, json_type_int) ||
		       json_object_is_type(v, json_type_double);
	return 0;
}

static const char *type_phrase(const char *type)
{
	if (!strcmp(type, "object"))
		return "must be an object";
	if (!strcmp(type, "array"))
		return "must be an array";
	if (!strcmp(type, "string"))
		return "must be a string";
	if (!strcmp(type, "boolean"))
		return "must be a boolean";
	if (!strcmp(type, "null"))
		return "must be null";
	if (!strcmp(type, "integer"))
		return "must be an integer";
	if (!strcmp(type, "number"))
		return "must be a number";
	return "has an unsupported type";
}

/* a JSON value compared with a schema bound: <0, 0, >0 */
static int num_cmp(struct json_object *v, struct json_object *bound)
{
	if (json_object_is_type(v, json_type_int) &&
	    json_object_is_type(bound, json_type_int)) {
		int64_t a = json_object_get_int64(v);
		int64_t b = json_object_get_int64(bound);
		return (a > b) - (a < b);
	} else {
		double a = json_object_get_double(v);
		double b = json_object_get_double(bound);
		return (a > b) - (a < b);
	}
}

/* Schema numbers formatted without json_object_to_json_string, which
 * would cache the text inside the shared (read-only) schema object. */
static void num_fmt(struct json_object *n, char *out, size_t len)
{
	if (json_object_is_type(n, json_type_int))
		snprintf(out, len, "%" PRId64, json_object_get_int64(n));
	else
		snprintf(out, len, "%g", json_object_get_double(n));
}

/* length in code points, as JSON Schema counts it */
static size_t utf8_len(const char *s, size_t n)
{
	size_t i, k = 0;
	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			k++;
	return k;
}

static int enum_err(struct json_object *en, const char *path, struct apierr *e)
{
	char list[200];
	size_t i, n = json_object_array_length(en), used = 0;
	int all_strings = 1;

	list[0] = '\0';
	for (i = 0; i < n; i++) {
		struct json_object *x = json_object_array_get_idx(en, i);
		int w;
		if (!json_object_is_type(x, json_type_string)) {
			all_strings = 0;
			break;
		}
		w = snprintf(list + used, sizeof(list) - used, "%s%s",
			     i ? ", " : "", json_object_get_string(x));
		if (w < 0 || (size_t)w >= sizeof(list) - used) {
			all_strings = 0;
			break;
		}
		used += (size_t)w;
	}
	if (!all_strings)
		return apierr_field(e, path,
				    "must be one of the allowed values");
	return apierr_set(e, 400, "validation_error", "%s: must be one of: %s",
			  path, list);
}

static int check_value(struct json_object *schema, struct json_object *v,
		       const char *path, struct apierr *e);

static int check_object(struct json_object *schema, struct json_object *v,
			const char *path, struct apierr *e)
{
	struct json_object *props = kw(schema, "properties");
	struct json_object *req = kw(schema, "required");
	struct json_object *extra = kw(schema, "additionalProperties");
	char sub[PATH_MAX_LEN];
	size_t i;

	if (req && json_object_is_type(req, json_type_array)) {
		for (i = 0; i < json_object_array_length(req); i++) {
			struct json_object *k =
				json_object_array_get_idx(req, i);
			const char *name;
			if (!json_object_is_type(k, json_type_string))
				continue;
			name = json_object_get_string(k);
			if (!json_object_object_get_ex(v, name, NULL))
				return apierr_set(e, 400, "validation_error",
						  "%s.%s: is required", path,
						  name);
		}
	}
	json_object_object_foreach(v, key, val)
	{
		struct json_object *ps = NULL;
		if (props)
			json_object_object_get_ex(props, key, &ps);
		snprintf(sub, sizeof(sub), "%s.%.*s", path,
			 (int)utf8_cut(key, strlen(key), 64), key);
		if (ps) {
			if (check_value(ps, val, sub, e))
				return -1;
		} else if (extra &&
			   json_object_is_type(extra, json_type_boolean)) {
			if (!json_object_get_boolean(extra))
				return apierr_set(
					e, 400, "validation_error",
					"%s: unknown key '%.*s'", path,
					(int)utf8_cut(key, strlen(key), 64),
					key);
		} else if (extra &&
			   json_object_is_type(extra, json_type_object)) {
			if (check_value(extra, val, sub, e))
				return -1;
		}
	}
	return 0;
}

static int check_array(struct json_object *schema, struct json_object *v,
		       const char *path, struct apierr *e)
{
	struct json_object *items = kw(schema, "items");
	struct json_object *lim;
	char sub[PATH_MAX_LEN];
	size_t i, n = json_object_array_length(v);

	if ((lim = kw(schema, "minItems")) &&
	    (int64_t)n < json_object_get_int64(lim))
		return apierr_set(e, 400, "validation_error",
				  "%s: must have at least %" PRId64 " items",
				  path, json_object_get_int64(lim));
	if ((lim = kw(schema, "maxItems")) &&
	    (int64_t)n > json_object_get_int64(lim))
		return apierr_set(e, 400, "validation_error",
				  "%s: must have at most %" PRId64 " items",
				  path, json_object_get_int64(lim));
	if (!items || !json_object_is_type(items, json_type_object))
		return 0;
	for (i = 0; i < n; i++) {
		snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
		if (check_value(items, json_object_array_get_idx(v, i), sub, e))
			return -1;
	}
	return 0;
}

static int check_value(struct json_object *schema, struct json_object *v,
		       const char *path, struct apierr *e)
{
	struct json_object *type = kw(schema, "type");
	struct json_object *en = kw(schema, "enum");
	struct json_object *lim;
	char num[32];

	if (type && json_object_is_type(type, json_type_string) &&
	    !type_ok(json_object_get_string(type), v))
		return apierr_field(e, path,
				    type_phrase(json_object_get_string(type)));
	if (en && json_object_is_type(en, json_type_array)) {
		size_t i, n = json_object_array_length(en);
		for (i = 0; i < n; i++)
			if (json_object_equal(json_object_array_get_idx(en, i),
					      v))
				break;
		if (i == n)
			return enum_err(en, path, e);
	}
	if (json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_double)) {
		if ((lim = kw(schema, "minimum")) && num_cmp(v, lim) < 0) {
			num_fmt(lim, num, sizeof(num));
			return apierr_set(e, 400, "validation_error",
					  "%s: must be at least %s", path, num);
		}
		if ((lim = kw(schema, "maximum")) && num_cmp(v, lim) > 0) {
			num_fmt(lim, num, sizeof(num));
			return apierr_set(e, 400, "validation_error",
					  "%s: must be at most %s", path, num);
		}
	} else if (json_object_is_type(v, json_type_string)) {
		size_t n = utf8_len(json_object_get_string(v),
				    (size_t)json_object_get_string_len(v));
		if ((lim = kw(schema, "minLength")) &&
		    (int64_t)n < json_object_get_int64(lim))
			return apierr_set(e, 400, "validation_error",
					  "%s: must be at least %" PRId64
					  " characters",
					  path, json_object_get_int64(lim));
		if ((lim = kw(schema, "maxLength")) &&
		    (int64_t)n > json_object_get_int64(lim))
			return apierr_set(e, 400, "validation_error",
					  "%s: must be at most %" PRId64
					  " characters",
					  path, json_object_get_int64(lim));
	} else if (json_object_is_type(v, json_type_object)) {
		return check_object(schema, v, path, e);
	} else if (json_object_is_type(v, json_type_array)) {
		return check_array(schema, v, path, e);
	}
	return 0;
}

int catalog_check_value(struct json_object *schema, struct json_object *v,
			const char *path, struct apierr *e)
{
	return check_value(schema, v, path, e);
}
