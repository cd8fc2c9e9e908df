/* libFuzzer target: everruns-sse's FastCGI record parser. The first two
 * bytes pick a split point; the rest is fed whole and in two pieces, and
 * both parsers must agree on the outcome and the parameters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fcgi_parser a, b;
	size_t split;
	int ra, rb;

	if (size < 2)
		return 0;
	split = (size_t)(data[0] << 8 | data[1]);
	data += 2;
	size -= 2;
	if (split > size)
		split = size;
	fcgi_parser_init(&a);
	fcgi_parser_init(&b);
	ra = fcgi_feed(&a, data, size);
	rb = fcgi_feed(&b, data, split);
	if (rb == 0)
		rb = fcgi_feed(&b, data + split, size - split);
	if (ra != rb || a.state != b.state || a.aborted != b.aborted ||
	    a.stdin_len != b.stdin_len)
		abort();
	if (a.state == FCGI_READY &&
	    (a.kv.len != b.kv.len || memcmp(a.kv.data, b.kv.data, a.kv.len)))
		abort();
	if (a.state == FCGI_READY) {
		/* every lookup must stay inside the decoded pairs */
		(void)fcgi_param(&a, "REQUEST_URI");
		(void)fcgi_param(&a, "");
	}
	fcgi_parser_release(&a);
	fcgi_parser_release(&b);
	return 0;
}
