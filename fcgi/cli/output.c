/*
 * output: what commands print. Text for people (aligned tables, "key:
 * value" views) by default; with --json the server's JSON as it came,
 * so scripts see exactly the API's shapes. Column widths count UTF-8
 * characters, and control characters in cells become spaces so one
 * record stays one line.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static void add_scalar(struct buf *b, struct json_object *v)
{
	if (!v)
		buf_adds(b, "-");
	else if (json_object_is_type(v, json_type_string))
		buf_add(b, json_object_get_string(v),
			(size_t)json_object_get_string_len(v));
	else
		buf_adds(b, json_object_to_json_string_ext(
				    v, JSON_C_TO_STRING_PLAIN |
					       JSON_C_TO_STRING_NOSLASHESCAPE));
}

static struct json_object *lookup(struct json_object *o, const char *key)
{
	char part[64];
	const char *dot;

	while ((dot = strchr(key, '.'))) {
		snprintf(part, sizeof(part), "%.*s", (int)(dot - key), key);
		o = jx_get(o, part);
		key = dot + 1;
	}
	return jx_get(o, key);
}

void out_value(struct buf *b, struct json_object *o, const char *key)
{
	struct json_object *v = lookup(o, key);
	size_t i, n;

	if (!v || !json_object_is_type(v, json_type_array)) {
		add_scalar(b, v);
		return;
	}
	n = json_object_array_length(v);
	if (!n)
		buf_adds(b, "-");
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		struct json_object *name = jx_get(e, "ref");
		if (i)
			buf_addch(b, ',');
		if (!name)
			name = jx_get(e, "name");
		add_scalar(b, name ? name : e);
	}
}

/* Characters (not bytes) of UTF-8 text. */
static size_t width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* Cell text: controls to spaces, at most max characters. */
static char *cell(struct json_object *o, const struct col *col)
{
	struct buf b = BUF_INIT;
	size_t i;

	buf_init(&b, 32);
	out_value(&b, o, col->key);
	for (i = 0; i < b.len; i++)
		if ((unsigned char)b.data[i] < 0x20 || b.data[i] == 0x7f)
			b.data[i] = ' ';
	if (col->max > 3 && width(b.data) > (size_t)col->max) {
		size_t keep = (size_t)col->max - 3, chars = 0;
		for (i = 0; i < b.len; i++)
			if (((unsigned char)b.data[i] & 0xC0) != 0x80 &&
			    chars++ == keep)
				break;
		b.len = i;
		b.data[i] = '\0';
		buf_adds(&b, "...");
	}
	return buf_detach(&b, NULL);
}

void out_table(struct json_object *arr, const struct col *cols)
{
	size_t ncol = 0, nrow, r, k;
	size_t *w;
	char **cells;

	while (cols[ncol].head)
		ncol++;
	nrow = arr && json_object_is_type(arr, json_type_array)
		       ? json_object_array_length(arr)
		       : 0;
	w = xcalloc(ncol, sizeof(*w));
	cells = xcalloc(nrow * ncol + 1, sizeof(*cells));
	for (k = 0; k < ncol; k++)
		w[k] = strlen(cols[k].head);
	for (r = 0; r < nrow; r++)
		for (k = 0; k < ncol; k++) {
			char *s = cell(json_object_array_get_idx(arr, r),
				       &cols[k]);
			cells[r * ncol + k] = s;
			if (width(s) > w[k])
				w[k] = width(s);
		}
	for (k = 0; k < ncol; k++)
		printf("%s%-*s", k ? "  " : "", k + 1 < ncol ? (int)w[k] : 0,
		       cols[k].head);
	printf("\n");
	for (r = 0; r < nrow; r++) {
		for (k = 0; k < ncol; k++) {
			const char *s = cells[r * ncol + k];
			size_t pad = k + 1 < ncol ? w[k] - width(s) : 0;
			printf("%s%s%*s", k ? "  " : "", s, (int)pad, "");
		}
		printf("\n");
	}
	for (r = 0; r < nrow * ncol; r++)
		free(cells[r]);
	free(cells);
	free(w);
}

