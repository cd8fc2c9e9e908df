#define _GNU_SOURCE /* memmem */
#include "json.h"
#include "utf8.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
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

/* One tokener per thread and depth, kept between parses and reset:
 * json_tokener_new_ex() callocs a stack of `depth` entries, and that
 * allocation at every parse made glibc consolidate its free lists (5 % of
 * the runner's CPU in the event-write benchmark). Freed at thread exit. */
#define TOK_SLOTS 4
struct tok_slots {
	struct json_tokener *tok[TOK_SLOTS];
	int depth[TOK_SLOTS];
};

static pthread_key_t tok_key;
static pthread_once_t tok_once = PTHREAD_ONCE_INIT;

static void tok_slots_free(void *p)
{
	struct tok_slots *t = p;
	int i;
	for (i = 0; i < TOK_SLOTS; i++)
		if (t->tok[i])
			json_tokener_free(t->tok[i]);
	free(t);
}

static void tok_key_make(void)
{
	if (pthread_key_create(&tok_key, tok_slots_free))
		abort();
}

static struct json_tokener *tokener(int depth)
{
	struct tok_slots *t;
	int i;

	pthread_once(&tok_once, tok_key_make);
	t = pthread_getspecific(tok_key);
	if (!t) {
		t = xcalloc(1, sizeof(*t));
		if (pthread_setspecific(tok_key, t))
			abort();
	}
	for (i = 0; i < TOK_SLOTS && t->tok[i]; i++)
		if (t->depth[i] == depth) {
			json_tokener_reset(t->tok[i]);
			return t->tok[i];
		}
	if (i == TOK_SLOTS) { /* more depths than slots: replace the last */
		i = TOK_SLOTS - 1;
		json_tokener_free(t->tok[i]);
	}
	t->tok[i] = json_tokener_new_ex(depth);
	if (!t->tok[i])
		abort();
	t->depth[i] = depth;
	json_tokener_set_flags(t->tok[i], JSON_TOKENER_STRICT |
						  JSON_TOKENER_VALIDATE_UTF8);
	return t->tok[i];
}

struct json_object *jx_parse(const char *s, size_t len, struct apierr *e)
{
	return jx_parse_depth(s, len, JX_MAX_DEPTH, e);
}

struct json_object *jx_parse_depth(const char *s, size_t len, int depth,
				   struct apierr *e)
{
	struct json_tokener *tok;
	struct json_object *o = NULL;
	enum json_tokener_error jerr;

	if (len > INT32_MAX) {
		apierr_set(e, 413, "payload_too_large",
			   "Request body too large");
		return NULL;
	}
	if (has_single_quote(s, len)) {
		apierr_set(e, 400, "invalid_json",
			   "Invalid JSON: strings must use double quotes");
		return NULL;
	}
	/* json-c's depth counts nested containers: JX_MAX_DEPTH levels are
	 * accepted, one more is refused */
	tok = tokener(depth);
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
				   depth);
		else if (jerr == json_tokener_error_parse_utf8_string)
			apierr_set(e, 400, "invalid_json",
				   "Invalid JSON: invalid UTF-8");
		else
			apierr_set(e, 400, "invalid_json", "Invalid JSON: %s",
				   json_tokener_error_desc(jerr));
	}
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

int jx_get_int(struct json_object *o, const char *key, int64_t min, int64_t max,
	       int64_t *out, struct apierr *e)
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

int jx_get_obj(struct json_object *o, const char *key, struct json_object **out,
	       struct apierr *e)
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

/* --- what PostgreSQL can store ------------------------------------------*/

