/*
 * report: everruns-sse's line in the operator's metrics. Every couple of
 * seconds (from the main loop's tick) the numbers of open streams and of
 * connections go to the status file sse.status in the run directory
 * (lib/status.h), which GET /metrics of everruns-api on the same host
 * reads. Only this file knows the format's keys on the writing side.
 */
#include "sse.h"
#include "status.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define REPORT_EVERY_S 2.0

void sse_report(double now, long streams, long conns)
{
	static double next;
	char text[256];
	int n;

	if (now < next)
		return;
	next = now + REPORT_EVERY_S;
	n = snprintf(text, sizeof(text),
		     "pid %ld\nstreams %ld\nconnections %ld\nupdated_at %ld\n",
		     (long)getpid(), streams, conns, (long)time(NULL));
	status_write("sse.status", text, (size_t)n);
}
