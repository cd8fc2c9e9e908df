/*
 * fcgi_proto: the FastCGI record protocol (responder role), parsed
 * incrementally so that an epoll loop can feed whatever bytes a read()
 * returned, split anywhere. One request per connection: nginx runs with
 * `fastcgi_keep_conn off`, so a second BEGIN_REQUEST is an error.
 *
 * The parser collects PARAMS (at most FCGI_MAX_PARAMS bytes of
 * name-value data in total, else an error) and becomes ready when the
 * empty PARAMS record ends the stream; STDIN is counted and discarded
 * (the routes served here have no body); ABORT_REQUEST sets `aborted`.
 * Management records (request id 0) are ignored. Any protocol violation
 * puts the parser in FCGI_ERROR for good; the caller closes the
 * connection.
 *
 * Ownership: the parser owns its buffers (fcgi_parser_release frees
 * them); fcgi_param() returns strings borrowed from the parser.
 */
#ifndef EVR_FCGI_PROTO_H
#define EVR_FCGI_PROTO_H

#include <stddef.h>

#include "buf.h"

#define FCGI_HEADER_LEN 8
#define FCGI_MAX_PARAMS (64 * 1024)
#define FCGI_MAX_CONTENT 65535

enum fcgi_type {
	FCGI_BEGIN_REQUEST = 1,
	FCGI_ABORT_REQUEST = 2,
	FCGI_END_REQUEST = 3,
	FCGI_PARAMS = 4,
	FCGI_STDIN = 5,
	FCGI_STDOUT = 6,
};

enum fcgi_state {
	FCGI_BEGIN, /* waiting for BEGIN_REQUEST */
	FCGI_PARAMS_IN,
	FCGI_READY, /* params complete: the request can be served */
	FCGI_ERROR,
};

struct fcgi_parser {
	enum fcgi_state state;
	unsigned char hdr[FCGI_HEADER_LEN];
	size_t hlen;   /* header bytes held */
	int in_record; /* header complete, reading content+padding */
	int type;
	unsigned id; /* request id of the record being read */
	size_t clen, plen, got;
	unsigned char body[8]; /* content of BEGIN_REQUEST */
	unsigned request_id;
	int aborted;
	int stdin_done; /* the empty STDIN record arrived */
	size_t stdin_len;
	struct buf params; /* raw name-value pairs, then decoded pairs */
	struct buf kv;     /* decoded: name NUL value NUL ... */
	const char *error; /* static text for the log */
};

void fcgi_parser_init(struct fcgi_parser *p);
void fcgi_parser_release(struct fcgi_parser *p);
/* Feed bytes. Returns 0, or -1 when the input is not a valid request
 * (p->state == FCGI_ERROR, p->error says why). */
int fcgi_feed(struct fcgi_parser *p, const void *data, size_t len);
/* A parameter's value (NUL-terminated) once the parser is FCGI_READY;
 * NULL if absent. The first occurrence wins. */
const char *fcgi_param(const struct fcgi_parser *p, const char *name);

/* Append STDOUT records carrying data (split at FCGI_MAX_CONTENT, padded
 * to 8 bytes) to out. */
void fcgi_put_stdout(struct buf *out, unsigned id, const void *data,
		     size_t len);
/* Append the empty STDOUT record and END_REQUEST (REQUEST_COMPLETE). */
void fcgi_put_end(struct buf *out, unsigned id, int app_status);

#endif
