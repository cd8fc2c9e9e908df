/*
 * current_time: get_current_time(timezone?) (ARCHITECTURE 6.2).
 *
 * Result: {"timezone","iso8601" (RFC 3339 with the numeric offset),
 * "unix" (seconds), "human" ("Monday, 1 July 2024, 08:00:00 EDT
 * (UTC-04:00)"), "weekday", "utc_offset"}. Names are English whatever
 * the process locale, since the reader is a model, not a local user.
 *
 * Zones come from the system's tz database (TZDIR, else
 * /usr/share/zoneinfo). glibc silently falls back to UTC for a TZ it
 * cannot load, so the name is checked first: IANA characters only (no
 * '.', hence no ".." segment) and no leading '/', since the name becomes a
 * path, and the file must be a TZif file. "UTC" needs no tz database at all.
 *
 * Conversion: libc offers no localtime for an explicit zone, so TZ is set
 * to the zone, tzset() + localtime_r() run, and the previous TZ is put
 * back. That writes the process environment: not safe against another
 * thread converting local time meanwhile (none does: the runner runs tools
 * on its main thread and log.c uses gmtime_r). Other threads may still
 * getenv() (libcurl's resolver, in getaddrinfo), so the environ array is
 * never grown or shrunk after the first call: an unset TZ is restored as
 * ":/etc/localtime", which glibc treats exactly as unset (TZDEFAULT), and
 * glibc's setenv of an existing variable only swaps one pointer to a
 * string it never frees. Parsing TZif ourselves would avoid all of this,
 * but modern tzdata also needs its POSIX-rule footer evaluated: far more
 * code for no gain here.
 */
#include "tools_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ZONE_MAX 64

static const char *const weekdays[] = {"Sunday",    "Monday",   "Tuesday",
				       "Wednesday", "Thursday", "Friday",
				       "Saturday"};
static const char *const months[] = {
	"January", "February", "March",     "April",   "May",      "June",
	"July",    "August",   "September", "October", "November", "December"};

/* An IANA-shaped name: non-empty segments of [A-Za-z0-9_+-] separated by
 * single '/'. Without '.' no segment can be "." or "..", and without a
 * leading '/' the name stays below the zoneinfo directory. */
static int zone_name_ok(const char *z)
{
	size_t i, n = strlen(z);

	if (n == 0 || n > ZONE_MAX || z[0] == '/' || z[n - 1] == '/')
		return 0;
	for (i = 0; i < n; i++) {
		char ch = z[i];
		if (ch == '/') {
			if (z[i + 1] == '/')
				return 0;
		} else if (!((ch >= 'A' && ch <= 'Z') ||
			     (ch >= 'a' && ch <= 'z') ||
			     (ch >= '0' && ch <= '9') || ch == '_' ||
			     ch == '-' || ch == '+')) {
			return 0;
		}
	}
	return 1;
}

/* Is there a loadable zone of that (checked) name? "right/..." zones count
 * leap seconds in time_t, which the system clock does not: refused. */
static int zone_exists(const char *zone)
{
	const char *dir = getenv("TZDIR");
	char path[512], magic[4];
	struct stat st;
	FILE *f = NULL;
	int ok = 0;

	if (!strncmp(zone, "right/", 6))
		goto out;
	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	if (snprintf(path, sizeof(path), "%s/%s", dir, zone) >=
	    (int)sizeof(path))
		goto out;
	if (!(f = fopen(path, "rb")))
		goto out;
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode))
		goto out;
	ok = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "TZif", 4);
out:
	if (f)
		fclose(f);
	return ok;
}

static int is_utc(const char *zone)
{
	return !strcmp(zone, "UTC") || !strcmp(zone, "Etc/UTC");
}

/* Broken-down local time of t in zone (checked), with the abbreviation
 * copied out before TZ is restored. 0, or -1 if libc cannot convert. */
