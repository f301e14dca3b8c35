/* Tests for lib/dkim.
 *
 * Published vectors:
 * 1. RFC 6376 3.4.5, the canonicalisation example: relaxed header
 *    "A1: X" / "B : Y<TAB><CRLF><TAB>Z  " -> "a1:X" / "b:Y Z", relaxed
 *    body " C <CRLF>D <TAB> E<CRLF><CRLF><CRLF>" -> " C<CRLF>D E<CRLF>".
 * 2. RFC 6376 3.4.4: the relaxed hash of an empty body is SHA-256 of
 *    nothing, 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=.
 * 3. RFC 8463 Appendix A: the Ed25519 key (RFC 8032 7.1 test 1) and the
 *    RSA key of A.1, the message of A.3 and its two signatures
 *    (t=1528637909, h=from : to : subject : date : message-id : from :
 *    subject : date, i=@football.example.com, q=dns/txt): both b= values
 *    and the bh= are reproduced exactly (both signature schemes are
 *    deterministic), and the published fields verify with the checker
 *    below. The same vectors appear in dkimpy, mox, mail-auth and
 *    others; dkimpy 1.1.4 verifies the published message.
 *
 * Then behaviour: each signature made here is checked by a verifier
 * written in this file (field selection bottom-up per h= name, the b=
 * value removed from the signature field, OpenSSL EVP_DigestVerify with
 * the public key rebuilt from the p= value), the default h= selection
 * with From over-signed, LF and CRLF messages giving identical
 * signatures, folding, options, and every refusal. The independent
 * verifier run is tests/integration/test_dkim_verify.py (dkimpy). */
#include "dkim.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "imf.h"
#include "mem.h"
#include "pool.h"
#include "test.h"

/* ---- RFC 8463 Appendix A ---------------------------------------------- */

/* The Ed25519 secret key nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A= as
 * PKCS#8 (302e020100300506032b657004220420 || key). */
static const char rfc_ed_pem[] =
        "-----BEGIN PRIVATE KEY-----\n"
        "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
        "-----END PRIVATE KEY-----\n";
static const char rfc_ed_pub[] = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

static const char rfc_rsa_pem[] =
        "-----BEGIN RSA PRIVATE KEY-----\n"
        "MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
        "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
        "KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
        "AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
        "6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
        "zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
        "6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
        "uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
        "WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
        "WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
        "licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
        "o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
        "uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
        "-----END RSA PRIVATE KEY-----\n";
static const char rfc_rsa_pub[] =
        "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a"
        "5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+y"
        "z1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4"
        "w3QIDAQAB";

#define RFC_MESSAGE                                                            \
	"From: Joe SixPack <joe@football.example.com>\r\n"                     \
	"To: Suzie Q <suzie@shopping.example.net>\r\n"                         \
	"Subject: Is dinner ready?\r\n"                                        \
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"                      \
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"     \
	"\r\n"                                                                 \
	"Hi.\r\n"                                                              \
	"\r\n"                                                                 \
	"We lost the game.  Are you hungry yet?\r\n"                           \
	"\r\n"                                                                 \
	"Joe.\r\n"                                                             \
	"\r\n"

static const char rfc_signed_ed[] =
        "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
        " d=football.example.com; i=@football.example.com;\r\n"
        " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
        " subject : date : message-id : from : subject : date;\r\n"
        " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
        " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
        " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n";
static const char rfc_signed_rsa[] =
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
        " d=football.example.com; i=@football.example.com;\r\n"
        " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
        " date : message-id : from : subject : date;\r\n"
        " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
        " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
        " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
        " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n";

#define RFC_BH "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
#define RFC_ED_B                                                               \
	"/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus"             \
	"Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw=="
#define RFC_RSA_B                                                              \
	"F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3"             \
	"DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz"           \
	"dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8="
#define RFC_LIST                                                               \
	"from : to : subject : date : message-id : from : subject : date"
#define RFC_TIME 1528637909

/* ---- helpers ---------------------------------------------------------- */

static char *
relaxed_header(const char *field)
{
	struct mc_strbuf b = {0};

	if (!mc_dkim_relaxed_header(&b, field, strlen(field)))
		return NULL;
	return mc_strbuf_steal(&b);
}

static char *
relaxed_body(const char *body, size_t len)
{
	struct mc_strbuf b = {0};

	mc_dkim_relaxed_body(&b, body, len);
	mc_strbuf_adds(&b, ""); /* "" rather than NULL for an empty result */
	return mc_strbuf_steal(&b);
}

/* The value of tag in a DKIM-Signature field (text after the colon
 * included or not), with every blank and line end removed; NULL when
 * absent. The caller frees. */
static char *
tag(const char *field, const char *name)
{
	const char *p = strchr(field, ':') + 1;
	size_t nl = strlen(name);

	while (*p != '\0') {
		const char *end = strchr(p, ';'), *q = p;

		if (end == NULL)
			end = p + strlen(p);
		while (q < end && strchr(" \t\r\n", *q) != NULL)
			q++;
		if ((size_t)(end - q) > nl && strncmp(q, name, nl) == 0 &&
		    (q[nl] == '=' || strchr(" \t\r\n", q[nl]) != NULL)) {
			char *v = mc_malloc((size_t)(end - q) + 1);
			size_t o = 0;

			for (q = strchr(q, '=') + 1; q < end; q++) {
				if (strchr(" \t\r\n", *q) == NULL)
					v[o++] = *q;
			}
			v[o] = '\0';
			return v;
		}
		p = *end == ';' ? end + 1 : end;
	}
	return NULL;
}

