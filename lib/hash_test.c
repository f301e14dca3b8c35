/* Unit tests for the open-addressing hash table: basic operations on both
 * key kinds, and a randomised run checked against a plain array model
 * (inserts, replacements and removals with heavy collisions in a small
 * key space, so backward-shift deletion is exercised across wrap-around). */
#include <stdint.h>
#include <stdlib.h>

#include "hash.h"
#include "test.h"

static void
test_str(void)
{
	struct mc_hash *h = mc_hash_new(MC_HASH_STR);
	char k1[] = "alice@example.com", k2[] = "bob@example.com";
	char k1b[] = "alice@example.com";
	int v1 = 1, v2 = 2, v3 = 3;
	size_t pos = 0, seen = 0;
	void *v;

	CHECK(mc_hash_get(h, "x") == NULL);
	CHECK(mc_hash_put(h, k1, &v1) == NULL);
	CHECK(mc_hash_put(h, k2, &v2) == NULL);
	CHECK(mc_hash_count(h) == 2);
	CHECK(mc_hash_get(h, "alice@example.com") == &v1);
	/* replacing swaps the borrowed key too */
	CHECK(mc_hash_put(h, k1b, &v3) == &v1);
	k1[0] = 'X';
	CHECK(mc_hash_get(h, "alice@example.com") == &v3);
	CHECK(mc_hash_count(h) == 2);
	while (mc_hash_next(h, &pos, &v))
		seen++;
	CHECK(seen == 2);
	CHECK(mc_hash_remove(h, "bob@example.com") == &v2);
	CHECK(mc_hash_remove(h, "bob@example.com") == NULL);
	CHECK(mc_hash_count(h) == 1);
	mc_hash_clear(h);
	CHECK(mc_hash_count(h) == 0);
	CHECK(mc_hash_get(h, "alice@example.com") == NULL);
	mc_hash_free(&h);
	CHECK(h == NULL);
	mc_hash_free(&h);
}

#define MODEL_KEYS 512
#define MODEL_OPS 200000

static void
test_model(void)
{
	struct mc_hash *h = mc_hash_new(MC_HASH_U64);
	static uint64_t keys[MODEL_KEYS];
	static int present[MODEL_KEYS];
	uint64_t probe;
	size_t count = 0, bad = 0, i, pos = 0, n = 0;
	unsigned seed = 12345;
	void *v;

	for (i = 0; i < MODEL_KEYS; i++)
		keys[i] = i * 7919;
	for (i = 0; i < MODEL_OPS; i++) {
		size_t k = (size_t)rand_r(&seed) % MODEL_KEYS;
		int op = rand_r(&seed) % 3;

		if (op < 2) { /* put (twice as likely: the table fills up) */
			void *prev = mc_hash_put(h, &keys[k], &present[k]);

			if ((prev != NULL) != (present[k] != 0))
				bad++;
			if (!present[k])
				count++;
			present[k] = 1;
		} else {
			void *prev = mc_hash_remove(h, &keys[k]);

			if ((prev != NULL) != (present[k] != 0))
				bad++;
			if (present[k])
				count--;
			present[k] = 0;
		}
		if (rand_r(&seed) % 64 == 0) { /* full cross-check */
			for (size_t j = 0; j < MODEL_KEYS; j++) {
				probe = keys[j];
				if ((mc_hash_get(h, &probe) != NULL) !=
				    (present[j] != 0))
					bad++;
			}
		}
		if (mc_hash_count(h) != count)
			bad++;
	}
	CHECK(bad == 0);
	while (mc_hash_next(h, &pos, &v))
		n++;
	CHECK(n == count);
	mc_hash_free(&h);
}

int
main(void)
{
	test_str();
	test_model();
	return mc_test_done();
}
