/*
 * test_math: calculate(operation, a, b), the test_math capability's tool
 * for tests and the simulator (ARCHITECTURE 6.2).
 *
 * Plain IEEE double arithmetic, so results are the same on every host:
 * {"operation":op,"a":a,"b":b,"result":r}, numbers in their shortest
 * round-trip form (0.1 + 0.2 is 0.30000000000000004, as any calculator
 * built on doubles says). Dividing by zero and results that overflow to
 * infinity are tool errors: JSON has no infinity, and the model should
 * learn that the question has no numeric answer.
 */
#include "tools_internal.h"

#include <math.h>
#include <string.h>

static double num_arg(struct json_object *args, const char *name)
{
	struct json_object *v = NULL;

	json_object_object_get_ex(args, name, &v);
	return json_object_get_double(v);
}

enum tool_status tools_calculate(const struct tool_ctx *c,
				 struct json_object *args, struct buf *result,
				 struct buf *error)
{
	struct json_object *opv = NULL;
	const char *op;
	double a, b, r;

	(void)c;
	/* the schema made operation one of the four, a and b numbers */
	json_object_object_get_ex(args, "operation", &opv);
	op = json_object_get_string(opv);
	a = num_arg(args, "a");
	b = num_arg(args, "b");
	/* json-c reads 1e999 as infinity */
	if (!isfinite(a) || !isfinite(b))
		return tools_fail(error, "a and b must be finite numbers.");
	if (!strcmp(op, "add")) {
		r = a + b;
	} else if (!strcmp(op, "subtract")) {
		r = a - b;
	} else if (!strcmp(op, "multiply")) {
		r = a * b;
	} else {
		if (b == 0)
			return tools_fail(error,
					  "Division by zero: b must not be 0.");
		r = a / b;
	}
	if (!isfinite(r))
		return tools_fail(error, "The result is too large for a double "
					 "(it overflows to infinity).");
	buf_addf(result, "{\"operation\":\"%s\",\"a\":", op);
	tools_add_number(result, a);
	buf_adds(result, ",\"b\":");
	tools_add_number(result, b);
	buf_adds(result, ",\"result\":");
	tools_add_number(result, r);
	buf_addch(result, '}');
	return TOOL_OK;
}
