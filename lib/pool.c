/* Chunked bump allocator; see pool.h. Large requests get a chunk of their
 * own so one big snapshot does not waste a pool's worth of slack. */
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define POOL_CHUNK (16 * 1024)
#define POOL_ALIGN 16

struct pool_chunk {
	struct pool_chunk *next;
	size_t size, used;
	_Alignas(POOL_ALIGN) unsigned char data[];
};

struct mc_pool {
	struct pool_chunk *chunks;
	ProtobufCAllocator allocator;
};

static void *
pb_alloc(void *data, size_t size)
{
	return mc_pool_alloc(data, size);
}

static void
pb_free(void *data, void *p)
{
	/* Freed with the pool. */
	(void)data;
	(void)p;
}

struct mc_pool *
mc_pool_new(void)
{
	struct mc_pool *pool = mc_malloc(sizeof(*pool));

	pool->allocator.alloc = pb_alloc;
	pool->allocator.free = pb_free;
	pool->allocator.allocator_data = pool;
	return pool;
}

void
mc_pool_free(struct mc_pool **poolp)
{
	struct mc_pool *pool = *poolp;

	if (pool == NULL)
		return;
	while (pool->chunks != NULL) {
		struct pool_chunk *c = pool->chunks;

		pool->chunks = c->next;
		free(c);
	}
	free(pool);
	*poolp = NULL;
}

void *
mc_pool_alloc(struct mc_pool *pool, size_t size)
{
	struct pool_chunk *c = pool->chunks;
	size_t need = (size + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
	void *p;

	if (need < size)
		abort(); /* overflow: a programming error */
	if (c == NULL || c->size - c->used < need) {
		size_t csize = need > POOL_CHUNK / 4 ? need : POOL_CHUNK;

		/* Not zeroed here: every allocation is zeroed below, and a
		 * pool that serves a few small allocations must not pay for
		 * clearing the whole chunk. */
		if ((c = malloc(sizeof(*c) + csize)) == NULL)
			abort();
		c->size = csize;
		c->used = 0;
		if (csize == need && pool->chunks != NULL) {
			/* Dedicated chunk: keep the current one in front. */
			c->next = pool->chunks->next;
			pool->chunks->next = c;
		} else {
			c->next = pool->chunks;
			pool->chunks = c;
		}
	}
	p = c->data + c->used;
	c->used += need;
	memset(p, 0, size);
	return p;
}

char *
mc_pool_strndup(struct mc_pool *pool, const char *s, size_t n)
{
	char *d = mc_pool_alloc(pool, n + 1);

	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *
mc_pool_strdup(struct mc_pool *pool, const char *s)
{
	return mc_pool_strndup(pool, s, strlen(s));
}

ProtobufCAllocator *
mc_pool_protobuf_allocator(struct mc_pool *pool)
{
	return &pool->allocator;
}
