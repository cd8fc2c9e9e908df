/*
 * message_input: the body of POST /sessions/{id}/messages, validated and
 * normalized without touching the database (so it can be fuzzed): the
 * content parts, the controls (from message.controls or the top level),
 * the ids of image_file parts and of controls.model_id (whose existence
 * the caller checks), and the metadata.
 */
#include "api.h"
#include "ids.h"
#include "imagetype.h"
#include "json.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define MAX_TEXT (512 * 1024)
#define MAX_PARTS 64

static int check_base64_image(const char *b64, size_t len, const char *type,
			      const char *field, struct apierr *e)
{
	unsigned char head[48];
	char chunk[64];
	size_t i, take = len < 64 ? len : 64;
	int n;

	if (len == 0 || len % 4)
		return apierr_set(e, 400, "validation_error",
				  "%s.base64: not valid base64", field);
	for (i = 0; i < len; i++) {
		char c = b64[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '/' ||
		      (c == '=' && i >= len - 2)))
			return apierr_set(e, 400, "validation_error",
					  "%s.base64: not valid base64", field);
	}
	take -= take % 4;
	memcpy(chunk, b64, take);
	n = EVP_DecodeBlock(head, (const unsigned char *)chunk, (int)take);
	if (n < 0 || !imagetype_sniff(head, (size_t)n) ||
	    strcmp(imagetype_sniff(head, (size_t)n), type))
		return apierr_set(e, 400, "validation_error",
				  "%s.base64: the data is not a %s image",
				  field, type);
	return 0;
}

/* Validate one content part and append its normalized form to out. */
static int read_part(struct json_object *part, size_t i, struct buf *out,
		     struct message_input *in, struct apierr *e)
{
	char field[64], hex[33];
	const char *type = NULL, *s = NULL, *media = NULL, *fname = NULL;

	snprintf(field, sizeof(field), "message.content[%zu]", i);
	if (!json_object_is_type(part, json_type_object))
		return apierr_field(e, field, "must be an object");
	if (jx_get_str(part, "type", 32, &type, e) < 0)
		return -1;
	if (!type)
		return apierr_set(e, 400, "validation_error",
				  "%s.type: required", field);
	if (!strcmp(type, "text")) {
		if (jx_get_str(part, "text", MAX_TEXT, &s, e) < 0)
			return apierr_set(
				e, 400, "validation_error",
				"%s.text: a string of at most %d bytes", field,
				MAX_TEXT);
		if (!s)
			return apierr_set(e, 400, "validation_error",
					  "%s.text: required", field);
		buf_adds(out, "{\"type\":\"text\",\"text\":");
		buf_add_json_str(out, s, strlen(s));
		buf_addch(out, '}');
	} else if (!strcmp(type, "image_file")) {
		if (jx_get_str(part, "image_id", 64, &s, e) < 0 ||
		    jx_get_str(part, "filename", 255, &fname, e) < 0)
			return -1;
		if (!s || !ids_parse(s, "img", hex))
			return apierr_set(e, 404, "not_found",
					  "%s.image_id: not found", field);
		/* existence is checked in the send transaction */
		buf_adds(&in->images, in->nimages++ ? "," : "");
		buf_adds(&in->images, hex);
		buf_adds(out, "{\"type\":\"image_file\",\"image_id\":");
		buf_add_json_str(out, s, strlen(s));
		if (fname) {
			buf_adds(out, ",\"filename\":");
			buf_add_json_str(out, fname, strlen(fname));
		}
		buf_addch(out, '}');
	} else if (!strcmp(type, "image")) {
		const char *url = NULL;
		if (jx_get_str(part, "base64", 0, &s, e) < 0 ||
		    jx_get_str(part, "media_type", 32, &media, e) < 0 ||
		    jx_get_str(part, "url", 2048, &url, e) < 0)
			return -1;
		if (url) {
			if (strncmp(url, "https://", 8) &&
			    strncmp(url, "http://", 7))
				return apierr_set(
					e, 400, "validation_error",
					"%s.url: must be an http(s) URL",
					field);
			buf_adds(out, "{\"type\":\"image\",\"url\":");
			buf_add_json_str(out, url, strlen(url));
			buf_addch(out, '}');
			return 0;
		}
		if (!s)
			return apierr_set(e, 400, "validation_error",
					  "%s: base64 or url is required",
					  field);
		if (!media || !imagetype_known(media))
			return apierr_set(e, 400, "validation_error",
					  "%s.media_type: one of image/png, "
					  "image/jpeg, image/gif, image/webp",
					  field);
		if (check_base64_image(s, strlen(s), media, field, e))
			return -1;
		buf_adds(out, "{\"type\":\"image\",\"media_type\":");
		buf_add_json_str(out, media, strlen(media));
		buf_adds(out, ",\"base64\":");
		buf_add_json_str(out, s, strlen(s));
		buf_addch(out, '}');
	} else {
		return apierr_set(e, 400, "validation_error",
				  "%s.type: unknown part type '%.32s'", field,
				  type);
	}
	return 0;
}

static int read_content(struct json_object *msg, struct buf *out,
			struct message_input *in, struct apierr *e)
{
	struct json_object *c = NULL;
	size_t i, n;

