#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* json-c's strict mode still takes 'single-quoted' strings; JSON does
 * not. A quote outside any double-quoted string is one of those. */
static int has_single_quote(const char *s, size_t len)
{
	size_t i;
	int in_str = 0;
	for (i = 0; i < len; i++) {
		if (in_str) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_str = 0;
		} else if (s[i] == '"') {
			in_str = 1;
		} else if (s[i] == '\'') {
			return 1;
		}
	}
	return 0;
}

struct json_object *jx_parse(const char *s, size_t len, struct apierr *e)
{
	struct json_tokener *tok;
	struct json_object *o = NULL;
	enum json_tokener_error jerr;

	if (len > INT32_MAX) {
		apierr_set(e, 413, "payload_too_large", "Request body too large");
		return NULL;
	}
	if (has_single_quote(s, len)) {
		apierr_set(e, 400, "invalid_json",
			   "Invalid JSON: strings must use double quotes");
		return NULL;
	}
	/* json-c's depth counts nested containers: JX_MAX_DEPTH levels are
	 * accepted, one more is refused */
	tok = json_tokener_new_ex(JX_MAX_DEPTH);
	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
					    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, s, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_success &&
	    json_tokener_get_parse_end(tok) < len) {
		/* trailing bytes: only whitespace is allowed */
		size_t i;
		for (i = json_tokener_get_parse_end(tok); i < len; i++) {
			if (!strchr(" \t\r\n", s[i])) {
				jerr = json_tokener_error_parse_unexpected;
				break;
			}
		}
	} else if (jerr == json_tokener_continue) {
		jerr = json_tokener_error_parse_eof;
	}
	if (jerr != json_tokener_success) {
		json_object_put(o);
		o = NULL;
		if (jerr == json_tokener_error_depth)
			apierr_set(e, 400, "invalid_json",
				   "Invalid JSON: nesting deeper than %d",
				   JX_MAX_DEPTH);
		else if (jerr == json_tokener_error_parse_utf8_string)
			apierr_set(e, 400, "invalid_json",
				   "Invalid JSON: invalid UTF-8");
		else
			apierr_set(e, 400, "invalid_json", "Invalid JSON: %s",
				   json_tokener_error_desc(jerr));
	}
	json_tokener_free(tok);
	return o;
}

static struct json_object *field(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;
	if (!o || !json_object_is_type(o, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return v; /* NULL for JSON null as well */
}

int jx_check_str(struct json_object *v, const char *name, size_t max,
		 struct apierr *e)
{
	if (!json_object_is_type(v, json_type_string))
		return apierr_field(e, name, "must be a string");
	if (max && (size_t)json_object_get_string_len(v) > max)
		return apierr_set(e, 400, "validation_error",
				  "%s: longer than %zu bytes", name, max);
	/* a \u0000 would silently cut the text short in C and SQL */
	if (strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v))
		return apierr_field(e, name, "must not contain NUL characters");
	return 0;
}

int jx_get_str(struct json_object *o, const char *key, size_t max,
	       const char **out, struct apierr *e)
{
	struct json_object *v = field(o, key);
	if (!v)
		return 0;
	if (jx_check_str(v, key, max, e))
		return -1;
	*out = json_object_get_string(v);
	return 1;
}

int jx_get_int(struct json_object *o, const char *key, int64_t min,
	       int64_t max, int64_t *out, struct apierr *e)
{
	struct json_object *v = field(o, key);
	int64_t n;
	if (!v)
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		n = json_object_get_int64(v);
	} else if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);
		if (d != floor(d) || d < -9e18 || d > 9e18)
			return apierr_field(e, key, "must be an integer");
		n = (int64_t)d;
	} else {
		return apierr_field(e, key, "must be an integer");
	}
	if (n < min || n > max)
		return apierr_set(e, 400, "validation_error",
				  "%s: must be between %lld and %lld", key,
				  (long long)min, (long long)max);
	*out = n;
	return 1;
}

int jx_get_double(struct json_object *o, const char *key, double min,
		  double max, double *out, struct apierr *e)
{
	struct json_object *v = field(o, key);
	double d;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int) &&
	    !json_object_is_type(v, json_type_double))
		return apierr_field(e, key, "must be a number");
	d = json_object_get_double(v);
	if (!(d >= min && d <= max))
		return apierr_set(e, 400, "validation_error",
				  "%s: must be between %g and %g", key, min,
				  max);
	*out = d;
	return 1;
}

int jx_get_bool(struct json_object *o, const char *key, int *out,
		struct apierr *e)
{
	struct json_object *v = field(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return apierr_field(e, key, "must be a boolean");
	*out = json_object_get_boolean(v);
	return 1;
}

int jx_get_obj(struct json_object *o, const char *key,
	       struct json_object **out, struct apierr *e)
{
	struct json_object *v = field(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return apierr_field(e, key, "must be an object");
	*out = v;
	return 1;
}

int jx_get_array(struct json_object *o, const char *key, size_t max_items,
		 struct json_object **out, struct apierr *e)
{
	struct json_object *v = field(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return apierr_field(e, key, "must be an array");
	if (max_items && json_object_array_length(v) > max_items)
		return apierr_set(e, 400, "validation_error",
				  "%s: at most %zu items", key, max_items);
	*out = v;
	return 1;
}

struct json_object *jx_get(struct json_object *o, const char *key)
{
	return field(o, key);
}

const char *jx_gets(struct json_object *o, const char *key)
{
	struct json_object *v = field(o, key);
	return v && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

struct json_object *jx_obj(void)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		abort();
	return o;
}

void jx_put_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, v ? json_object_new_string(v) : NULL);
}

void jx_put_int(struct json_object *o, const char *key, long long v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

void jx_append(struct buf *b, struct json_object *o)
{
	size_t n;
	const char *s = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	buf_add(b, s, n);
}

const char *jx_str(struct json_object *o)
{
	return json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}
