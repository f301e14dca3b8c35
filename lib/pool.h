/* Memory pool for one unit of work (an RPC, a CLI run): many small
 * allocations, freed together in one call. Also provides a
 * ProtobufCAllocator so a message unpacked through it dies with the pool.
 * Not thread-safe; a pool belongs to whoever runs the unit of work. */
#ifndef MC_POOL_H
#define MC_POOL_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct mc_pool;

struct mc_pool *mc_pool_new(void);
/* Free every allocation and the pool; NULL-safe, sets *pool to NULL. */
void mc_pool_free(struct mc_pool **pool);
/* Zeroed memory valid until the pool is freed; aborts on OOM. */
void *mc_pool_alloc(struct mc_pool *pool, size_t size);
char *mc_pool_strdup(struct mc_pool *pool, const char *s);
char *mc_pool_strndup(struct mc_pool *pool, const char *s, size_t n);
/* An allocator for protobuf-c unpack calls backed by the pool. The
 * returned struct lives inside the pool. */
ProtobufCAllocator *mc_pool_protobuf_allocator(struct mc_pool *pool);

#endif
