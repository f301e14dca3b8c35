/* Tests for lib/scram: the RFC 7677 section 3 exchange byte for byte,
 * verifiers from mc_scram_verifier_new checked by a client written here
 * from the RFC's formulas, fake verifiers, and hostile client messages
 * (missing and misplaced attributes, wrong nonce, bad proof, bad base64,
 * channel binding, limits), each leaving a failed exchange behind. */
#include "scram.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mem.h"
#include "test.h"

/* RFC 7677 section 3. */
#define RFC_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO" RFC_SNONCE
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_SERVER_FIRST "r=" RFC_NONCE ",s=" RFC_SALT ",i=4096"
#define RFC_PROOF "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_NONCE ",p=" RFC_PROOF
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static void
hmac(const unsigned char *key, const void *data, size_t len,
     unsigned char out[32])
{
	unsigned int n = 32;

	HMAC(EVP_sha256(), key, 32, data, len, out, &n);
}

static void
b64(const unsigned char *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* The client's keys from the password, salt (base64) and count. */
static void
client_keys(const char *password, const char *salt_b64, unsigned iterations,
            unsigned char client_key[32], unsigned char stored_key[32],
            unsigned char server_key[32])
{
	unsigned char salt[96], salted[32];
	int n = EVP_DecodeBlock(salt, (const unsigned char *)salt_b64,
	                        (int)strlen(salt_b64));
	size_t slen = (size_t)n;

	/* EVP_DecodeBlock counts the padding as zero bytes. */
	for (const char *p = salt_b64 + strlen(salt_b64);
	     p > salt_b64 && p[-1] == '='; p--)
		slen--;
	PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)slen,
	                  (int)iterations, EVP_sha256(), 32, salted);
	hmac(salted, "Client Key", 10, client_key);
	EVP_Digest(client_key, 32, stored_key, NULL, EVP_sha256(), NULL);
	hmac(salted, "Server Key", 10, server_key);
}

/* A verifier for password with a given salt: what mc_scram_verifier_new
 * makes, with the RFC's salt. */
static char *
verifier_with_salt(const char *password, const char *salt_b64,
                   unsigned iterations)
{
	unsigned char ck[32], sk[32], srv[32];
	char s1[64], s2[64];

	client_keys(password, salt_b64, iterations, ck, sk, srv);
	b64(sk, 32, s1);
	b64(srv, 32, s2);
	return mc_asprintf("SCRAM-SHA-256$%u:%s$%s:%s", iterations, salt_b64,
	                   s1, s2);
}

static struct mc_scram_server *
started(const char *first, const char *verifier, const char **sfirst_r)
{
	struct mc_scram_server *s = mc_scram_server_new();
	const char *out = NULL, *error = NULL;
	size_t len = 0;

	CHECK(mc_scram_server_first(s, first, strlen(first), &error) == 0);
	CHECK(mc_scram_server_challenge(s, verifier, &out, &len, &error) == 0);
	CHECK(out != NULL && strlen(out) == len);
	if (sfirst_r != NULL)
		*sfirst_r = out;
	return s;
}