static unsigned char *
unbase64(const char *b64, size_t *len_r)
{
	size_t n = strlen(b64);
	unsigned char *out = mc_malloc(n + 1);
	int got = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);

	if (got < 0) {
		free(out);
		return NULL;
	}
	while (n > 0 && b64[n - 1] == '=') {
		n--;
		got--;
	}
	*len_r = (size_t)got;
	return out;
}

/* The public key from a p= value. */
static EVP_PKEY *
public_key(enum mc_dkim_alg alg, const char *b64)
{
	size_t n;
	unsigned char *der = unbase64(b64, &n);
	const unsigned char *p = der;
	EVP_PKEY *pkey = NULL;

	if (der == NULL)
		return NULL;
	if (alg == MC_DKIM_RSA_SHA256)
		pkey = d2i_PUBKEY(NULL, &p, (long)n);
	else if (n == 32)
		pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der,
		                                   32);
	free(der);
	return pkey;
}

/* Verify one DKIM-Signature field (sig, without a final CRLF or with
 * it) over msg, as a verifier does it: recompute bh=, select the fields
 * of h= bottom-up, drop the b= value from the field, check the signature
 * with the public key in pub. */
static bool
verify(const char *msg, size_t len, const char *sig, enum mc_dkim_alg alg,
       const char *pub)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_strbuf data = {0}, stripped = {0};
	struct mc_imf_header hdr;
	char *bh = tag(sig, "bh"), *h = tag(sig, "h"), *b = tag(sig, "b");
	char *a = tag(sig, "a"), body_bh[MC_DKIM_BODY_HASH_LEN + 1];
	unsigned char *raw = NULL, hash[32];
	EVP_PKEY *pkey = public_key(alg, pub);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool *used = NULL, ok = false;
	size_t raw_len, body;
	const char *bpos, *rest;

	if (bh == NULL || h == NULL || b == NULL || a == NULL || pkey == NULL ||
	    strcmp(a, mc_dkim_alg_name(alg)) != 0)
		goto done;
	mc_imf_header_parse(&hdr, pool, msg, len, NULL);
	body = hdr.has_body ? hdr.size : len;
	mc_dkim_body_hash(msg + body, len - body, body_bh);
	if (strcmp(bh, body_bh) != 0)
		goto done;
	used = mc_calloc(hdr.count + 1, sizeof(*used));
	for (char *name = strtok(h, ":"); name != NULL;
	     name = strtok(NULL, ":")) {
		size_t j = hdr.count;

		while (j > 0 && (used[j - 1] ||
		                 strcasecmp(hdr.fields[j - 1].name, name) != 0))
			j--;
		if (j-- == 0)
			continue;
		used[j] = true;
		mc_dkim_relaxed_header(&data, msg + hdr.fields[j].offset,
		                       hdr.fields[j].size);
	}
	/* The field with b='s value (all up to ';' or the end) removed. */
	bpos = sig;
	while ((bpos = strstr(bpos, "b=")) != NULL &&
	       strchr("; \t\n", bpos[-1]) == NULL)
		bpos++;
	if (bpos == NULL)
		goto done;
	mc_strbuf_add(&stripped, sig, (size_t)(bpos + 2 - sig));
	if ((rest = strchr(bpos, ';')) != NULL)
		mc_strbuf_adds(&stripped, rest);
	mc_dkim_relaxed_header(&data, stripped.data, stripped.len);
	data.len -= 2; /* the signature field is hashed without its CRLF */
	if ((raw = unbase64(b, &raw_len)) == NULL)
		goto done;
	if (alg == MC_DKIM_RSA_SHA256) {
		ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) ==
		             1 &&
		     EVP_DigestVerify(md, raw, raw_len,
		                      (unsigned char *)data.data,
		                      data.len) == 1;
	} else {
		EVP_Digest(data.data, data.len, hash, NULL, EVP_sha256(), NULL);
		ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, pkey) == 1 &&
		     EVP_DigestVerify(md, raw, raw_len, hash, 32) == 1;
	}
done:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	free(raw);
	free(used);
	free(bh);
	free(h);
	free(b);
	free(a);
	mc_strbuf_fini(&data);
	mc_strbuf_fini(&stripped);
	mc_pool_free(&pool);
	return ok;
}

/* The n-th (0-based) DKIM-Signature field of out, a heap copy with its
 * CRLF, or NULL. */
static char *
field_at(const char *out, int n)
{
	const char *p = out;

	for (;;) {
		const char *end = p;

		if (strncmp(p, "DKIM-Signature:", 15) != 0)
			return NULL;
		while ((end = strstr(end, "\r\n")) != NULL &&
		       (end[2] == ' ' || end[2] == '\t'))
			end += 2;
		if (end == NULL)
			return NULL;
		end += 2;
		if (n-- == 0)
			return mc_strndup(p, (size_t)(end - p));
		p = end;
	}
}

/* Every line CRLF-terminated, at most 78 octets, continuation lines
 * starting with a blank. */
static bool
well_folded(const char *out)
{
	const char *p = out;

	while (*p != '\0') {
		const char *end = strstr(p, "\r\n");

		if (end == NULL || end - p > 78 ||
		    memchr(p, '\n', (size_t)(end - p)))
			return false;
		if (strncmp(p, "DKIM-Signature:", 15) != 0 && *p != ' ' &&
		    *p != '\t')
			return false;
		p = end + 2;
	}
	return true;
}

