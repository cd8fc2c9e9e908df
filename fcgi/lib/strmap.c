/* strmap: see strmap.h. FNV-1a, chains, doubling at 3/4 load. */
#include "strmap.h"
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strmap_entry {
	struct strmap_entry *next;
	uint32_t hash;
	void *val;
	char key[];
};

static uint32_t hash_of(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct strmap_entry **slot(const struct strmap *m, const char *key,
				  uint32_t h)
{
	struct strmap_entry **p = &m->b[h & (m->nb - 1)];
	while (*p && ((*p)->hash != h || strcmp((*p)->key, key)))
		p = &(*p)->next;
	return p;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_entry **p;
	if (!m->n)
		return NULL;
	p = slot(m, key, hash_of(key));
	return *p ? (*p)->val : NULL;
}

static void grow(struct strmap *m)
{
	size_t nb = m->nb ? m->nb * 2 : 64, i;
	struct strmap_entry **b = calloc(nb, sizeof(*b));
	if (!b)
		abort();
	for (i = 0; i < m->nb; i++) {
		struct strmap_entry *e = m->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

void strmap_put(struct strmap *m, const char *key, void *val)
{
	uint32_t h = hash_of(key);
	struct strmap_entry **p, *e;
	size_t len;
	if (m->n + 1 > m->nb / 4 * 3)
		grow(m);
	p = slot(m, key, h);
	if (*p) {
		(*p)->val = val;
		return;
	}
	len = strlen(key);
	e = xmalloc(sizeof(*e) + len + 1);
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->val = val;
	e->next = NULL;
	*p = e;
	m->n++;
}

void *strmap_del(struct strmap *m, const char *key)
{
	struct strmap_entry **p, *e;
	void *val;
	if (!m->n)
		return NULL;
	p = slot(m, key, hash_of(key));
	if (!(e = *p))
		return NULL;
	*p = e->next;
	val = e->val;
	free(e);
	m->n--;
	return val;
}

void strmap_each(const struct strmap *m,
		 void (*fn)(const char *key, void *val, void *ctx), void *ctx)
{
	size_t i;
	struct strmap_entry *e;
	for (i = 0; i < m->nb; i++)
		for (e = m->b[i]; e; e = e->next)
			fn(e->key, e->val, ctx);
}

void strmap_release(struct strmap *m)
{
	size_t i;
	for (i = 0; i < m->nb; i++) {
		struct strmap_entry *e = m->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->b);
	m->b = NULL;
	m->nb = m->n = 0;
}