static int zone_localtime(const char *zone, time_t t, struct tm *tm, char *abbr,
			  size_t abbrlen)
{
	char *saved = NULL, *tz = NULL;
	const char *old;
	int rc = -1;

	if (is_utc(zone)) {
		if (!gmtime_r(&t, tm))
			return -1;
		snprintf(abbr, abbrlen, "UTC");
		return 0;
	}
	/* getenv's pointer dies with the next setenv: keep a copy */
	if ((old = getenv("TZ")))
		saved = xstrdup(old);
	/* the leading ':' makes glibc load a file, never parse the name as a
	 * POSIX TZ rule */
	tz = xmalloc(strlen(zone) + 2);
	tz[0] = ':';
	strcpy(tz + 1, zone);
	if (setenv("TZ", tz, 1))
		goto out;
	tzset();
	if (localtime_r(&t, tm)) {
		snprintf(abbr, abbrlen, "%s", tm->tm_zone ? tm->tm_zone : "");
		rc = 0;
	}
	setenv("TZ", saved ? saved : ":/etc/localtime", 1);
	tzset();
out:
	free(saved);
	free(tz);
	return rc;
}

enum tool_status tools_current_time_at(const char *zone, time_t t,
				       struct buf *result, struct buf *error)
{
	struct tm tm;
	/* sized for any int the compiler cannot rule out, not for real
	 * dates: -Wformat-truncation checks ranges, not calendars */
	char abbr[16], offset[16], iso[96];
	int off, h, m;

	if (!zone)
		zone = "UTC";
	if (!zone_name_ok(zone))
		return tools_fail(error,
				  "timezone is not a valid IANA time zone "
				  "name; use a name such as \"Europe/Berlin\","
				  " \"America/New_York\" or \"UTC\".");
	if (!is_utc(zone) && !zone_exists(zone))
		return tools_fail(error,
				  "Unknown time zone \"%s\"; use an IANA time "
				  "zone name such as \"Europe/Berlin\", "
				  "\"America/New_York\" or \"UTC\".",
				  zone);
	if (zone_localtime(zone, t, &tm, abbr, sizeof(abbr)))
		return tools_fail(error, "The time in %s cannot be computed.",
				  zone);

	/* offsets are whole minutes since 1972; the seconds of older local
	 * mean times are dropped, as RFC 3339 has no room for them */
	off = (int)(tm.tm_gmtoff / 60);
	h = abs(off) / 60;
	m = abs(off) % 60;
	snprintf(offset, sizeof(offset), "%c%02d:%02d", off < 0 ? '-' : '+', h,
		 m);
	snprintf(iso, sizeof(iso), "%04d-%02d-%02dT%02d:%02d:%02d%s",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, offset);

	buf_adds(result, "{\"timezone\":");
	buf_add_json_str(result, zone, strlen(zone));
	buf_adds(result, ",\"iso8601\":");
	buf_add_json_str(result, iso, strlen(iso));
	buf_addf(result, ",\"unix\":%lld,\"human\":", (long long)t);
	{
		struct buf human = BUF_INIT;
		buf_init(&human, 64);
		buf_addf(&human, "%s, %d %s %04d, %02d:%02d:%02d %s (UTC%s)",
			 weekdays[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
			 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 abbr, offset);
		buf_add_json_str(result, human.data, human.len);
		buf_release(&human);
	}
	buf_addf(result, ",\"weekday\":\"%s\",\"utc_offset\":\"%s\"}",
		 weekdays[tm.tm_wday], offset);
	return TOOL_OK;
}

enum tool_status tools_current_time(const struct tool_ctx *c,
				    struct json_object *args,
				    struct buf *result, struct buf *error)
{
	struct json_object *z = NULL;
	const char *zone = NULL;

	(void)c;
	/* the schema made it a string of at most 64 characters */
	if (json_object_object_get_ex(args, "timezone", &z))
		zone = json_object_get_string(z);
	if (zone && strlen(zone) != (size_t)json_object_get_string_len(z))
		return tools_fail(error, "timezone must not contain NUL.");
	return tools_current_time_at(zone, time(NULL), result, error);
}