static int hex4(const char *s, size_t n, unsigned *cp)
{
	size_t i;
	*cp = 0;
	if (n < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		char c = s[i];
		*cp <<= 4;
		if (c >= '0' && c <= '9')
			*cp |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*cp |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*cp |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

/* The string token at s[0] (the opening quote): its end (past the closing
 * quote), and in *bad whether it holds an escape PostgreSQL refuses. */
static size_t scan_string(const char *s, size_t n, int *bad)
{
	size_t i = 1;
	unsigned cp, lo;

	*bad = 0;
	while (i < n && s[i] != '"') {
		if (s[i] != '\\') {
			i++;
			continue;
		}
		if (i + 1 < n && s[i + 1] == 'u' &&
		    hex4(s + i + 2, n - i - 2, &cp) == 0) {
			i += 6;
			if (cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff)) {
				*bad = 1;
			} else if (cp >= 0xd800 && cp <= 0xdbff) {
				if (i + 1 < n && s[i] == '\\' &&
				    s[i + 1] == 'u' &&
				    hex4(s + i + 2, n - i - 2, &lo) == 0 &&
				    lo >= 0xdc00 && lo <= 0xdfff)
					i += 6;
				else
					*bad = 1;
			}
			continue;
		}
		i += 2;
	}
	return i < n ? i + 1 : n;
}

#define PATH_FRAMES 64

struct frame {
	int array;
	long idx;
	const char *key; /* the raw key token (without quotes) */
	size_t klen;
};

static void path_text(const struct frame *st, int depth, int key_bad, char *out,
		      size_t size)
{
	struct buf b = BUF_INIT;
	int i;

	buf_init(&b, 64);
	for (i = 0; i < depth && i < PATH_FRAMES; i++) {
		if (st[i].array)
			buf_addf(&b, "[%ld]", st[i].idx);
		else if (st[i].key && (i < depth - 1 || !key_bad))
			buf_addf(&b, "%s%.*s", b.len ? "." : "",
				 (int)st[i].klen, st[i].key);
	}
	if (key_bad)
		buf_adds(&b, b.len ? " (a key)" : "a key");
	if (!b.len)
		buf_adds(&b, "body");
	snprintf(out, size, "%.*s", (int)utf8_cut(b.data, b.len, size - 1),
		 b.data);
	buf_release(&b);
}

int jx_check_text(const char *s, size_t len, const char *exempt, int max_depth,
		  struct apierr *e)
{
	struct frame st[PATH_FRAMES];
	int depth = 0, want_key = 0, bad;
	size_t i = 0, end;
	char path[200];

	if (!max_depth && !memmem(s, len, "\\u", 2))
		return 0; /* no escape of a code point at all */
	while (i < len) {
		char c = s[i];
		struct frame *top =
			depth && depth <= PATH_FRAMES ? &st[depth - 1] : NULL;
		switch (c) {
		case '{':
		case '[':
			/* json-c's depth counts the innermost value too:
			 * max_depth - 1 containers are accepted */
			if (max_depth && depth >= max_depth - 1) {
				path_text(st, depth, 0, path, sizeof(path));
				return apierr_set(
					e, 400, "invalid_json",
					"Invalid JSON: %s: nesting deeper "
					"than %d levels",
					path, max_depth);
			}
			if (depth < PATH_FRAMES) {
				st[depth].array = c == '[';
				st[depth].idx = 0;
				st[depth].key = NULL;
				st[depth].klen = 0;
			}
			depth++;
			want_key = c == '{';
			i++;
			break;
		case '}':
		case ']':
			depth--;
			want_key = 0;
			i++;
			break;
		case ',':
			if (top && top->array)
				top->idx++;
			want_key = top && !top->array;
			i++;
			break;
		case '"':
			end = scan_string(s + i, len - i, &bad);
			if (want_key) {
				if (top) {
					top->key = s + i + 1;
					top->klen = end >= 2 ? end - 2 : 0;
				}
				want_key = 0;
				if (bad) {
					path_text(st, depth, 1, path,
						  sizeof(path));
					goto refuse;
				}
			} else if (bad &&
				   !(depth == 1 && top && !top->array &&
				     exempt && top->klen == strlen(exempt) &&
				     !memcmp(top->key, exempt, top->klen))) {
				path_text(st, depth, 0, path, sizeof(path));
				goto refuse;
			}
			i += end;
			break;
		default:
			i++;
		}
	}
	return 0;
refuse:
	return apierr_set(e, 400, "validation_error",
			  "%s: must not contain \\u0000 or unpaired UTF-16 "
			  "surrogates (PostgreSQL cannot store them)",
			  path);
}

/* Clean one string (a value or a key): the replacement, or NULL when it
 * is fine as it is. */
static char *clean_str(const char *s, size_t n, size_t *out_len)
{
	struct buf b = BUF_INIT;
	if (utf8_valid(s, n, 0))
		return NULL;
	buf_init(&b, n + 8);
	utf8_clean(&b, s, n);
	return buf_detach(&b, out_len);
}

static int storable(struct json_object **o, int level, int max_depth)
{
	struct json_object *v = *o, *repl;
	int fixed = 0;
	size_t i, n, len;
	char *c;

	switch (json_object_get_type(v)) {
	case json_type_string:
		c = clean_str(json_object_get_string(v),
			      (size_t)json_object_get_string_len(v), &len);
		if (c) {
			json_object_set_string_len(v, c, (int)len);
			free(c);
			fixed++;
		}
		return fixed;
	case json_type_array:
	case json_type_object:
		if (level >= max_depth) { /* as json-c counts it */
			/* its text, as a string, is as deep as it can go */
			const char *t = jx_str(v);
			c = clean_str(t, strlen(t), &len);
			repl = c ? json_object_new_string_len(c, (int)len)
				 : json_object_new_string(t);
			free(c);
			json_object_put(v);
			*o = repl;
			return 1;
		}
		break;
	default:
		return 0;
	}
	if (json_object_is_type(v, json_type_array)) {
		n = json_object_array_length(v);
		for (i = 0; i < n; i++) {
			struct json_object *m = json_object_array_get_idx(v, i);
			if (!m)
				continue;
			json_object_get(m);
			fixed += storable(&m, level + 1, max_depth);
			json_object_array_put_idx(v, i,
						  m); /* releases the old */
		}
		return fixed;
	}
	/* an object: its keys first (a bad key means a new object) */
	{
		int bad_key = 0;
		json_object_object_foreach(v, k, m)
		{
			(void)m;
			if (!utf8_valid(k, strlen(k), 0))
				bad_key = 1;
		}
		if (bad_key) {
			repl = json_object_new_object();
			json_object_object_foreach(v, k2, m2)
			{
				c = clean_str(k2, strlen(k2), &len);
				json_object_object_add(repl, c ? c : k2,
						       json_object_get(m2));
				fixed += c != NULL;
				free(c);
			}
			json_object_put(v);
			*o = v = repl;
		}
	}
	{
		json_object_object_foreach(v, k, m)
		{
			struct json_object *mm = m;
			if (!mm)
				continue;
			json_object_get(mm);
			fixed += storable(&mm, level + 1, max_depth);
			if (mm != m)
				json_object_object_add(v, k, mm);
			else
				json_object_put(mm);
		}
	}
	return fixed;
}

int jx_storable(struct json_object **o, int max_depth)
{
	if (!*o)
		return 0;
	return storable(o, 1, max_depth);
}
