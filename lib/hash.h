/* A small open-addressing hash table (linear probing, backward-shift
 * deletion, no tombstones) mapping a key to a void * value. Keys are
 * either uint64_t or NUL-terminated strings, chosen at creation, and are
 * borrowed: the table stores the key pointer the caller passed, which must
 * stay valid and unchanged while the entry exists (typically it points into
 * the value itself, e.g. &obj->id or obj->name). Values are never freed by
 * the table.
 *
 * Lookups, inserts and removals are O(1) on average; the table doubles when
 * three quarters full. Not thread-safe. */
#ifndef MC_HASH_H
#define MC_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mc_hash_kind {
	MC_HASH_U64, /* keys are const uint64_t * */
	MC_HASH_STR, /* keys are const char * (compared with strcmp) */
};

struct mc_hash;

struct mc_hash *mc_hash_new(enum mc_hash_kind kind);
/* NULL-safe; sets *h to NULL. Values are left to their owner. */
void mc_hash_free(struct mc_hash **h);

size_t mc_hash_count(const struct mc_hash *h);

/* The value stored under key, or NULL. */
void *mc_hash_get(const struct mc_hash *h, const void *key);

/* Insert key -> value (value must not be NULL). When the key is present
 * both the stored key pointer and the value are replaced and the previous
 * value is returned; otherwise NULL. */
void *mc_hash_put(struct mc_hash *h, const void *key, void *value);

/* Remove key; returns its value, or NULL when absent. */
void *mc_hash_remove(struct mc_hash *h, const void *key);

/* Remove every entry (values are left to their owner). */
void mc_hash_clear(struct mc_hash *h);

/* Iterate: start with *pos = 0; each call stores the next value in
 * *value_r and returns true, false at the end. The table must not be
 * modified during an iteration. Order is unspecified. */
bool mc_hash_next(const struct mc_hash *h, size_t *pos, void **value_r);

#endif
