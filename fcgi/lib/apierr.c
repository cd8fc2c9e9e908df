#include "apierr.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int apierr_set(struct apierr *e, int status, const char *code, const char *fmt,
	       ...)
{
	char full[2 * sizeof(e->msg)];
	size_t n;
	va_list ap;
	e->status = status;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(full, sizeof(full), fmt, ap);
	va_end(ap);
	/* messages quote what was sent: never end on half a character */
	n = utf8_cut(full, strlen(full), sizeof(e->msg) - 1);
	memcpy(e->msg, full, n);
	e->msg[n] = '\0';
	return -1;
}

int apierr_field(struct apierr *e, const char *field, const char *what)
{
	return apierr_set(e, 400, "validation_error", "%s: %s", field, what);
}

const char *http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 422:
		return "Unprocessable Entity";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Unknown";
	}
}
