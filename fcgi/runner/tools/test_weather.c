/*
 * test_weather: get_weather(city), the test_weather capability's tool for
 * tests and the simulator (ARCHITECTURE 6.2).
 *
 * Invented but deterministic: every value derives from an FNV-1a hash of
 * the city name with ASCII case and surrounding spaces folded, so "Paris"
 * and " paris" get the same weather on every host and every run, and
 * tests can rely on it. The result says it is simulated, so a model
 * does not present it as real:
 * {"city","temperature_c","conditions","humidity_percent","wind_kph",
 *  "wind_direction","summary","simulated":true}
 */
#include "tools_internal.h"

#include <stdint.h>
#include <string.h>

static const char *const conditions[] = {
	"sunny", "partly cloudy", "cloudy", "light rain",
	"rain",  "thunderstorms", "fog",    "snow",
};

static const char *const directions[] = {"N", "NE", "E", "SE",
					 "S", "SW", "W", "NW"};

static uint32_t fnv1a_folded(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		h ^= ch;
		h *= 16777619u;
	}
	return h;
}

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

enum tool_status tools_weather(const struct tool_ctx *c,
			       struct json_object *args, struct buf *result,
			       struct buf *error)
{
	struct json_object *v = NULL;
	const char *city;
	size_t len;
	uint32_t h;
	unsigned cond, humidity, wind;
	int temp;

	(void)c;
	json_object_object_get_ex(args, "city", &v);
	city = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	while (len && is_space(*city))
		city++, len--;
	while (len && is_space(city[len - 1]))
		len--;
	if (!len)
		return tools_fail(error, "city must not be blank.");
	if (!utf8_valid(city, len, 1))
		return tools_fail(error, "city must be UTF-8 text without "
					 "control characters.");

	h = fnv1a_folded(city, len);
	cond = h % 8;
	/* snow at or below freezing, the rest between -5 and 35 C */
	if (!strcmp(conditions[cond], "snow"))
		temp = -(int)((h >> 3) % 10);
	else
		temp = (int)((h >> 3) % 41) - 5;
	humidity = 30 + (h >> 9) % 66;
	wind = (h >> 16) % 46;

	buf_adds(result, "{\"city\":");
	buf_add_json_str(result, city, len);
	buf_addf(result,
		 ",\"temperature_c\":%d,\"conditions\":\"%s\","
		 "\"humidity_percent\":%u,\"wind_kph\":%u,"
		 "\"wind_direction\":\"%s\",\"summary\":",
		 temp, conditions[cond], humidity, wind,
		 directions[(h >> 24) % 8]);
	{
		struct buf s = BUF_INIT;
		buf_add(&s, city, len);
		buf_addf(&s, ": %d C, %s, humidity %u%%, wind %u km/h %s", temp,
			 conditions[cond], humidity, wind,
			 directions[(h >> 24) % 8]);
		buf_add_json_str(result, s.data, s.len);
		buf_release(&s);
	}
	buf_adds(result, ",\"simulated\":true}");
	return TOOL_OK;
}
