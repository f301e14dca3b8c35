/* LRU cache of immutable blobs; see blob_cache.h. A hash from key to
 * entry plus a doubly linked recency list (head = most recent). */
#include "blob_cache.h"

#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "hash.h"
#include "mem.h"

struct entry {
	char key[MC_BLOB_KEY_LEN + 1];
	uint8_t *data;
	size_t len;
	struct entry *prev, *next;
};

struct mc_blob_cache {
	struct mc_hash *index; /* key -> struct entry */
	struct entry *head, *tail;
	size_t max_bytes, max_entry, bytes;
	uint64_t hits, misses;
};

struct mc_blob_cache *
mc_blob_cache_new(size_t max_bytes)
{
	struct mc_blob_cache *c;

	if (max_bytes == 0)
		return NULL;
	c = mc_malloc(sizeof(*c));
	c->index = mc_hash_new(MC_HASH_STR);
	c->max_bytes = max_bytes;
	c->max_entry = max_bytes / 8;
	return c;
}

static void
unlink_entry(struct mc_blob_cache *c, struct entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
push_front(struct mc_blob_cache *c, struct entry *e)
{
	e->next = c->head;
	if (c->head != NULL)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

static void
evict(struct mc_blob_cache *c, struct entry *e)
{
	unlink_entry(c, e);
	mc_hash_remove(c->index, e->key);
	c->bytes -= e->len;
	free(e->data);
	free(e);
}

void
mc_blob_cache_free(struct mc_blob_cache **cp)
{
	struct mc_blob_cache *c = *cp;

	if (c == NULL)
		return;
	while (c->head != NULL)
		evict(c, c->head);
	mc_hash_free(&c->index);
	free(c);
	*cp = NULL;
}

uint8_t *
mc_blob_cache_get(struct mc_blob_cache *c, const char *key, size_t max_size,
                  size_t *len_r)
{
	struct entry *e;
	uint8_t *copy;

	if (c == NULL)
		return NULL;
	e = mc_hash_get(c->index, key);
	if (e == NULL || e->len > max_size) {
		c->misses++;
		return NULL;
	}
	c->hits++;
	unlink_entry(c, e);
	push_front(c, e);
	copy = mc_malloc(e->len + 1);
	memcpy(copy, e->data, e->len);
	*len_r = e->len;
	return copy;
}

void
mc_blob_cache_put(struct mc_blob_cache *c, const char *key, const uint8_t *data,
                  size_t len)
{
	struct entry *e;

	if (c == NULL || len > c->max_entry || mc_hash_get(c->index, key) != NULL)
		return;
	while (c->tail != NULL && c->bytes + len > c->max_bytes)
		evict(c, c->tail);
	e = mc_malloc(sizeof(*e));
	memcpy(e->key, key, MC_BLOB_KEY_LEN + 1);
	e->data = mc_malloc(len + 1);
	memcpy(e->data, data, len);
	e->len = len;
	mc_hash_put(c->index, e->key, e);
	push_front(c, e);
	c->bytes += len;
}

void
mc_blob_cache_remove(struct mc_blob_cache *c, const char *key)
{
	struct entry *e = c != NULL ? mc_hash_get(c->index, key) : NULL;

	if (e != NULL)
		evict(c, e);
}

void
mc_blob_cache_stats(const struct mc_blob_cache *c, struct mc_blob_cache_stats *s)
{
	memset(s, 0, sizeof(*s));
	if (c == NULL)
		return;
	s->hits = c->hits;
	s->misses = c->misses;
	s->bytes = c->bytes;
	s->entries = mc_hash_count(c->index);
}
