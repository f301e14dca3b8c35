/* Unit tests for the pool allocator. */
#include <stdint.h>

#include "mc.pb-c.h"
#include "pool.h"
#include "test.h"

int
main(void)
{
	struct mc_pool *pool = mc_pool_new();
	char *big;

	for (int i = 0; i < 10000; i++) {
		unsigned char *p = mc_pool_alloc(pool, (size_t)(i % 100) + 1);

		CHECK(((uintptr_t)p & 15) == 0 && p[0] == 0);
		p[0] = 0xff;
	}
	big = mc_pool_alloc(pool, 1 << 20);
	CHECK(big[0] == 0 && big[(1 << 20) - 1] == 0);
	CHECK_STR(mc_pool_strdup(pool, "hello"), "hello");
	CHECK_STR(mc_pool_strndup(pool, "hello", 3), "hel");
	{
		/* protobuf-c unpack through the pool: freed with it. */
		Mc__Domain d = MC__DOMAIN__INIT;
		uint8_t buf[64];
		size_t n;
		Mc__Domain *u;

		d.id = 7;
		d.name = "example.test";
		n = mc__domain__pack(&d, buf);
		u = mc__domain__unpack(mc_pool_protobuf_allocator(pool), n, buf);
		CHECK(u != NULL && u->id == 7);
		CHECK_STR(u ? u->name : NULL, "example.test");
		CHECK(mc__domain__unpack(mc_pool_protobuf_allocator(pool), 3,
		                         (const uint8_t *)"\xff\xff\xff") == NULL);
	}
	mc_pool_free(&pool);
	CHECK(pool == NULL);
	mc_pool_free(&pool);
	return mc_test_done();
}