/* pem again, encrypted with a passphrase. */
static char *
encrypted_pem(const char *pem)
{
	BIO *in = BIO_new_mem_buf(pem, -1), *out = BIO_new(BIO_s_mem());
	EVP_PKEY *k = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	char *data, *ret = NULL;
	long n;

	if (k != NULL &&
	    PEM_write_bio_PKCS8PrivateKey(out, k, EVP_aes_256_cbc(), NULL, 0,
	                                  NULL, (void *)"secret") == 1 &&
	    (n = BIO_get_mem_data(out, &data)) > 0)
		ret = mc_strndup(data, (size_t)n);
	EVP_PKEY_free(k);
	BIO_free(in);
	BIO_free(out);
	return ret;
}

static int
sign(const char *msg, const struct mc_dkim_key *keys, size_t nkeys,
     const struct mc_dkim_options *opts, int64_t now, struct mc_strbuf *out,
     const char **error_r)
{
	return mc_dkim_sign(msg, strlen(msg), keys, nkeys, opts, now, out,
	                    error_r);
}

/* ---- canonicalisation ------------------------------------------------- */

static void
test_relaxed_header(void)
{
	static const struct {
		const char *in, *out;
	} v[] = {
	        /* RFC 6376 3.4.5 */
	        {"A1: X\r\n", "a1:X\r\n"},
	        {"B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n"},
	        /* LF-only folds, several continuation lines */
	        {"Subject: a\n  b\n\tc\n", "subject:a b c\r\n"},
	        {"SUBJECT:no-blank\r\n", "subject:no-blank\r\n"},
	        {"To:   \t lots   of \t\t blanks \t \r\n",
	         "to:lots of blanks\r\n"},
	        {"Subject:\r\n", "subject:\r\n"},
	        {"Subject: \t \r\n \r\n", "subject:\r\n"},
	        {"X-Empty:", "x-empty:\r\n"},
	        /* no line end at all; a CR as the last octet is a line end */
	        {"From: a@b.test", "from:a@b.test\r\n"},
	        {"From: a@b.test\r", "from:a@b.test\r\n"},
	        /* a bare CR inside is data, 8-bit stays as it is */
	        {"Subject: a\rb\r\n", "subject:a\rb\r\n"},
	        {"Subject: caf\xc3\xa9 \xe9\r\n",
	         "subject:caf\xc3\xa9 \xe9\r\n"},
	        /* the colon inside the value is not the separator */
	        {"Date: Fri, 11 Jul 2003 21:00:37 -0700\r\n",
	         "date:Fri, 11 Jul 2003 21:00:37 -0700\r\n"},
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *got = relaxed_header(v[i].in);

		CHECK_STR(got, v[i].out);
		free(got);
	}
	CHECK(relaxed_header("no colon here\r\n") == NULL);
}

static void
test_relaxed_body(void)
{
	static const struct {
		const char *in, *out;
	} v[] = {
	        /* RFC 6376 3.4.5 */
	        {" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n"},
	        {"", ""},
	        {"\r\n", ""},
	        {"\r\n\r\n \t \r\n", ""},
	        {"   ", ""},
	        {"abc", "abc\r\n"},
	        {"abc\r\n", "abc\r\n"},
	        {"a\nb\n\n\n", "a\r\nb\r\n"},
	        {"a \t\r\nb\t\n", "a\r\nb\r\n"},
	        {"\r\n\r\nx", "\r\n\r\nx\r\n"},
	        {"  \r\nx\r\n", "\r\nx\r\n"},
	        {"x\r\n\r\n  \t\r\ny", "x\r\n\r\n\r\ny\r\n"},
	        {"a\rb\r\n", "a\rb\r\n"},
	        {"a\r", "a\r\n"},
	        {"a\r\r\n", "a\r\r\n"},
	        {"a \r b\r\n", "a \r b\r\n"},
	        {".\r\n..x\r\n", ".\r\n..x\r\n"},
	        {"\xff\xfe \x80\r\n", "\xff\xfe \x80\r\n"},
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *got = relaxed_body(v[i].in, strlen(v[i].in));

		CHECK_STR(got, v[i].out);
		free(got);
	}

	/* A NUL is content like any other octet. */
	{
		char *got = relaxed_body("a\0b \r\n", 6);

		CHECK(memcmp(got, "a\0b\r\n", 5) == 0);
		free(got);
	}

	/* More than one sink buffer of output, held-back empty lines
	 * included. */
	{
		size_t n = 20000;
		char *in = mc_malloc(n + 2), *got;

		for (size_t i = 0; i < n; i++)
			in[i] = i % 3 == 2 ? '\n' : 'x';
		memcpy(in + n, "\n\n", 2);
		got = relaxed_body(in, n + 2);
		CHECK(strlen(got) == (n / 3 + 1) * 4);
		free(got);
		free(in);
	}
}

static void
test_body_hash(void)
{
	char bh[MC_DKIM_BODY_HASH_LEN + 1];

	mc_dkim_body_hash("", 0, bh);
	CHECK_STR(bh, MC_DKIM_EMPTY_BODY_HASH);
	mc_dkim_body_hash("\r\n\r\n", 4, bh);
	CHECK_STR(bh, MC_DKIM_EMPTY_BODY_HASH);
	mc_dkim_body_hash(" \t\n", 3, bh);
	CHECK_STR(bh, MC_DKIM_EMPTY_BODY_HASH);

	static const char body[] = "Hi.\r\n\r\nWe lost the game.  Are you "
	                           "hungry yet?\r\n\r\nJoe.\r\n\r\n";
	mc_dkim_body_hash(body, strlen(body), bh);
	CHECK_STR(bh, RFC_BH);
	/* The same body with LF line ends and the trailing lines gone. */
	static const char lf[] = "Hi.\n\nWe lost the game.  Are you hungry "
	                         "yet?\n\nJoe.";
	mc_dkim_body_hash(lf, strlen(lf), bh);
	CHECK_STR(bh, RFC_BH);
}