	if (!json_object_object_get_ex(msg, "content", &c) || !c)
		return apierr_field(e, "message.content", "required");
	if (json_object_is_type(c, json_type_string)) {
		if ((size_t)json_object_get_string_len(c) > MAX_TEXT)
			return apierr_set(
				e, 400, "validation_error",
				"message.content: longer than %d bytes",
				MAX_TEXT);
		if (json_object_get_string_len(c) == 0)
			return apierr_field(e, "message.content",
					    "must not be empty");
		buf_adds(out, "[{\"type\":\"text\",\"text\":");
		buf_add_json_str(out, json_object_get_string(c),
				 (size_t)json_object_get_string_len(c));
		buf_adds(out, "}]");
		return 0;
	}
	if (!json_object_is_type(c, json_type_array))
		return apierr_field(e, "message.content",
				    "must be a string or an array of parts");
	n = json_object_array_length(c);
	if (n == 0)
		return apierr_field(e, "message.content", "must not be empty");
	if (n > MAX_PARTS)
		return apierr_set(e, 400, "validation_error",
				  "message.content: at most %d parts",
				  MAX_PARTS);
	buf_addch(out, '[');
	for (i = 0; i < n; i++) {
		if (i)
			buf_addch(out, ',');
		if (read_part(json_object_array_get_idx(c, i), i, out, in, e))
			return -1;
	}
	buf_addch(out, ']');
	return 0;
}

/* Controls from message.controls or the top level (not both, unless
 * equal), validated and normalized into out. */
static int read_controls(struct json_object *body, struct json_object *msg,
			 struct message_input *in, struct apierr *e)
{
	struct json_object *a = NULL, *b = NULL, *c, *r = NULL;
	int64_t max_tokens;
	double temp;
	const char *model = NULL, *effort = NULL;
	struct buf *out = &in->controls;
	int first = 1;

	if (jx_get_obj(msg, "controls", &a, e) < 0 ||
	    jx_get_obj(body, "controls", &b, e) < 0)
		return apierr_field(e, "controls", "must be an object");
	if (a && b && !json_object_equal(a, b))
		return apierr_field(e, "controls",
				    "given in message.controls and at the top "
				    "level with different values");
	c = a ? a : b;
	if (!c)
		return 0;
	buf_addch(out, '{');
#define SEP() (first ? (first = 0, "") : ",")
	switch (jx_get_int(c, "max_tokens", 1, 1000000, &max_tokens, e)) {
	case -1:
		return apierr_set(
			e, 400, "validation_error",
			"controls.max_tokens: an integer from 1 to 1000000");
	case 1:
		buf_addf(out, "%s\"max_tokens\":%lld", SEP(),
			 (long long)max_tokens);
	}
	switch (jx_get_double(c, "temperature", 0, 2, &temp, e)) {
	case -1:
		return apierr_set(e, 400, "validation_error",
				  "controls.temperature: a number from 0 to 2");
	case 1:
		buf_addf(out, "%s\"temperature\":%.17g", SEP(), temp);
	}
	if (jx_get_str(c, "model_id", 64, &model, e) < 0)
		return apierr_field(e, "controls.model_id", "must be a string");
	if (model) {
		/* any id that names no model of the organization is a 404;
		 * existence is checked by the caller, the form here */
		if (!ids_parse(model, "mod", in->model))
			return apierr_set(e, 404, "not_found",
					  "controls.model_id: not found");
		in->has_model = 1;
		buf_addf(out, "%s\"model_id\":\"mod_%s\"", SEP(), in->model);
	}
	if (jx_get_obj(c, "reasoning", &r, e) < 0)
		return apierr_field(e, "controls.reasoning",
				    "must be an object");
	if (r && jx_get_str(r, "effort", 16, &effort, e) < 0)
		return apierr_field(e, "controls.reasoning.effort",
				    "must be a string");
	if (effort) {
		if (strcmp(effort, "low") && strcmp(effort, "medium") &&
		    strcmp(effort, "high"))
			return apierr_field(e, "controls.reasoning.effort",
					    "one of low, medium, high");
		buf_addf(out, "%s\"reasoning\":{\"effort\":\"%s\"}", SEP(),
			 effort);
	}
#undef SEP
	buf_addch(out, '}');
	return 0;
}

void message_input_init(struct message_input *in)
{
	memset(in, 0, sizeof(*in));
	buf_init(&in->content, 0);
	buf_init(&in->controls, 0);
	buf_init(&in->images, 0);
}

void message_input_release(struct message_input *in)
{
	buf_release(&in->content);
	buf_release(&in->controls);
	buf_release(&in->images);
}

int message_input_parse(struct json_object *body, struct message_input *in,
			struct apierr *e)
{
	struct json_object *msg = NULL, *role = NULL;

	if (jx_get_obj(body, "message", &msg, e) < 0)
		return -1;
	if (!msg)
		return apierr_field(e, "message", "required");
	if (json_object_object_get_ex(msg, "role", &role) && role &&
	    (!json_object_is_type(role, json_type_string) ||
	     strcmp(json_object_get_string(role), "user")))
		return apierr_field(e, "message.role", "must be \"user\"");
	if (read_content(msg, &in->content, in, e) != 0 ||
	    read_controls(body, msg, in, e) != 0)
		return -1;
	if (jx_get_obj(body, "metadata", &in->metadata, e) < 0)
		return -1;
	if (in->metadata && strlen(jx_str(in->metadata)) > 16384)
		return apierr_field(e, "metadata", "larger than 16 KiB");
	return 0;
}
