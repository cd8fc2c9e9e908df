/*
 * catalog: the built-in capabilities (ARCHITECTURE 6.2), compiled in. Each has
 * an id (its `ref`), a name, a description, the system-prompt text it adds, its
 * tool definitions (JSON Schema function definitions) and the JSON Schema of
 * its config. The table is static and read-only: safe from any thread (the
 * parsed config schemas are built once, under pthread_once). The runner
 * executes the tools; this module only describes them and validates configs.
 * All strings are static.
 */
#ifndef EVR_CATALOG_H
#define EVR_CATALOG_H

#include <json-c/json.h>
#include <stddef.h>

#include "apierr.h"
#include "buf.h"

struct catalog_cap {
	const char *id;
	const char *name;
	const char *description;
	const char *system_prompt;
	const char *tools_json;    /* JSON array of tool definitions */
	const char *config_schema; /* JSON Schema (an object) */
};

const struct catalog_cap *catalog_all(size_t *n);
const struct catalog_cap *catalog_find(const char *id);
/* Validate cfg against cap's config schema (a JSON-Schema subset: type,
 * properties, required, additionalProperties, enum, minimum, maximum,
 * minLength, maxLength, items, minItems, maxItems). `field` names the
 * capability entry ("capabilities[0]"); messages name the offending value
 * below its ".config": "capabilities[0].config.max_file_size_mb: must be
 * an integer", "capabilities[0].config: unknown key 'foo'". cfg NULL is
 * validated as {}. cap must come from catalog_all()/catalog_find(); cfg is
 * borrowed. On failure a 400 "validation_error" in e. 0 or -1. */
int catalog_check_config(const struct catalog_cap *cap, struct json_object *cfg,
			 const char *field, struct apierr *e);
/* The same validator for any schema object, e.g. a tool's `parameters`
 * against the arguments of a tool call: messages start with `path`
 * ("arguments.todos[2].status: must be one of: ..."). Both objects are
 * borrowed and only read. 0 or -1 with a 400 in e. */
int catalog_check_value(struct json_object *schema, struct json_object *v,
			const char *path, struct apierr *e);
/* The API representation {id,name,description,status,system_prompt,
 * tool_definitions,config_schema} appended to out as compact JSON. */
void catalog_append_json(const struct catalog_cap *cap, struct buf *out);

#endif