/* ---- RFC 8463 Appendix A ---------------------------------------------- */

static void
test_rfc8463(void)
{
	static const char msg[] = RFC_MESSAGE;
	const struct mc_dkim_key keys[] = {
	        {"football.example.com", "brisbane", MC_DKIM_ED25519_SHA256,
	         rfc_ed_pem},
	        {"football.example.com", "test", MC_DKIM_RSA_SHA256,
	         rfc_rsa_pem},
	};
	const struct mc_dkim_options opts = {
	        .header_list = RFC_LIST,
	        .identity = "@football.example.com",
	        .query_method = true,
	};
	struct mc_strbuf out = {0};
	const char *error = NULL;
	char *pub, *f0, *f1, *v;

	/* The published signatures verify with the checker here. */
	CHECK(verify(msg, strlen(msg), rfc_signed_ed, MC_DKIM_ED25519_SHA256,
	             rfc_ed_pub));
	CHECK(verify(msg, strlen(msg), rfc_signed_rsa, MC_DKIM_RSA_SHA256,
	             rfc_rsa_pub));
	/* ... and do not with the other key or a changed message. */
	CHECK(!verify(msg, strlen(msg), rfc_signed_rsa, MC_DKIM_RSA_SHA256,
	              "MCowBQYDK2VwAyEA11qYAYKxCrfVS/"
	              "7TyWQHOg7hcvPapiMlrwIaaPcHURo="));
	CHECK(!verify(msg, strlen(msg) - 9, rfc_signed_ed,
	              MC_DKIM_ED25519_SHA256, rfc_ed_pub));

	/* The public keys as the DNS records of A.2 carry them. */
	CHECK(mc_dkim_public_key(MC_DKIM_ED25519_SHA256, rfc_ed_pem, &pub,
	                         &error) == 0);
	CHECK_STR(pub, rfc_ed_pub);
	free(pub);
	CHECK(mc_dkim_public_key(MC_DKIM_RSA_SHA256, rfc_rsa_pem, &pub,
	                         &error) == 0);
	CHECK_STR(pub, rfc_rsa_pub);
	free(pub);

	/* Our signatures with the example's parameters are the published
	 * ones, octet for octet in b= and bh=. */
	CHECK(sign(msg, keys, 2, &opts, RFC_TIME, &out, &error) == 0);
	f0 = field_at(out.data, 0);
	f1 = field_at(out.data, 1);
	CHECK(f0 != NULL && f1 != NULL && field_at(out.data, 2) == NULL);
	if (f0 == NULL || f1 == NULL)
		goto done;
	CHECK_STR(v = tag(f0, "b"), RFC_ED_B);
	free(v);
	CHECK_STR(v = tag(f0, "bh"), RFC_BH);
	free(v);
	CHECK_STR(v = tag(f1, "b"), RFC_RSA_B);
	free(v);
	CHECK_STR(v = tag(f1, "bh"), RFC_BH);
	free(v);
	CHECK_STR(v = tag(f0, "t"), "1528637909");
	free(v);
	CHECK_STR(v = tag(f1, "s"), "test");
	free(v);
	CHECK(verify(msg, strlen(msg), f0, MC_DKIM_ED25519_SHA256, rfc_ed_pub));
	CHECK(verify(msg, strlen(msg), f1, MC_DKIM_RSA_SHA256, rfc_rsa_pub));
	CHECK(well_folded(out.data));
	/* The h= list goes out as written, blanks and all. */
	{
		char *canon = relaxed_header(f0);

		CHECK(canon != NULL &&
		      strstr(canon, "; h=" RFC_LIST "; bh=") != NULL);
		CHECK(canon != NULL &&
		      strncmp(canon,
		              "dkim-signature:v=1; a=ed25519-sha256; "
		              "c=relaxed/relaxed; d=football.example.com; "
		              "i=@football.example.com; q=dns/txt; s=brisbane; "
		              "t=1528637909; h=",
		              138) == 0);
		free(canon);
	}
done:
	free(f0);
	free(f1);
	mc_strbuf_fini(&out);
}

/* ---- signing with generated keys -------------------------------------- */

static char *rsa_pem, *rsa_pub, *ed_pem, *ed_pub;