void out_fields(struct json_object *o)
{
	size_t wmax = 0;
	struct buf b = BUF_INIT;

	if (!o || !json_object_is_type(o, json_type_object))
		return;
	json_object_object_foreach(o, k0, v0)
	{
		(void)v0;
		if (strlen(k0) > wmax)
			wmax = strlen(k0);
	}
	buf_init(&b, 64);
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		buf_reset(&b);
		out_value(&b, o, k);
		printf("%-*s  %s\n", (int)wmax + 1, k, b.data);
	}
	buf_release(&b);
}

void out_json_body(const struct resp *r)
{
	fwrite(r->body.data, 1, r->body.len, stdout);
	if (!r->body.len || r->body.data[r->body.len - 1] != '\n')
		putchar('\n');
}

void out_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(
			       o, JSON_C_TO_STRING_PLAIN |
					  JSON_C_TO_STRING_NOSLASHESCAPE));
}

void out_resp(struct cli *c, const struct resp *r, const struct col *cols)
{
	if (c->json)
		out_json_body(r);
	else if (cols) {
		/* a page {data, ...}, or a bare array (GET /images) */
		struct json_object *data =
			json_object_is_type(r->json, json_type_array)
				? r->json
				: jx_get(r->json, "data");
		long n = data ? (long)json_object_array_length(data) : 0;
		long off = json_object_get_int(jx_get(r->json, "offset"));
		long total = json_object_get_int(jx_get(r->json, "total"));
		out_table(data, cols);
		if (n && off + n < total)
			printf("(%ld-%ld of %ld; more with --offset %ld)\n",
			       off + 1, off + n, total, off + n);
	} else
		out_fields(r->json);
}

void out_deleted(struct cli *c, const char *id)
{
	if (c->json) {
		struct json_object *o = jx_obj();
		jx_put_str(o, "id", id);
		json_object_object_add(o, "deleted",
				       json_object_new_boolean(1));
		out_json(o);
		json_object_put(o);
	} else {
		printf("deleted %s\n", id);
	}
}

void out_parts(struct buf *b, struct json_object *parts)
{
	size_t i, n = parts && json_object_is_type(parts, json_type_array)
			      ? json_object_array_length(parts)
			      : 0;

	if (parts && json_object_is_type(parts, json_type_string))
		buf_adds(b, json_object_get_string(parts));
	for (i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(parts, i);
		const char *t = jx_gets(p, "type");
		if (b->len)
			buf_addch(b, ' ');
		if (!t)
			continue;
		if (!strcmp(t, "text") && jx_gets(p, "text"))
			buf_adds(b, jx_gets(p, "text"));
		else if (!strcmp(t, "tool_call"))
			buf_addf(b, "[tool_call %s]",
				 jx_gets(p, "name") ? jx_gets(p, "name") : "?");
		else if (!strcmp(t, "tool_result"))
			buf_addf(b, "[tool_result %s]",
				 jx_gets(p, "error") ? "error" : "ok");
		else
			buf_addf(b, "[%s]", t);
	}
}

void out_log(struct cli *c, const struct resp *r, const struct col *cols,
	     void (*summarize)(struct buf *, struct json_object *))
{
	struct json_object *data = jx_get(r->json, "data");
	size_t i, n = data ? json_object_array_length(data) : 0;
	struct buf b = BUF_INIT;

	if (c->json) {
		out_json_body(r);
		return;
	}
	buf_init(&b, 128);
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(data, i);
		buf_reset(&b);
		summarize(&b, e);
		jx_put_str(e, "summary", b.data);
	}
	out_table(data, cols);
	if (n && json_object_get_boolean(jx_get(r->json, "has_more")))
		printf("(more after sequence %s)\n",
		       json_object_get_string(
			       jx_get(json_object_array_get_idx(data, n - 1),
				      "sequence")));
	buf_release(&b);
}
