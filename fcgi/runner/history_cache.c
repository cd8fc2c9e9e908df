/*
 * history_cache: each session's earlier conversation, kept by the runner
 * between turns. Events never change, so a runner that has read a
 * session's events up to sequence N only asks the database for what came
 * after N (evr_turn_config's p_after); without it every turn would re-read
 * and re-convert the whole conversation, which grows with every turn. Only
 * events of turns that ended before the claimed one are kept, so a
 * takeover always reads its own turn's progress afresh. The entry also
 * knows whether its events hold any non-text message part, so a turn of a
 * session without images skips the cached events when it looks for image
 * parts (turn_load.c, image_fetch.c), and it keeps the messages built of
 * them (history.c's prefix). The turn's events array is the entry's own:
 * the kept events, then the fresh ones (a merge appends, it never copies
 * the conversation), cut back to the kept ones at the session's next
 * merge. Per turn, the work on the history is proportional to the new
 * events, not the whole conversation. Bounded by
 * `history_cache_sessions` (least recently used goes first).
 */
#include "runner.h"
#include "config.h"
#include "json.h"
#include "strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hentry {
	char session[33];
	long long last_seq;
	int images; /* some input.message of events has a non-text part */
	/* owned: the conversation events of the turns before the last
	 * merge's (the first `kept`), then that turn's own: the array its
	 * turn reads and adds to (until the session's next merge) */
	struct json_object *events;
	size_t kept;
	struct history_prefix *pre;   /* owned: their messages (history.c) */
	struct hentry *newer, *older; /* the LRU list */
};

static struct strmap tab; /* session -> entry */
static struct hentry *newest, *oldest;

static void unlink_entry(struct hentry *h)
{
	if (h->newer)
		h->newer->older = h->older;
	else
		newest = h->older;
	if (h->older)
		h->older->newer = h->newer;
	else
		oldest = h->newer;
	h->newer = h->older = NULL;
}

static void push_newest(struct hentry *h)
{
	h->older = newest;
	h->newer = NULL;
	if (newest)
		newest->newer = h;
	newest = h;
	if (!oldest)
		oldest = h;
}

static struct hentry *find(const char *session)
{
	return strmap_get(&tab, session);
}

long long history_cache_after(const char *session)
{
	struct hentry *h = find(session);
	return h ? h->last_seq : 0;
}

static long long seq_of(struct json_object *e)
{
	struct json_object *v = NULL;
	json_object_object_get_ex(e, "seq", &v);
	return v ? json_object_get_int64(v) : 0;
}

static int is_current(struct json_object *e, const char *turn_ref)
{
	struct json_object *v = NULL;
	json_object_object_get_ex(e, "turn_id", &v);
	return v && json_object_is_type(v, json_type_string) &&
	       !strcmp(json_object_get_string(v), turn_ref);
}

/* An input.message with a part that is not text (an image). */
static int has_image(struct json_object *e)
{
	struct json_object *parts =
		jx_get(jx_get(jx_get(e, "data"), "message"), "content");
	const char *type = jx_gets(e, "type");
	size_t j;

	if (!type || strcmp(type, "input.message") || !parts ||
	    !json_object_is_type(parts, json_type_array))
		return 0;
	for (j = 0; j < json_object_array_length(parts); j++) {
		const char *pt =
			jx_gets(json_object_array_get_idx(parts, j), "type");
		if (!pt || strcmp(pt, "text"))
			return 1;
	}
	return 0;
}

struct json_object *history_cache_merge(const char *session, const char *turn,
					struct json_object *fresh,
					size_t *plain, size_t *cached)
{
	struct hentry *h = find(session);
	size_t i, n = json_object_array_length(fresh), len;
	int kept = 1;
	char ref[40];

	snprintf(ref, sizeof(ref), "trn_%s", turn);
	if (!h) {
		size_t cap = (size_t)config_int("history_cache_sessions");
		if (plain)
			*plain = 0;
		if (cached)
			*cached = 0;
		if (cap == 0)
			return json_object_get(fresh);
		if (tab.n >= cap &&
		    oldest) { /* evict the least recently used */
			h = oldest;
			unlink_entry(h);
			strmap_del(&tab, h->session);
			json_object_put(h->events);
			history_prefix_free(h->pre);
		} else {
			h = xmalloc(sizeof(*h));
		}
		memset(h, 0, sizeof(*h));
		memcpy(h->session, session, 33);
		h->events = json_object_new_array();
		strmap_put(&tab, h->session, h);
		push_newest(h);
	} else {
		if (plain)
			*plain = h->images ? 0 : h->kept;
		if (cached)
			*cached = h->kept;
	}
	/* the previous turn's tail goes; the fresh events follow the kept
	 * ones, and those before this turn's are kept too */
	len = json_object_array_length(h->events);
	if (len > h->kept)
		json_object_array_del_idx(h->events, h->kept, len - h->kept);
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(fresh, i);
		json_object_array_add(h->events, json_object_get(e));
		if (kept && is_current(e, ref))
			kept = 0; /* this turn and anything after it */
		if (!kept)
			continue;
		h->kept++;
		h->last_seq = seq_of(e);
		if (!h->images && has_image(e))
			h->images = 1;
	}
	unlink_entry(h);
	push_newest(h);
	return json_object_get(h->events);
}

struct history_prefix **history_cache_prefix(const char *session)
{
	struct hentry *h = find(session);
	return h ? &h->pre : NULL;
}

void history_cache_free(void)
{
	struct hentry *h, *next;
	for (h = newest; h; h = next) {
		next = h->older;
		json_object_put(h->events);
		history_prefix_free(h->pre);
		free(h);
	}
	newest = oldest = NULL;
	strmap_release(&tab);
}