static void
test_rfc7677(void)
{
	char *v = verifier_with_salt("pencil", RFC_SALT, 4096);
	struct mc_scram_server *s = mc_scram_server_new();
	const char *out = NULL, *error = NULL;
	size_t len = 0;

	/* The verifier Postgres documents for this password and salt. */
	CHECK_STR(v, "SCRAM-SHA-256$4096:" RFC_SALT "$"
	             "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	             "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
	CHECK(mc_scram_verifier_valid(v));
	CHECK_STR(mc_scram_server_username(s), "");
	CHECK(mc_scram_server_first(s, RFC_CLIENT_FIRST,
	                            strlen(RFC_CLIENT_FIRST), &error) == 0);
	CHECK_STR(mc_scram_server_username(s), "user");
	mc_scram_server_set_nonce_for_test(s, RFC_SNONCE);
	CHECK(mc_scram_server_challenge(s, v, &out, &len, &error) == 0);
	CHECK_STR(out, RFC_SERVER_FIRST);
	CHECK(len == strlen(RFC_SERVER_FIRST));
	CHECK(mc_scram_server_final(s, RFC_CLIENT_FINAL,
	                            strlen(RFC_CLIENT_FINAL), &out, &len,
	                            &error) == 0);
	CHECK_STR(out, RFC_SERVER_FINAL);
	CHECK(len == strlen(RFC_SERVER_FINAL));
	CHECK(mc_scram_server_failure(s) == MC_SCRAM_FAIL_NONE);
	/* Done: nothing more is accepted. */
	CHECK(mc_scram_server_final(s, RFC_CLIENT_FINAL,
	                            strlen(RFC_CLIENT_FINAL), &out, &len,
	                            &error) == -1);
	mc_scram_server_free(&s);
	CHECK(s == NULL);
	mc_scram_server_free(&s);

	/* Without the test nonce the server's part is 24 random chars
	 * after the client's. */
	s = started(RFC_CLIENT_FIRST, v, &out);
	CHECK(strncmp(out, "r=rOprNGfwEbeRWgbNEkqO", 22) == 0);
	CHECK(strstr(out, ",s=" RFC_SALT ",i=4096") == out + 22 + 24);
	mc_scram_server_free(&s);
	free(v);
}

/* A full exchange as a client would run it; returns the server's result
 * and checks v= when it succeeds. */
static int
run_client(const char *verifier, const char *password, const char *first,
           const char *cbind, enum mc_scram_failure *why_r)
{
	const char *gs2_end = strstr(first, ",n=") + 1;
	struct mc_scram_server *s = mc_scram_server_new();
	const char *sfirst, *out, *error = NULL;
	unsigned char ck[32], sk[32], srv[32], sig[32], proof[32], ssig[32];
	char salt[128], *auth, *final, pb64[64], expect[64];
	const char *sp, *ip;
	size_t len;
	int ret;

	CHECK(mc_scram_server_first(s, first, strlen(first), &error) == 0);
	CHECK(mc_scram_server_challenge(s, verifier, &sfirst, &len, &error) ==
	      0);
	sp = strstr(sfirst, ",s=") + 3;
	ip = strstr(sfirst, ",i=") + 3;
	memcpy(salt, sp, (size_t)(ip - 3 - sp));
	salt[ip - 3 - sp] = '\0';
	client_keys(password, salt, (unsigned)atoi(ip), ck, sk, srv);
	auth = mc_asprintf("%s,%s,c=%s,r=%.*s", gs2_end, sfirst, cbind,
	                   (int)(strstr(sfirst, ",s=") - sfirst - 2),
	                   sfirst + 2);
	hmac(sk, auth, strlen(auth), sig);
	for (int i = 0; i < 32; i++)
		proof[i] = ck[i] ^ sig[i];
	b64(proof, 32, pb64);
	hmac(srv, auth, strlen(auth), ssig);
	memcpy(expect, "v=", 2);
	b64(ssig, 32, expect + 2);
	final = mc_asprintf("%s,p=%s", strstr(auth, ",c=") + 1, pb64);
	ret = mc_scram_server_final(s, final, strlen(final), &out, &len,
	                            &error);
	if (ret == 0)
		CHECK_STR(out, expect);
	*why_r = mc_scram_server_failure(s);
	free(auth);
	free(final);
	mc_scram_server_free(&s);
	return ret;
}

static void
test_verifier_new(void)
{
	char *v = NULL, *v2 = NULL;
	const char *error = NULL;
	enum mc_scram_failure why;

	CHECK(mc_scram_verifier_new("correct horse", 13, MC_SCRAM_ITERATIONS,
	                            &v, &error) == 0);
	CHECK(mc_scram_verifier_new("correct horse", 13, MC_SCRAM_ITERATIONS,
	                            &v2, &error) == 0);
	CHECK(v != NULL && strncmp(v, "SCRAM-SHA-256$10000:", 20) == 0);
	CHECK(v != NULL && mc_scram_verifier_valid(v));
	CHECK(v != NULL && v2 != NULL && strcmp(v, v2) != 0); /* salted */
	if (v != NULL) {
		CHECK(run_client(v, "correct horse", "n,,n=bob,r=abcdefgh",
		                 "biws", &why) == 0);
		CHECK(run_client(v, "correct horse", "y,,n=bob,r=abcdefgh",
		                 "eSws", &why) == 0);
		/* authzid equal to the username: its GS2 header is bound */
		CHECK(run_client(v, "correct horse", "n,a=bob,n=bob,r=abcdefgh",
		                 "bixhPWJvYiw=", &why) == 0);
		CHECK(run_client(v, "correct horsE", "n,,n=bob,r=abcdefgh",
		                 "biws", &why) == -1 &&
		      why == MC_SCRAM_FAIL_AUTH);
		/* c= must be this exchange's header */
		CHECK(run_client(v, "correct horse", "n,,n=bob,r=abcdefgh",
		                 "eSws", &why) == -1 &&
		      why == MC_SCRAM_FAIL_AUTH);
	}
	/* No verifier, a broken one, or a fake: the right password fails
	 * exactly like a wrong one. */
	CHECK(run_client(NULL, "correct horse", "n,,n=bob,r=abcdefgh", "biws",
	                 &why) == -1 &&
	      why == MC_SCRAM_FAIL_AUTH);
	CHECK(run_client("", "correct horse", "n,,n=bob,r=abcdefgh", "biws",
	                 &why) == -1 &&
	      why == MC_SCRAM_FAIL_AUTH);
	CHECK(run_client("$argon2id$v=19$x", "x", "n,,n=bob,r=abcdefgh", "biws",
	                 &why) == -1 &&
	      why == MC_SCRAM_FAIL_AUTH);
	free(v);
	free(v2);

	v = NULL;
	CHECK(mc_scram_verifier_new("caf\xc3\xa9", 5, MC_SCRAM_ITERATIONS, &v,
	                            &error) == -1 &&
	      v == NULL && error != NULL);
	CHECK(mc_scram_verifier_new("a\tb", 3, MC_SCRAM_ITERATIONS, &v,
	                            &error) == -1);
	CHECK(mc_scram_verifier_new("", 0, MC_SCRAM_ITERATIONS, &v, &error) ==
	      -1);
	CHECK(mc_scram_verifier_new("pw", 2, 4095, &v, &error) == -1);
	CHECK(mc_scram_verifier_new("pw", 2, MC_SCRAM_ITERATIONS_MAX + 1, &v,
	                            &error) == -1);
	CHECK(mc_scram_verifier_new("with space ~", 12, 4096, &v, &error) == 0);
	CHECK(v != NULL && strncmp(v, "SCRAM-SHA-256$4096:", 19) == 0);
	free(v);
}

static void
test_verifier_valid(void)
{
	static const char *const bad[] = {
	        "",
	        "SCRAM-SHA-256$",
	        "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	        /* 4095 rounds; a leading zero; no count */
	        "SCRAM-SHA-256$4095:W22ZaJ0SNY7soEsUEjb6gQ==$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	        "SCRAM-SHA-256$04096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	        "SCRAM-SHA-256$:W22ZaJ0SNY7soEsUEjb6gQ==$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	        "SCRAM-SHA-256$10000001:W22ZaJ0SNY7soEsUEjb6gQ==$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	        /* 4-byte salt */
	        "SCRAM-SHA-256$4096:AAAAAA==$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	        /* non-canonical pad bits, missing padding, short key */
	        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gR==$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4Q==:"
	        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
	        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU= ",
	        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
	};
	char *v = verifier_with_salt("pencil", RFC_SALT, 4096);
	char big[600];

	CHECK(mc_scram_verifier_valid(v));
	CHECK(!mc_scram_verifier_valid(NULL));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!mc_scram_verifier_valid(bad[i]));
		if (mc_scram_verifier_valid(bad[i]))
			fprintf(stderr, "accepted: %s\n", bad[i]);
	}
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "SCRAM-SHA-256$4096:", 19);
	CHECK(!mc_scram_verifier_valid(big));
	free(v);
}

