/* Stand-alone driver for the fuzz targets when libFuzzer is not linked
 * (gcc builds, ctest): feeds each target a bounded, deterministic stream of
 * inputs made by mutating its seeds (bit flips, truncation, splices, random
 * bytes), so the harnesses run in every test run and cannot rot. The real
 * coverage-guided runs use clang -fsanitize=fuzzer (see fuzz/README.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Each target provides seeds: well-formed inputs to mutate. */
size_t mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r);

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

int
main(int argc, char **argv)
{
	const uint8_t **seeds;
	const size_t *sizes;
	size_t nseeds = mc_fuzz_seeds(&seeds, &sizes);
	long runs = argc > 1 ? atol(argv[1]) : 20000;

	/* "--dump-seeds DIR": write the seeds as files, to prime a libFuzzer
	 * corpus (see fuzz/README.md). */
	if (argc > 2 && strcmp(argv[1], "--dump-seeds") == 0) {
		for (size_t i = 0; i < nseeds; i++) {
			char path[4096];
			FILE *f;

			snprintf(path, sizeof(path), "%s/seed-%zu", argv[2], i);
			if ((f = fopen(path, "wb")) == NULL ||
			    fwrite(seeds[i], 1, sizes[i], f) != sizes[i] || fclose(f) != 0) {
				perror(path);
				return 1;
			}
		}
		return 0;
	}
	uint8_t buf[8192];
	long done = 0;

	for (size_t i = 0; i < nseeds; i++, done++)
		LLVMFuzzerTestOneInput(seeds[i], sizes[i]);
	for (long i = 0; i < runs; i++, done++) {
		size_t s = rnd() % nseeds, len = sizes[s];
		unsigned op = rnd() % 4;

		if (len > sizeof(buf))
			len = sizeof(buf);
		memcpy(buf, seeds[s], len);
		if (op == 0 && len > 0) { /* flip a few bits */
			for (int k = 0; k < 1 + (int)(rnd() % 8); k++)
				buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
		} else if (op == 1 && len > 0) { /* truncate */
			len = rnd() % len;
		} else if (op == 2 && len > 0) { /* overwrite a run with random bytes */
			size_t at = rnd() % len, n = 1 + rnd() % 16;
			for (size_t k = at; k < len && k < at + n; k++)
				buf[k] = (uint8_t)rnd();
		} else { /* pure random */
			len = rnd() % 512;
			for (size_t k = 0; k < len; k++)
				buf[k] = (uint8_t)rnd();
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("%ld passed, 0 failed\n", done);
	return 0;
}
