/*
 * libFuzzer target: the request body of POST /sessions/{id}/messages
 * (jx_parse + message_input_parse), the untrusted JSON that starts turns.
 * Checks that an accepted body always normalizes into a valid JSON array
 * of parts and, when present, a JSON object of controls.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct apierr e;
	struct message_input in;
	struct json_object *body = jx_parse((const char *)data, size, &e), *c;

	if (!body)
		return 0;
	if (!json_object_is_type(body, json_type_object)) {
		json_object_put(body); /* the edge refuses it before parsing */
		return 0;
	}
	message_input_init(&in);
	if (message_input_parse(body, &in, &e) == 0) {
		c = jx_parse(in.content.data, in.content.len, &e);
		if (!c || !json_object_is_type(c, json_type_array) ||
		    json_object_array_length(c) == 0)
			abort();
		json_object_put(c);
		if (in.controls.len) {
			c = jx_parse(in.controls.data, in.controls.len, &e);
			if (!c || !json_object_is_type(c, json_type_object))
				abort();
			json_object_put(c);
		}
	} else if (e.status != 400 && e.status != 404) {
		abort();
	}
	message_input_release(&in);
	json_object_put(body);
	return 0;
}
