/* Open-addressing hash table with borrowed keys; see hash.h. Each slot
 * caches its key's hash so probing compares keys only on a hash match and
 * growing never rehashes a string. Deletion shifts later members of the
 * probe run back instead of leaving tombstones, so a table that sees
 * constant churn (deltas deleting and recreating objects) never degrades. */
#include "hash.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define MC_HASH_MIN_CAP 16

struct mc_hash_slot {
	uint64_t hash;
	const void *key; /* NULL: empty */
	void *value;
};

struct mc_hash {
	enum mc_hash_kind kind;
	struct mc_hash_slot *slots;
	size_t cap; /* power of two */
	size_t count;
};

/* splitmix64 finaliser: spreads sequential ids over the whole table. */
static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t
hash_key(const struct mc_hash *h, const void *key)
{
	const unsigned char *p;
	uint64_t x = 0xcbf29ce484222325ULL; /* FNV-1a 64 */

	if (h->kind == MC_HASH_U64)
		return mix64(*(const uint64_t *)key);
	for (p = key; *p != '\0'; p++) {
		x ^= *p;
		x *= 0x100000001b3ULL;
	}
	return mix64(x);
}

static bool
key_equal(const struct mc_hash *h, const void *a, const void *b)
{
	if (h->kind == MC_HASH_U64)
		return *(const uint64_t *)a == *(const uint64_t *)b;
	return strcmp(a, b) == 0;
}

struct mc_hash *
mc_hash_new(enum mc_hash_kind kind)
{
	struct mc_hash *h = mc_malloc(sizeof(*h));

	h->kind = kind;
	h->cap = MC_HASH_MIN_CAP;
	h->slots = mc_calloc(h->cap, sizeof(*h->slots));
	return h;
}

void
mc_hash_free(struct mc_hash **h)
{
	if (*h == NULL)
		return;
	free((*h)->slots);
	free(*h);
	*h = NULL;
}

size_t
mc_hash_count(const struct mc_hash *h)
{
	return h->count;
}

/* Index of key's slot, or of the empty slot that ends its probe run. */
static size_t
find_slot(const struct mc_hash *h, const void *key, uint64_t hash)
{
	size_t mask = h->cap - 1, i = (size_t)hash & mask;

	while (h->slots[i].key != NULL) {
		if (h->slots[i].hash == hash &&
		    key_equal(h, h->slots[i].key, key))
			break;
		i = (i + 1) & mask;
	}
	return i;
}

static void
grow(struct mc_hash *h)
{
	struct mc_hash_slot *old = h->slots;
	size_t old_cap = h->cap, i;

	h->cap *= 2;
	h->slots = mc_calloc(h->cap, sizeof(*h->slots));
	for (i = 0; i < old_cap; i++) {
		size_t j;

		if (old[i].key == NULL)
			continue;
		j = (size_t)old[i].hash & (h->cap - 1);
		while (h->slots[j].key != NULL)
			j = (j + 1) & (h->cap - 1);
		h->slots[j] = old[i];
	}
	free(old);
}

void *
mc_hash_get(const struct mc_hash *h, const void *key)
{
	size_t i = find_slot(h, key, hash_key(h, key));

	return h->slots[i].key != NULL ? h->slots[i].value : NULL;
}

void *
mc_hash_put(struct mc_hash *h, const void *key, void *value)
{
	uint64_t hash = hash_key(h, key);
	size_t i = find_slot(h, key, hash);
	void *prev;

	if (h->slots[i].key != NULL) {
		prev = h->slots[i].value;
		h->slots[i].key = key;
		h->slots[i].value = value;
		return prev;
	}
	if ((h->count + 1) * 4 > h->cap * 3) {
		grow(h);
		i = find_slot(h, key, hash);
	}
	h->slots[i].hash = hash;
	h->slots[i].key = key;
	h->slots[i].value = value;
	h->count++;
	return NULL;
}

void *
mc_hash_remove(struct mc_hash *h, const void *key)
{
	size_t mask = h->cap - 1, i = find_slot(h, key, hash_key(h, key)), j;
	void *value = h->slots[i].value;

	if (h->slots[i].key == NULL)
		return NULL;
	/* Backward shift: move each later member of the run whose home slot
	 * is not cyclically within (i, j] into the hole. */
	for (j = (i + 1) & mask; h->slots[j].key != NULL; j = (j + 1) & mask) {
		size_t home = (size_t)h->slots[j].hash & mask;
		bool stays = i <= j ? (i < home && home <= j)
		                    : (i < home || home <= j);

		if (stays)
			continue;
		h->slots[i] = h->slots[j];
		i = j;
	}
	memset(&h->slots[i], 0, sizeof(h->slots[i]));
	h->count--;
	return value;
}

void
mc_hash_clear(struct mc_hash *h)
{
	memset(h->slots, 0, h->cap * sizeof(*h->slots));
	h->count = 0;
}

bool
mc_hash_next(const struct mc_hash *h, size_t *pos, void **value_r)
{
	for (; *pos < h->cap; (*pos)++) {
		if (h->slots[*pos].key != NULL) {
			*value_r = h->slots[(*pos)++].value;
			return true;
		}
	}
	return false;
}