static void
test_fake(void)
{
	char a[MC_SCRAM_VERIFIER_MAX], b[MC_SCRAM_VERIFIER_MAX];
	char c[MC_SCRAM_VERIFIER_MAX];
	const char *s1, *s2;
	struct mc_scram_server *x, *y;

	mc_scram_verifier_fake("nobody", a, sizeof(a));
	mc_scram_verifier_fake("nobody", b, sizeof(b));
	mc_scram_verifier_fake("somebody", c, sizeof(c));
	CHECK(mc_scram_verifier_valid(a));
	CHECK(strncmp(a, "SCRAM-SHA-256$10000:", 20) == 0);
	CHECK(strcmp(a, b) == 0);
	CHECK(strcmp(a, c) != 0);
	/* An unknown user's challenge looks like a real one and keeps its
	 * salt from one attempt to the next. */
	x = started("n,,n=nobody,r=abcdefgh", NULL, &s1);
	y = started("n,,n=nobody,r=abcdefgh", "", &s2);
	CHECK(strcmp(strstr(s1, ",s="), strstr(s2, ",s=")) == 0);
	CHECK(strstr(s1, ",i=10000") != NULL);
	mc_scram_server_free(&x);
	mc_scram_server_free(&y);
}

struct first_case {
	const char *msg;
	enum mc_scram_failure why; /* NONE: accepted */
	const char *user;
};

