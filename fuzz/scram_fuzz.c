/* Fuzz target: SCRAM-SHA-256 messages from a client, through lib/scram's
 * server exchange. The first byte picks the verifier (bit 0: the RFC 7677
 * one for "pencil", else none, i.e. the fake) and whether the server nonce
 * is the RFC's fixed one (bit 1) so seeds can complete the exchange; the
 * rest is the client-first-message up to the first '\n' and the
 * client-final-message after it. The whole input also goes through the
 * verifier check. Checked: every call returns 0 or -1, a failure has a
 * reason and a failure kind and stops the exchange, produced messages are
 * NUL-terminated at their length and start as the grammar says, the
 * username is safe to log, and an exchange without a real verifier never
 * succeeds. Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scram.h"

#define MUST(cond)                                                             \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "scram_fuzz: %s failed\n", #cond);     \
			abort();                                               \
		}                                                              \
	} while (0)

#define RFC_VERIFIER                                                           \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"                         \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                        \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r);

static void
check_failed(struct mc_scram_server *s, int ret, const char *error)
{
	const char *out;
	size_t len;

	MUST(ret == -1 && error != NULL);
	MUST(mc_scram_server_failure(s) != MC_SCRAM_FAIL_NONE);
	/* a failed exchange refuses everything after */
	MUST(mc_scram_server_final(s, "c=biws", 6, &out, &len, &error) == -1);
}

static void
check_username(const char *u)
{
	MUST(strlen(u) < MC_SCRAM_USERNAME_MAX);
	for (const unsigned char *p = (const unsigned char *)u; *p; p++)
		MUST(*p >= 0x20 && *p != 0x7f);
}

static void
exchange(unsigned mode, const char *first, size_t first_len, const char *final,
         size_t final_len)
{
	struct mc_scram_server *s = mc_scram_server_new();
	const char *out = NULL, *error = NULL;
	size_t len = 0;
	int ret;

	ret = mc_scram_server_first(s, first, first_len, &error);
	check_username(mc_scram_server_username(s));
	if (ret != 0) {
		check_failed(s, ret, error);
		goto out;
	}
	MUST(mc_scram_server_username(s)[0] != '\0');
	if (mode & 2)
		mc_scram_server_set_nonce_for_test(s, RFC_SNONCE);
	ret = mc_scram_server_challenge(s, mode & 1 ? RFC_VERIFIER : NULL, &out,
	                                &len, &error);
	MUST(ret == 0 && out != NULL && strlen(out) == len);
	MUST(strncmp(out, "r=", 2) == 0 && strstr(out, ",s=") != NULL &&
	     strstr(out, ",i=") != NULL);
	if (final == NULL)
		goto out;
	out = NULL;
	ret = mc_scram_server_final(s, final, final_len, &out, &len, &error);
	if (ret != 0) {
		check_failed(s, ret, error);
		goto out;
	}
	MUST(mode & 1);
	MUST(mc_scram_server_failure(s) == MC_SCRAM_FAIL_NONE);
	MUST(out != NULL && strlen(out) == len && len == 46 &&
	     strncmp(out, "v=", 2) == 0);
out:
	mc_scram_server_free(&s);
	MUST(s == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy;
	const char *text, *nl;
	size_t first_len;
	unsigned mode;

	/* The verifier check takes a C string. */
	copy = malloc(size + 1);
	MUST(copy != NULL);
	memcpy(copy, data, size);
	copy[size] = '\0';
	(void)mc_scram_verifier_valid(copy);
	free(copy);
	if (size == 0)
		return 0;
	mode = data[0];
	text = (const char *)data + 1;
	size--;
	nl = memchr(text, '\n', size);
	first_len = nl != NULL ? (size_t)(nl - text) : size;
	exchange(mode, text, first_len, nl != NULL ? nl + 1 : NULL,
	         nl != NULL ? size - first_len - 1 : 0);
	return 0;
}

static const char *const seed_text[] = {
        /* RFC 7677 section 3, succeeding */
        "\x03"
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO\n"
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        /* the same against the fake verifier */
        "\x02"
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO\n"
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "\x03"
        "y,a=us=2Cer=3D,n=us=2Cer=3D,r=abc,x=ext\n"
        "c=eSxhPXVzPTJDZXI9M0Qs,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "y=1,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "\x01"
        "p=tls-unique,,n=user,r=abc\n",
        "\x01"
        "n,,m=x,n=caf\xc3\xa9,r=abc\n",
        "\x00" RFC_VERIFIER,
};

#define NSEEDS (sizeof(seed_text) / sizeof(seed_text[0]))

size_t
mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r)
{
	static const uint8_t *seeds[NSEEDS];
	static size_t sizes[NSEEDS];

	for (size_t i = 0; i < NSEEDS; i++) {
		seeds[i] = (const uint8_t *)seed_text[i];
		/* seed 6 starts with a NUL mode byte */
		sizes[i] = i == NSEEDS - 1 ? 1 + strlen(seed_text[i] + 1)
		                           : strlen(seed_text[i]);
	}
	*seeds_r = seeds;
	*sizes_r = sizes;
	return NSEEDS;
}
