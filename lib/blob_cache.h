/* A bounded LRU cache of blob contents for the blob store front (blob.c):
 * blobs are immutable and named by their SHA-256, so a cached copy can
 * never be stale and needs no invalidation. Pays where reads are remote
 * (S3) and repeated: a mail client fetching a message's header, then its
 * body, then an attachment reads the blob three times.
 *
 * Holds at most max_bytes of content; blobs larger than max_bytes / 8 are
 * never cached (one big attachment must not flush everything else). Loop
 * thread only, like the store. */
#ifndef MC_BLOB_CACHE_H
#define MC_BLOB_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct mc_blob_cache;

/* max_bytes 0: no cache (NULL is returned and every call below accepts
 * NULL as "no cache"). */
struct mc_blob_cache *mc_blob_cache_new(size_t max_bytes);
void mc_blob_cache_free(struct mc_blob_cache **cache);

/* A hit: a new malloc'ed copy (plus a NUL after len bytes) the caller
 * owns; NULL on a miss. */
uint8_t *mc_blob_cache_get(struct mc_blob_cache *cache, const char *key,
                           size_t max_size, size_t *len_r);
/* Remember data (copied) under key, evicting the least recently used. */
void mc_blob_cache_put(struct mc_blob_cache *cache, const char *key,
                       const uint8_t *data, size_t len);

/* Forget key (the blob is being deleted). */
void mc_blob_cache_remove(struct mc_blob_cache *cache, const char *key);

struct mc_blob_cache_stats {
	uint64_t hits, misses;
	size_t bytes, entries;
};
void mc_blob_cache_stats(const struct mc_blob_cache *cache,
                         struct mc_blob_cache_stats *stats_r);

#endif