static void
test_first_hostile(void)
{
	static const struct first_case cases[] = {
	        {"n,,n=user,r=abc", MC_SCRAM_FAIL_NONE, "user"},
	        {"y,,n=user,r=abc", MC_SCRAM_FAIL_NONE, "user"},
	        {"n,,n=us=2Cer,r=abc", MC_SCRAM_FAIL_NONE, "us,er"},
	        {"n,,n=a=3Db,r=abc", MC_SCRAM_FAIL_NONE, "a=b"},
	        {"n,,n=bob@example.org,r=a,x=ext", MC_SCRAM_FAIL_NONE,
	         "bob@example.org"},
	        {"n,,n=caf\xc3\xa9,r=abc", MC_SCRAM_FAIL_NONE, "caf\xc3\xa9"},
	        {"n,a=user,n=user,r=abc", MC_SCRAM_FAIL_NONE, "user"},
	        {"n,a=other,n=user,r=abc", MC_SCRAM_FAIL_UNSUPPORTED, NULL},
	        {"p=tls-unique,,n=user,r=abc", MC_SCRAM_FAIL_UNSUPPORTED, NULL},
	        {"p=tls-exporter,a=user,n=user,r=abc",
	         MC_SCRAM_FAIL_UNSUPPORTED, NULL},
	        {"n,,m=ext,n=user,r=abc", MC_SCRAM_FAIL_UNSUPPORTED, NULL},
	        {"", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"x,,n=user,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,x=y,n=user,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,a=,n=user,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,a=user", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"nn,,n=user,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user,", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,r=abc,n=user", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=us=er,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user=2,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user=2c,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=\x01user,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=\xffuser,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=\xc0\xafuser,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=\xed\xa0\x80,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=caf\xc3,r=abc", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user,r=", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user,r=a b", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user,r=a\x80", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user,r=abc,", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user,r=abc,xx", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user,r=abc,x=", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user,r=abc,r=def", MC_SCRAM_FAIL_MALFORMED, NULL},
	        {"n,,n=user,r=abc,1=x", MC_SCRAM_FAIL_MALFORMED, NULL},
	};
	const char *error;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mc_scram_server *s = mc_scram_server_new();
		int ret;

		error = NULL;
		ret = mc_scram_server_first(s, cases[i].msg,
		                            strlen(cases[i].msg), &error);
		CHECK(mc_scram_server_failure(s) == cases[i].why);
		if (cases[i].why == MC_SCRAM_FAIL_NONE) {
			CHECK(ret == 0);
			CHECK_STR(mc_scram_server_username(s), cases[i].user);
		} else {
			CHECK(ret == -1 && error != NULL);
		}
		if (mc_scram_server_failure(s) != cases[i].why)
			fprintf(stderr, "case %zu '%s': %s\n", i, cases[i].msg,
			        error ? error : "accepted");
		mc_scram_server_free(&s);
	}

	/* NUL bytes, the size limit, calls out of order */
	{
		struct mc_scram_server *s = mc_scram_server_new();
		static const char nul[] = "n,,n=us\0er,r=abc";
		char *big = mc_malloc(MC_SCRAM_MESSAGE_MAX + 2);
		const char *out;
		size_t len;

		CHECK(mc_scram_server_first(s, nul, sizeof(nul) - 1, &error) ==
		      -1);
		CHECK(mc_scram_server_failure(s) == MC_SCRAM_FAIL_MALFORMED);
		mc_scram_server_free(&s);

		memcpy(big, "n,,n=user,r=", 12);
		memset(big + 12, 'x', MC_SCRAM_MESSAGE_MAX - 12);
		s = mc_scram_server_new();
		CHECK(mc_scram_server_first(s, big, MC_SCRAM_MESSAGE_MAX,
		                            &error) == 0);
		CHECK(mc_scram_server_challenge(s, NULL, &out, &len, &error) ==
		      0);
		CHECK(len > MC_SCRAM_MESSAGE_MAX);
		mc_scram_server_free(&s);
		big[MC_SCRAM_MESSAGE_MAX] = 'x';
		s = mc_scram_server_new();
		CHECK(mc_scram_server_first(s, big, MC_SCRAM_MESSAGE_MAX + 1,
		                            &error) == -1);
		mc_scram_server_free(&s);
		/* a username longer than the limit */
		memcpy(big, "n,,n=", 5);
		memset(big + 5, 'u', MC_SCRAM_USERNAME_MAX);
		memcpy(big + 5 + MC_SCRAM_USERNAME_MAX, ",r=abc", 6);
		s = mc_scram_server_new();
		CHECK(mc_scram_server_first(s, big, MC_SCRAM_USERNAME_MAX + 11,
		                            &error) == -1);
		CHECK_STR(mc_scram_server_username(s), "");
		mc_scram_server_free(&s);
		free(big);

		s = mc_scram_server_new();
		CHECK(mc_scram_server_challenge(s, NULL, &out, &len, &error) ==
		      -1);
		CHECK(mc_scram_server_failure(s) == MC_SCRAM_FAIL_MALFORMED);
		CHECK(mc_scram_server_first(s, "n,,n=u,r=a", 10, &error) == -1);
		mc_scram_server_free(&s);
		s = mc_scram_server_new();
		CHECK(mc_scram_server_final(s, RFC_CLIENT_FINAL,
		                            strlen(RFC_CLIENT_FINAL), &out,
		                            &len, &error) == -1);
		mc_scram_server_free(&s);
	}
}