static void
test_keygen(void)
{
	const char *error = NULL;
	char *pem, *pub, *rec;
	size_t n;
	unsigned char *raw;
	EVP_PKEY *pkey;

	CHECK(mc_dkim_keygen(MC_DKIM_RSA_SHA256, 0, &rsa_pem, &rsa_pub,
	                     &error) == 0);
	CHECK(mc_dkim_keygen(MC_DKIM_ED25519_SHA256, 0, &ed_pem, &ed_pub,
	                     &error) == 0);
	if (rsa_pem == NULL || ed_pem == NULL)
		return;
	CHECK(strncmp(rsa_pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
	CHECK(strncmp(ed_pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
	/* RSA p=: SubjectPublicKeyInfo of a 2048-bit key. */
	pkey = public_key(MC_DKIM_RSA_SHA256, rsa_pub);
	CHECK(pkey != NULL && EVP_PKEY_is_a(pkey, "RSA") &&
	      EVP_PKEY_get_bits(pkey) == 2048);
	EVP_PKEY_free(pkey);
	/* Ed25519 p=: the bare 32-octet key. */
	raw = unbase64(ed_pub, &n);
	CHECK(raw != NULL && n == 32 && strlen(ed_pub) == 44);
	free(raw);
	/* The public key derived from the private one is the same. */
	CHECK(mc_dkim_public_key(MC_DKIM_RSA_SHA256, rsa_pem, &pub, &error) ==
	      0);
	CHECK_STR(pub, rsa_pub);
	free(pub);
	CHECK(mc_dkim_public_key(MC_DKIM_ED25519_SHA256, ed_pem, &pub,
	                         &error) == 0);
	CHECK_STR(pub, ed_pub);
	free(pub);
	/* Keys of the wrong kind. */
	CHECK(mc_dkim_public_key(MC_DKIM_RSA_SHA256, ed_pem, &pub, &error) <
	              0 &&
	      pub == NULL);
	CHECK(mc_dkim_public_key(MC_DKIM_ED25519_SHA256, rsa_pem, &pub,
	                         &error) < 0);
	/* A bigger RSA key; sizes out of range. */
	CHECK(mc_dkim_keygen(MC_DKIM_RSA_SHA256, 3072, &pem, &pub, &error) ==
	      0);
	pkey = pub != NULL ? public_key(MC_DKIM_RSA_SHA256, pub) : NULL;
	CHECK(pkey != NULL && EVP_PKEY_get_bits(pkey) == 3072);
	EVP_PKEY_free(pkey);
	free(pem);
	free(pub);
	CHECK(mc_dkim_keygen(MC_DKIM_RSA_SHA256, 1024, &pem, &pub, &error) <
	              0 &&
	      pem == NULL && pub == NULL && strstr(error, "1024") != NULL);
	CHECK(mc_dkim_keygen(MC_DKIM_RSA_SHA256, 8192, &pem, &pub, &error) < 0);
	CHECK(mc_dkim_keygen((enum mc_dkim_alg)7, 0, &pem, &pub, &error) < 0);

	/* DNS records. */
	rec = mc_dkim_dns_record(MC_DKIM_ED25519_SHA256, rfc_ed_pub);
	CHECK_STR(rec, "v=DKIM1; k=ed25519; "
	               "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	free(rec);
	rec = mc_dkim_dns_record(MC_DKIM_RSA_SHA256, rfc_rsa_pub);
	CHECK(rec != NULL &&
	      strncmp(rec, "v=DKIM1; k=rsa; p=MIGfMA0G", 26) == 0 &&
	      strcmp(rec + 18, rfc_rsa_pub) == 0);
	free(rec);
	CHECK(mc_dkim_dns_record(MC_DKIM_RSA_SHA256, "") == NULL);
	CHECK(mc_dkim_dns_record(MC_DKIM_RSA_SHA256, "abc; k=x") == NULL);
	CHECK(mc_dkim_dns_record(MC_DKIM_RSA_SHA256, NULL) == NULL);

	/* Names. */
	enum mc_dkim_alg alg;

	CHECK(mc_dkim_alg_from_name("RSA", &alg) && alg == MC_DKIM_RSA_SHA256);
	CHECK(mc_dkim_alg_from_name("ed25519-sha256", &alg) &&
	      alg == MC_DKIM_ED25519_SHA256);
	CHECK(!mc_dkim_alg_from_name("rsa-sha1", &alg));
	CHECK_STR(mc_dkim_alg_name(MC_DKIM_ED25519_SHA256), "ed25519-sha256");
	CHECK_STR(mc_dkim_key_type(MC_DKIM_RSA_SHA256), "rsa");
}

#define PLAIN                                                                  \
	"Received: from a.test by b.test; Mon, 3 Jun 2024 10:15:42 +0200\r\n"  \
	"From: Alice <alice@example.com>\r\n"                                  \
	"To: Bob <bob@example.org>\r\n"                                        \
	"Subject: Meeting notes\r\n"                                           \
	"Date: Mon, 3 Jun 2024 10:15:42 +0200\r\n"                             \
	"Message-ID: <5f3c1d2e@example.com>\r\n"                               \
	"X-Mailer: test\r\n"                                                   \
	"MIME-Version: 1.0\r\n"                                                \
	"Content-Type: text/plain; charset=UTF-8\r\n"                          \
	"List-Unsubscribe: <https://example.com/u>\r\n"                        \
	"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"                \
	"List-Odd;name: not signed\r\n"                                        \
	"cc: c1@example.org\r\n"                                               \
	"DKIM-Signature: v=1; a=rsa-sha256; d=old.test; b=x\r\n"               \
	"CC: c2@example.org\r\n"                                               \
	"\r\n"                                                                 \
	"Hi Bob,\r\n"                                                          \
	"\r\n"                                                                 \
	"  see   you \t there.\r\n"                                            \
	"\r\n\r\n"

/* PLAIN with its h= as the default selection makes it. */
#define PLAIN_H                                                                \
	"from:to:subject:date:message-id:mime-version:content-type:"           \
	"list-unsubscribe:list-unsubscribe-post:cc:cc:from"

static void
test_sign_verify(void)
{
	static const char *const msgs[] = {
	        PLAIN,
	        /* LF line ends, folded fields, 8-bit body, no final newline */
	        "From: =?utf-8?q?J=C3=B6rg?=\n <joerg@example.com>\n"
	        "To: a@example.org,\n\tb@example.org,\n  c@example.org\n"
	        "Subject: a very long subject that goes on and on and on and"
	        "\n on across several lines\n\tof folding   \n"
	        "\nGr\xc3\xbc\xc3\x9f"
	        "e \xe9\xe8\nlast line without newline",
	        /* no body at all, not even the empty line */
	        "From: a@example.com\r\nSubject: header only\r\n",
	        "From: a@example.com",
	        /* an empty body, then one of blank lines */
	        "From: a@example.com\r\n\r\n",
	        "From: a@example.com\r\n\r\n\r\n\r\n  \r\n",
	        /* two To fields, one From in odd case */
	        "To: one@example.org\r\nfROM: a@example.com\r\n"
	        "To: two@example.org\r\n\r\nbody\r\n",
	};
	const char *error = NULL;

	if (rsa_pem == NULL || ed_pem == NULL)
		return;
	const struct mc_dkim_key keys[] = {
	        {"example.com", "rsa1", MC_DKIM_RSA_SHA256, rsa_pem},
	        {"example.com", "ed1", MC_DKIM_ED25519_SHA256, ed_pem},
	};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct mc_strbuf out = {0};
		char *f0, *f1, *v;

		CHECK(sign(msgs[i], keys, 2, NULL, 1700000000, &out, &error) ==
		      0);
		f0 = field_at(out.data, 0);
		f1 = field_at(out.data, 1);
		CHECK(f0 != NULL && f1 != NULL &&
		      strlen(f0) + strlen(f1) == out.len);
		if (f0 == NULL || f1 == NULL) {
			fprintf(stderr, "message %zu: %s\n", i, out.data);
			goto next;
		}
		CHECK(well_folded(out.data));
		CHECK(verify(msgs[i], strlen(msgs[i]), f0, MC_DKIM_RSA_SHA256,
		             rsa_pub));
		CHECK(verify(msgs[i], strlen(msgs[i]), f1,
		             MC_DKIM_ED25519_SHA256, ed_pub));
		/* Not with the other's key, not over another message. */
		CHECK(!verify(msgs[i], strlen(msgs[i]), f1,
		              MC_DKIM_ED25519_SHA256, rfc_ed_pub));
		CHECK(!verify(PLAIN "x", strlen(PLAIN) + 1, f1,
		              MC_DKIM_ED25519_SHA256, ed_pub));
		/* The tags: defaults, no i= x= l= q=. */
		v = relaxed_header(f0);
		CHECK(v != NULL && strncmp(v,
		                           "dkim-signature:v=1; a=rsa-sha256; "
		                           "c=relaxed/relaxed; d=example.com; "
		                           "s=rsa1; t=1700000000; h=from:",
		                           81) == 0);
		free(v);
		CHECK((v = tag(f1, "t")) != NULL &&
		      strcmp(v, "1700000000") == 0);
		free(v);
		CHECK(tag(f1, "i") == NULL && tag(f1, "x") == NULL &&
		      tag(f1, "l") == NULL && tag(f1, "q") == NULL);
		/* From over-signed: listed once more than it occurs. */
		v = tag(f1, "h");
		CHECK(v != NULL &&
		      strncasecmp(v + strlen(v) - 5, ":from", 5) == 0);
		free(v);
	next:
		free(f0);
		free(f1);
		mc_strbuf_fini(&out);
	}
}

static void
test_default_headers(void)
{
	const struct mc_dkim_key key = {"example.com", "ed1",
	                                MC_DKIM_ED25519_SHA256, ed_pem};
	struct mc_strbuf out = {0}, crlf = {0}, out2 = {0};
	const char *error = NULL, *lf;
	char *h;

	if (ed_pem == NULL)
		return;
	CHECK(sign(PLAIN, &key, 1, NULL, 1, &out, &error) == 0);
	CHECK_STR(h = tag(out.data, "h"), PLAIN_H);
	free(h);
	/* A From added above or below the signed one breaks it. */
	CHECK(verify(PLAIN, strlen(PLAIN), out.data, MC_DKIM_ED25519_SHA256,
	             ed_pub));
	CHECK(!verify("From: evil@example.net\r\n" PLAIN, strlen(PLAIN) + 24,
	              out.data, MC_DKIM_ED25519_SHA256, ed_pub));
	/* Unsigned fields may change. */
	CHECK(verify("X-Spam: yes\r\n" PLAIN, strlen(PLAIN) + 13, out.data,
	             MC_DKIM_ED25519_SHA256, ed_pub));

	/* The same message with LF line ends gets the very same signature
	 * (both schemes are deterministic). */
	lf = "From: a@example.com\nTo: b@example.org\nSubject: s\n\nbody\n\n";
	for (const char *p = lf; *p != '\0'; p++)
		mc_strbuf_adds(&crlf, *p == '\n' ? "\r\n" : (char[]){*p, 0});
	CHECK(sign(lf, &key, 1, NULL, 5, &out2, &error) == 0);
	mc_strbuf_reset(&out);
	CHECK(sign(crlf.data, &key, 1, NULL, 5, &out, &error) == 0);
	CHECK(out.len == out2.len && out.len > 0 &&
	      memcmp(out.data, out2.data, out.len) == 0);
	mc_strbuf_fini(&out);
	mc_strbuf_fini(&out2);
	mc_strbuf_fini(&crlf);
}

static void
test_options(void)
{
	const struct mc_dkim_key key = {"example.com", "ed1",
	                                MC_DKIM_ED25519_SHA256, ed_pem};
	struct mc_dkim_options opts = {0};
	struct mc_strbuf out = {0};
	const char *error = NULL;
	char *v;

	if (ed_pem == NULL)
		return;
	opts.expire = 3600;
	opts.identity = "user@mail.Example.COM";
	CHECK(sign(PLAIN, &key, 1, &opts, 1000, &out, &error) == 0);
	CHECK_STR(v = tag(out.data, "x"), "4600");
	free(v);
	CHECK_STR(v = tag(out.data, "i"), "user@mail.Example.COM");
	free(v);
	CHECK(verify(PLAIN, strlen(PLAIN), out.data, MC_DKIM_ED25519_SHA256,
	             ed_pub));

	/* An explicit list, with names the message lacks. */
	mc_strbuf_reset(&out);
	opts = (struct mc_dkim_options){.header_list = "From:Subject:X-None"};
	CHECK(sign(PLAIN, &key, 1, &opts, 1000, &out, &error) == 0);
	CHECK_STR(v = tag(out.data, "h"), "From:Subject:X-None");
	free(v);
	CHECK(verify(PLAIN, strlen(PLAIN), out.data, MC_DKIM_ED25519_SHA256,
	             ed_pub));
	/* A long list is folded. */
	mc_strbuf_reset(&out);
	opts.header_list = "from:to:subject:date:message-id:mime-version:"
	                   "content-type:list-unsubscribe:list-unsubscribe-"
	                   "post:cc:cc:from:reply-to:in-reply-to:references";
	CHECK(sign(PLAIN, &key, 1, &opts, 1000, &out, &error) == 0);
	CHECK(well_folded(out.data) && strstr(out.data, ":\r\n ") != NULL);
	CHECK(verify(PLAIN, strlen(PLAIN), out.data, MC_DKIM_ED25519_SHA256,
	             ed_pub));
	mc_strbuf_fini(&out);
}

static void
test_refusals(void)
{
	struct mc_dkim_key key = {"example.com", "ed1", MC_DKIM_ED25519_SHA256,
	                          ed_pem};
	struct mc_dkim_key keys[MC_DKIM_MAX_KEYS + 1];
	struct mc_dkim_options opts = {0};
	struct mc_strbuf out = {0}, big = {0};
	const char *error;
	char *enc;

	if (ed_pem == NULL || rsa_pem == NULL)
		return;
	mc_strbuf_adds(&out, "kept");

#define REFUSED(call, text)                                                    \
	do {                                                                   \
		error = NULL;                                                  \
		CHECK((call) < 0 && out.len == 4 &&                            \
		      strcmp(out.data, "kept") == 0);                          \
		CHECK(error != NULL && strstr(error, text) != NULL);           \
		if (error != NULL && strstr(error, text) == NULL)              \
			fprintf(stderr, "  error was: %s\n", error);           \
	} while (0)

	REFUSED(sign("To: b@example.org\r\n\r\nx\r\n", &key, 1, NULL, 1, &out,
	             &error),
	        "no From");
	REFUSED(sign("From: a@example.com\r\nFrom: b@example.com\r\n\r\n", &key,
	             1, NULL, 1, &out, &error),
	        "more than one From");
	REFUSED(sign("", &key, 1, NULL, 1, &out, &error), "no From");
	REFUSED(mc_dkim_sign(NULL, 0, &key, 1, NULL, 1, &out, &error),
	        "no From");
	REFUSED(sign(PLAIN, &key, 0, NULL, 1, &out, &error), "keys");
	for (size_t i = 0; i <= MC_DKIM_MAX_KEYS; i++)
		keys[i] = key;
	REFUSED(sign(PLAIN, keys, MC_DKIM_MAX_KEYS + 1, NULL, 1, &out, &error),
	        "keys");
	REFUSED(sign(PLAIN, &key, 1, NULL, -1, &out, &error), "range");

	/* Over the header limits of lib/imf. */
	for (int i = 0; i < 1001; i++)
		mc_strbuf_addf(&big, "X-F%d: v\r\n", i);
	mc_strbuf_adds(&big, "From: a@example.com\r\n\r\nbody\r\n");
	REFUSED(sign(big.data, &key, 1, NULL, 1, &out, &error), "too large");

	/* Keys. */
	key.domain = "exa mple.com";
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "d=");
	key.domain = "example..com";
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "d=");
	key.domain = NULL;
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "d=");
	key.domain = "example.com";
	key.selector = "s;x=1";
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "s=");
	key.selector = "";
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "s=");
	key.selector = "2024._sel";
	key.private_pem = rsa_pem;
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "not an Ed25519");
	key.alg = MC_DKIM_RSA_SHA256;
	key.private_pem = ed_pem;
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "not an RSA");
	key.private_pem = "-----BEGIN PRIVATE KEY-----\ngarbage\n"
	                  "-----END PRIVATE KEY-----\n";
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "private key");
	key.private_pem = "";
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "private key");
	key.private_pem = NULL;
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "private key");
	/* An encrypted key fails instead of prompting for a passphrase. */
	enc = encrypted_pem(ed_pem);
	CHECK(enc != NULL && strstr(enc, "ENCRYPTED") != NULL);
	key.private_pem = enc;
	key.alg = MC_DKIM_ED25519_SHA256;
	REFUSED(sign(PLAIN, &key, 1, NULL, 1, &out, &error), "private key");
	free(enc);
	/* A second key that fails spoils the whole call. */
	keys[0] = (struct mc_dkim_key){"example.com", "a",
	                               MC_DKIM_ED25519_SHA256, ed_pem};
	keys[1] = (struct mc_dkim_key){"example.com", "b", MC_DKIM_RSA_SHA256,
	                               ed_pem};
	REFUSED(sign(PLAIN, keys, 2, NULL, 1, &out, &error), "not an RSA");
	CHECK(ERR_peek_error() == 0); /* the OpenSSL queue is left clean */

	/* Options. */
	key = keys[0];
	opts.identity = "user@other.test";
	REFUSED(sign(PLAIN, &key, 1, &opts, 1, &out, &error), "i=");
	opts.identity = "user@notexample.com";
	REFUSED(sign(PLAIN, &key, 1, &opts, 1, &out, &error), "i=");
	opts.identity = "no-at-sign";
	REFUSED(sign(PLAIN, &key, 1, &opts, 1, &out, &error), "i=");
	opts.identity = "a;b@example.com";
	REFUSED(sign(PLAIN, &key, 1, &opts, 1, &out, &error), "i=");
	opts.identity = NULL;
	opts.header_list = "to:subject";
	REFUSED(sign(PLAIN, &key, 1, &opts, 1, &out, &error), "From");
	opts.header_list = "from::to";
	REFUSED(sign(PLAIN, &key, 1, &opts, 1, &out, &error), "empty");
	opts.header_list = "from:x;y";
	REFUSED(sign(PLAIN, &key, 1, &opts, 1, &out, &error), "invalid");
	opts.header_list = "from:fr om";
	REFUSED(sign(PLAIN, &key, 1, &opts, 1, &out, &error), "invalid");
	opts.header_list = NULL;
	opts.expire = -5;
	REFUSED(sign(PLAIN, &key, 1, &opts, 1, &out, &error), "range");
	opts.expire = INT64_MAX;
	REFUSED(sign(PLAIN, &key, 1, &opts, 1, &out, &error), "range");
