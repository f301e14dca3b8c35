/* Fuzz target: the relay's queue envelope files. A spool can hold a file
 * damaged by a disk or an operator; parsing any bytes must end in a clean
 * error or an envelope that formats and parses back to the same text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_queue_envelope *env = NULL, *again = NULL;
	const char *err = NULL;
	char *text, *text2;

	if (relay_queue_envelope_parse((const char *)data, size, &env, &err) < 0)
		return 0;
	/* Whatever parses must format, and re-parse to the same text. */
	text = relay_queue_envelope_format(env, &err);
	if (text == NULL)
		abort();
	if (relay_queue_envelope_parse(text, strlen(text), &again, &err) < 0)
		abort();
	text2 = relay_queue_envelope_format(again, &err);
	if (text2 == NULL || strcmp(text, text2) != 0)
		abort();
	free(text);
	free(text2);
	relay_queue_envelope_free(&env);
	relay_queue_envelope_free(&again);
	return 0;
}

/* One seed: an envelope as the queue writes it. */
static const uint8_t *seed_ptrs[1];
static size_t seed_sizes[1];

size_t
mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r)
{
	struct relay_queue_envelope *env = relay_queue_envelope_new();
	struct relay_queue_rcpt *rc;
	const char *err = NULL;
	static char *text;

	strcpy(env->id, "0c9s4x7k2m1hq3z8r5w");
	strcpy(env->sha256,
	       "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
	env->size = 4;
	env->received = 1700000000;
	relay_queue_envelope_add_rcpt(env, "alice@example.test");
	rc = relay_queue_envelope_add_rcpt(env, "bob@example.test");
	rc->attempts = 3;
	text = relay_queue_envelope_format(env, &err);
	relay_queue_envelope_free(&env);
	if (text == NULL) {
		fprintf(stderr, "seed: %s\n", err);
		abort();
	}
	seed_ptrs[0] = (const uint8_t *)text;
	seed_sizes[0] = strlen(text);
	*seeds_r = seed_ptrs;
	*sizes_r = seed_sizes;
	return 1;
}
