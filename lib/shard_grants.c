/* Shard lease grants with local deadlines; see shard_grants.h. A flat
 * array indexed by shard: shard counts are small (64 by default) and a
 * check is on every store write. */
#include "shard_grants.h"

#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "mem.h"

struct grant {
	uint64_t epoch; /* 0 = not granted */
	uint64_t valid_until_ms;
};

struct mc_shard_grants {
	struct grant *grants;
	size_t cap; /* entries in grants */
};

struct mc_shard_grants *
mc_shard_grants_new(void)
{
	return mc_malloc(sizeof(struct mc_shard_grants));
}

void
mc_shard_grants_free(struct mc_shard_grants **g)
{
	if (*g == NULL)
		return;
	free((*g)->grants);
	free(*g);
	*g = NULL;
}

uint32_t
mc_shard_grants_margin(uint32_t ttl_ms)
{
	uint32_t m = ttl_ms / 5;

	return m < 500 ? 500 : m;
}

void
mc_shard_grants_clear(struct mc_shard_grants *g)
{
	if (g->cap > 0)
		memset(g->grants, 0, g->cap * sizeof(*g->grants));
}

void
mc_shard_grants_update(struct mc_shard_grants *g, Mc__LeaseGrant *const *grants,
                       size_t n, uint64_t sent_ms, uint32_t ttl_ms)
{
	uint32_t margin = mc_shard_grants_margin(ttl_ms);
	uint64_t until = ttl_ms > margin ? sent_ms + ttl_ms - margin : 0;

	mc_shard_grants_clear(g);
	for (size_t i = 0; i < n; i++) {
		const Mc__LeaseGrant *lg = grants[i];

		if (lg == NULL || lg->epoch == 0 || lg->shard >= MC_DIRECTORY_MAX_SHARDS)
			continue;
		if (lg->shard >= g->cap) {
			size_t cap = (size_t)lg->shard + 1;

			g->grants = mc_realloc(g->grants, cap * sizeof(*g->grants));
			memset(g->grants + g->cap, 0, (cap - g->cap) * sizeof(*g->grants));
			g->cap = cap;
		}
		g->grants[lg->shard].epoch = lg->epoch;
		g->grants[lg->shard].valid_until_ms = until;
	}
}

bool
mc_shard_grants_check(const struct mc_shard_grants *g, uint32_t shard,
                      uint64_t now_ms, uint64_t *epoch_r)
{
	const struct grant *gr;

	if (shard >= g->cap)
		return false;
	gr = &g->grants[shard];
	if (gr->epoch == 0 || now_ms >= gr->valid_until_ms)
		return false;
	*epoch_r = gr->epoch;
	return true;
}

size_t
mc_shard_grants_count(const struct mc_shard_grants *g, uint64_t now_ms)
{
	size_t n = 0;

	for (size_t i = 0; i < g->cap; i++)
		if (g->grants[i].epoch != 0 && now_ms < g->grants[i].valid_until_ms)
			n++;
	return n;
}