#undef REFUSED
	mc_strbuf_fini(&out);
	mc_strbuf_fini(&big);
}

static void
test_signer(void)
{
	const struct mc_dkim_key keys[] = {
	        {"example.com", "rsa1", MC_DKIM_RSA_SHA256, rsa_pem},
	        {"example.com", "ed1", MC_DKIM_ED25519_SHA256, ed_pem},
	};
	struct mc_dkim_key bad = keys[1];
	struct mc_dkim_signer *s[2] = {NULL, NULL}, *none = NULL;
	struct mc_strbuf a = {0}, b = {0};
	const char *error = NULL;

	if (rsa_pem == NULL || ed_pem == NULL)
		return;
	s[0] = mc_dkim_signer_new(&keys[0], &error);
	s[1] = mc_dkim_signer_new(&keys[1], &error);
	CHECK(s[0] != NULL && s[1] != NULL);
	if (s[0] == NULL || s[1] == NULL)
		goto done;
	/* The same as mc_dkim_sign, signature for signature. */
	CHECK(mc_dkim_sign_with(PLAIN, strlen(PLAIN),
	                        (const struct mc_dkim_signer *const *)s, 2,
	                        NULL, 77, &a, &error) == 0);
	CHECK(sign(PLAIN, keys, 2, NULL, 77, &b, &error) == 0);
	CHECK(a.len == b.len && a.len > 0 &&
	      memcmp(a.data, b.data, a.len) == 0);
	/* Reused for another message. */
	mc_strbuf_reset(&a);
	CHECK(mc_dkim_sign_with("From: x@example.com\r\n\r\nhi\r\n", 27,
	                        (const struct mc_dkim_signer *const *)s + 1, 1,
	                        NULL, 78, &a, &error) == 0);
	CHECK(verify("From: x@example.com\r\n\r\nhi\r\n", 27, a.data,
	             MC_DKIM_ED25519_SHA256, ed_pub));
	CHECK(mc_dkim_sign_with(PLAIN, strlen(PLAIN),
	                        (const struct mc_dkim_signer *const *)s, 0,
	                        NULL, 77, &a, &error) < 0);
	/* Key errors show when the signer is made. */
	bad.selector = "a b";
	CHECK(mc_dkim_signer_new(&bad, &error) == NULL &&
	      strstr(error, "s=") != NULL);
	bad.selector = "ed1";
	bad.alg = MC_DKIM_RSA_SHA256;
	CHECK(mc_dkim_signer_new(&bad, &error) == NULL &&
	      strstr(error, "not an RSA") != NULL);
done:
	mc_dkim_signer_free(&s[0]);
	mc_dkim_signer_free(&s[1]);
	CHECK(s[0] == NULL && s[1] == NULL);
	mc_dkim_signer_free(&none);
	mc_strbuf_fini(&a);
	mc_strbuf_fini(&b);
}

int
main(void)
{
	test_relaxed_header();
	test_relaxed_body();
	test_body_hash();
	test_rfc8463();
	test_keygen();
	test_sign_verify();
	test_default_headers();
	test_options();
	test_refusals();
	test_signer();
	if (rsa_pem != NULL)
		mc_wipe(rsa_pem, strlen(rsa_pem));
	if (ed_pem != NULL)
		mc_wipe(ed_pem, strlen(ed_pem));
	free(rsa_pem);
	free(rsa_pub);
	free(ed_pem);
	free(ed_pub);
	return mc_test_done();
}
