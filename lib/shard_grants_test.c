/* Unit tests for shard lease grants and their local deadlines. */
#include "directory.h"
#include "shard_grants.h"
#include "test.h"

static Mc__LeaseGrant *
grant(Mc__LeaseGrant *g, uint32_t shard, uint64_t epoch)
{
	mc__lease_grant__init(g);
	g->shard = shard;
	g->epoch = epoch;
	return g;
}

int
main(void)
{
	struct mc_shard_grants *g = mc_shard_grants_new();
	Mc__LeaseGrant a, b, c, d;
	Mc__LeaseGrant *list[4] = {grant(&a, 0, 1), grant(&b, 5, 3),
	                           grant(&c, MC_DIRECTORY_MAX_SHARDS, 1),
	                           grant(&d, 7, 0)};
	uint64_t epoch = 0;

	CHECK(!mc_shard_grants_check(g, 0, 0, &epoch));
	CHECK(mc_shard_grants_margin(10000) == 2000);
	CHECK(mc_shard_grants_margin(1000) == 500);
	/* Sent at t=1000 with a 10 s TTL: valid until 1000 + 10000 - 2000. */
	mc_shard_grants_update(g, list, 4, 1000, 10000);
	CHECK(mc_shard_grants_check(g, 0, 1000, &epoch) && epoch == 1);
	CHECK(mc_shard_grants_check(g, 5, 8999, &epoch) && epoch == 3);
	CHECK(!mc_shard_grants_check(g, 5, 9000, &epoch));
	CHECK(!mc_shard_grants_check(g, 1, 1000, &epoch));
	CHECK(!mc_shard_grants_check(g, 7, 1000, &epoch)); /* epoch 0: ignored */
	CHECK(!mc_shard_grants_check(g, MC_DIRECTORY_MAX_SHARDS, 1000, &epoch));
	CHECK(mc_shard_grants_count(g, 1000) == 2);
	CHECK(mc_shard_grants_count(g, 9000) == 0);
	/* The next reply replaces the set: shard 5 is revoked at once. */
	mc_shard_grants_update(g, list, 1, 2000, 10000);
	CHECK(mc_shard_grants_check(g, 0, 9999, &epoch) && epoch == 1);
	CHECK(!mc_shard_grants_check(g, 5, 2001, &epoch));
	/* A TTL shorter than its margin grants nothing. */
	mc_shard_grants_update(g, list, 1, 3000, 400);
	CHECK(!mc_shard_grants_check(g, 0, 3000, &epoch));
	mc_shard_grants_update(g, list, 2, 4000, 10000);
	mc_shard_grants_clear(g);
	CHECK(mc_shard_grants_count(g, 4000) == 0);
	mc_shard_grants_free(&g);
	CHECK(g == NULL);
	mc_shard_grants_free(&g);
	return mc_test_done();
}
