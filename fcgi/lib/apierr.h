/*
 * apierr: the one error value every layer passes up to the HTTP edge.
 *
 * A validator or handler that fails fills a `struct apierr` (status, a
 * machine code and a sentence for a person) and returns -1; the edge turns
 * it into `{"error":...,"code":...}` with that status. The message never
 * contains secrets or request bodies; 500s carry a generic text and the
 * detail goes to the log instead.
 */
#ifndef EVR_APIERR_H
#define EVR_APIERR_H

struct apierr {
	int status;
	const char *code; /* static string */
	char msg[320];
};

/* Fill e and return -1, so callers can `return apierr_set(...)`. */
int apierr_set(struct apierr *e, int status, const char *code, const char *fmt,
	       ...) __attribute__((format(printf, 4, 5)));

/* Shorthand for the common 400 naming a field. */
int apierr_field(struct apierr *e, const char *field, const char *what);

/* Standard reason phrase for a status ("Not Found"). */
const char *http_reason(int status);

#endif