struct final_case {
	const char *msg;
	enum mc_scram_failure why;
};

static void
test_final_hostile(void)
{
	static const struct final_case cases[] = {
	        {RFC_CLIENT_FINAL, MC_SCRAM_FAIL_NONE},
	        /* an extension before the proof is bound and skipped: the
	         * proof no longer matches */
	        {"c=biws,r=" RFC_NONCE ",x=1,p=" RFC_PROOF, MC_SCRAM_FAIL_AUTH},
	        {"c=biws,r=" RFC_NONCE, MC_SCRAM_FAIL_MALFORMED},
	        {"c=biws,r=" RFC_NONCE ",p=", MC_SCRAM_FAIL_MALFORMED},
	        {"c=biws,r=" RFC_NONCE ",p=" RFC_PROOF ",",
	         MC_SCRAM_FAIL_MALFORMED},
	        {"c=biws,r=" RFC_NONCE ",p=!!!!", MC_SCRAM_FAIL_MALFORMED},
	        {"c=biws,r=" RFC_NONCE ",p=AAAA", MC_SCRAM_FAIL_MALFORMED},
	        {"c=biws,r=" RFC_NONCE
	         ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
	         MC_SCRAM_FAIL_MALFORMED},
	        {"c=biws,r=" RFC_NONCE
	         ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	         MC_SCRAM_FAIL_AUTH},
	        {"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=" RFC_PROOF,
	         MC_SCRAM_FAIL_AUTH},
	        {"c=biws,r=" RFC_NONCE "x,p=" RFC_PROOF, MC_SCRAM_FAIL_AUTH},
	        {"c=biws,r=" RFC_NONCE ",r=" RFC_NONCE ",p=" RFC_PROOF,
	         MC_SCRAM_FAIL_MALFORMED},
	        {"c=biws,r=" RFC_NONCE ",p=" RFC_PROOF ",p=" RFC_PROOF,
	         MC_SCRAM_FAIL_MALFORMED},
	        {"c=eSws,r=" RFC_NONCE ",p=" RFC_PROOF, MC_SCRAM_FAIL_AUTH},
	        {"c=cD10bHMtdW5pcXVlLCw=,r=" RFC_NONCE ",p=" RFC_PROOF,
	         MC_SCRAM_FAIL_AUTH},
	        {"c=biw,r=" RFC_NONCE ",p=" RFC_PROOF, MC_SCRAM_FAIL_MALFORMED},
	        {"c=,r=" RFC_NONCE ",p=" RFC_PROOF, MC_SCRAM_FAIL_AUTH},
	        {"r=" RFC_NONCE ",c=biws,p=" RFC_PROOF,
	         MC_SCRAM_FAIL_MALFORMED},
	        {"c=biws,p=" RFC_PROOF, MC_SCRAM_FAIL_MALFORMED},
	        {"r=" RFC_NONCE ",p=" RFC_PROOF, MC_SCRAM_FAIL_MALFORMED},
	        {"p=" RFC_PROOF, MC_SCRAM_FAIL_MALFORMED},
	        {",p=" RFC_PROOF, MC_SCRAM_FAIL_MALFORMED},
	        {"", MC_SCRAM_FAIL_MALFORMED},
	        {",", MC_SCRAM_FAIL_MALFORMED},
	};
	char *v = verifier_with_salt("pencil", RFC_SALT, 4096);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mc_scram_server *s = mc_scram_server_new();
		const char *out = NULL, *error = NULL;
		size_t len;
		int ret;

		CHECK(mc_scram_server_first(s, RFC_CLIENT_FIRST,
		                            strlen(RFC_CLIENT_FIRST),
		                            &error) == 0);
		mc_scram_server_set_nonce_for_test(s, RFC_SNONCE);
		CHECK(mc_scram_server_challenge(s, v, &out, &len, &error) == 0);
		ret = mc_scram_server_final(s, cases[i].msg,
		                            strlen(cases[i].msg), &out, &len,
		                            &error);
		CHECK(ret == (cases[i].why == MC_SCRAM_FAIL_NONE ? 0 : -1));
		CHECK(mc_scram_server_failure(s) == cases[i].why);
		if (mc_scram_server_failure(s) != cases[i].why)
			fprintf(stderr, "final case %zu '%s': %s\n", i,
			        cases[i].msg, error ? error : "accepted");
		if (ret == 0)
			CHECK_STR(out, RFC_SERVER_FINAL);
		/* a failed exchange stays failed */
		if (ret < 0)
			CHECK(mc_scram_server_final(s, RFC_CLIENT_FINAL,
			                            strlen(RFC_CLIENT_FINAL),
			                            &out, &len, &error) == -1);
		mc_scram_server_free(&s);
	}
	/* the right proof, but against the fake verifier */
	{
		struct mc_scram_server *s = mc_scram_server_new();
		const char *out, *error;
		size_t len;

		CHECK(mc_scram_server_first(s, RFC_CLIENT_FIRST,
		                            strlen(RFC_CLIENT_FIRST),
		                            &error) == 0);
		mc_scram_server_set_nonce_for_test(s, RFC_SNONCE);
		CHECK(mc_scram_server_challenge(s, "SCRAM-SHA-256$junk", &out,
		                                &len, &error) == 0);
		CHECK(strstr(out, RFC_SALT) == NULL);
		CHECK(mc_scram_server_final(s, RFC_CLIENT_FINAL,
		                            strlen(RFC_CLIENT_FINAL), &out,
		                            &len, &error) == -1);
		CHECK(mc_scram_server_failure(s) == MC_SCRAM_FAIL_AUTH);
		mc_scram_server_free(&s);
	}
	free(v);
}

int
main(void)
{
	test_rfc7677();
	test_verifier_new();
	test_verifier_valid();
	test_fake();
	test_first_hostile();
	test_final_hostile();
	return mc_test_done();
}
