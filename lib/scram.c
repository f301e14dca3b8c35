/* SCRAM-SHA-256 verifiers and the server side of the exchange; see
 * scram.h. The messages are parsed as RFC 5802 section 7 writes them:
 * comma-separated "x=value" attributes in a fixed order, where no value
 * may contain a comma. Every input is bounded by MC_SCRAM_MESSAGE_MAX
 * before anything is copied, and every copy goes to a fixed buffer inside
 * the exchange whose size follows from that bound.
 *
 * Base64 is decoded strictly (RFC 4648: padding required, no whitespace,
 * zero pad bits), so each value has exactly one spelling. OpenSSL does
 * PBKDF2, HMAC, SHA-256, randomness and the constant-time compare. */
#include "scram.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "error.h"
#include "mem.h"
#include "mime_decode.h"

#define KEY_LEN 32 /* SHA-256 */
#define TEST_NONCE_MAX 64
#define B64_LEN(n) (((n) + 2) / 3 * 4)
/* "r=" nonce ",s=" salt ",i=" count, the nonce being the client's (less
 * than a message) plus the server's. */
#define SERVER_FIRST_MAX                                                       \
	(MC_SCRAM_MESSAGE_MAX + TEST_NONCE_MAX + B64_LEN(MC_SCRAM_SALT_MAX) +  \
	 32)

struct verifier {
	unsigned iterations;
	unsigned char salt[MC_SCRAM_SALT_MAX];
	size_t salt_len;
	unsigned char stored_key[KEY_LEN];
	unsigned char server_key[KEY_LEN];
};

enum scram_state {
	SCRAM_START,
	SCRAM_GOT_FIRST,  /* client-first parsed, waiting for the verifier */
	SCRAM_CHALLENGED, /* server-first produced, waiting for client-final */
	SCRAM_DONE,
	SCRAM_FAILED,
};

struct mc_scram_server {
	enum scram_state state;
	enum mc_scram_failure failure;
	bool fake; /* no usable verifier: step 3 must fail */
	/* The whole client-first-message: the GS2 header is [0, bare) and
	 * the AuthMessage starts at bare. */
	char client_first[MC_SCRAM_MESSAGE_MAX + 1];
	size_t client_first_len, bare;
	size_t cnonce, cnonce_len; /* client nonce, in client_first */
	char username[MC_SCRAM_USERNAME_MAX];
	char test_nonce[TEST_NONCE_MAX + 1];
	struct verifier v;
	/* The combined nonce is server_first[2, 2 + nonce_len). */
	char server_first[SERVER_FIRST_MAX];
	size_t server_first_len, nonce_len;
	char server_final[2 + B64_LEN(KEY_LEN) + 1];
};

/* ---- base64 (RFC 4648, strict) ---- */

static const char b64_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encode n bytes into out (size >= B64_LEN(n) + 1); returns the length. */
static size_t
b64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			w |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			w |= in[i + 2];
		out[o++] = b64_alphabet[(w >> 18) & 63];
		out[o++] = b64_alphabet[(w >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alphabet[(w >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64_alphabet[w & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

/* Decode len chars into out (at most cap bytes). -1 for anything that is
 * not canonical base64 or does not fit. */
static int
b64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
           size_t *out_len_r)
{
	size_t o = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		size_t pad = 0;
		uint32_t w = 0;

		if (last && in[i + 3] == '=')
			pad = in[i + 2] == '=' ? 2 : 1;
		for (size_t k = 0; k < 4 - pad; k++) {
			int v = mc_mime_base64_value((unsigned char)in[i + k]);

			if (v < 0)
				return -1;
			w = w << 6 | (uint32_t)v;
		}
		w <<= 6 * pad;
		/* The bits padding leaves over must be zero. */
		if ((pad == 1 && (w & 0xff) != 0) ||
		    (pad == 2 && (w & 0xffff) != 0))
			return -1;
		if (o + 3 - pad > cap)
			return -1;
		out[o++] = (unsigned char)(w >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(w >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)w;
	}
	*out_len_r = o;
	return 0;
}

/* ---- primitives ---- */

static bool
hmac(const unsigned char *key, size_t key_len, const void *data, size_t len,
     unsigned char out[KEY_LEN])
{
	unsigned int n = KEY_LEN;

	return HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) !=
	               NULL &&
	       n == KEY_LEN;
}

static bool
sha256(const unsigned char *in, size_t len, unsigned char out[KEY_LEN])
{
	return EVP_Digest(in, len, out, NULL, EVP_sha256(), NULL) == 1;
}

/* RFC 3629 UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF) without C0 controls or DEL: the username ends up in logs. */
static bool
utf8_printable(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* Printable ASCII without ',': the nonce alphabet (RFC 5802 "printable"). */
static bool
nonce_chars(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
			return false;
	return true;
}

/* ---- verifiers ---- */

/* Decimal count without sign or leading zero, in range. */
static bool
parse_iterations(const char *s, size_t len, unsigned *out_r)
{
	unsigned long v = 0;

	if (len == 0 || len > 8 || s[0] == '0')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < MC_SCRAM_ITERATIONS_MIN || v > MC_SCRAM_ITERATIONS_MAX)
		return false;
	*out_r = (unsigned)v;
	return true;
}

static bool
verifier_parse(const char *s, struct verifier *v)
{
	size_t plen = strlen(MC_SCRAM_PREFIX), len, klen;
	const char *colon, *dollar, *colon2, *end;

	if (s == NULL ||
	    (len = strnlen(s, MC_SCRAM_VERIFIER_MAX)) >=
	            MC_SCRAM_VERIFIER_MAX ||
	    strncmp(s, MC_SCRAM_PREFIX, plen) != 0)
		return false;
	end = s + len;
	s += plen;
	if ((colon = memchr(s, ':', (size_t)(end - s))) == NULL ||
	    (dollar = memchr(colon, '$', (size_t)(end - colon))) == NULL ||
	    (colon2 = memchr(dollar, ':', (size_t)(end - dollar))) == NULL)
		return false;
	if (!parse_iterations(s, (size_t)(colon - s), &v->iterations) ||
	    b64_decode(colon + 1, (size_t)(dollar - colon - 1), v->salt,
	               sizeof(v->salt), &v->salt_len) < 0 ||
	    v->salt_len < MC_SCRAM_SALT_MIN ||
	    b64_decode(dollar + 1, (size_t)(colon2 - dollar - 1), v->stored_key,
	               KEY_LEN, &klen) < 0 ||
	    klen != KEY_LEN ||
	    b64_decode(colon2 + 1, (size_t)(end - colon2 - 1), v->server_key,
	               KEY_LEN, &klen) < 0 ||
	    klen != KEY_LEN)
		return false;
	return true;
}

static void
verifier_format(const struct verifier *v, char *buf, size_t size)
{
	char salt[B64_LEN(MC_SCRAM_SALT_MAX) + 1];
	char stored[B64_LEN(KEY_LEN) + 1], server[B64_LEN(KEY_LEN) + 1];
	int n;

	b64_encode(v->salt, v->salt_len, salt);
	b64_encode(v->stored_key, KEY_LEN, stored);
	b64_encode(v->server_key, KEY_LEN, server);
	n = snprintf(buf, size, "%s%u:%s$%s:%s", MC_SCRAM_PREFIX, v->iterations,
	             salt, stored, server);
	if (n < 0 || (size_t)n >= size)
		abort(); /* size >= MC_SCRAM_VERIFIER_MAX: cannot happen */
}

bool
mc_scram_verifier_valid(const char *v)
{
	struct verifier parsed;
	bool ok = verifier_parse(v, &parsed);

	mc_wipe(&parsed, sizeof(parsed));
	return ok;
}

int
mc_scram_verifier_new(const char *password, size_t len, unsigned iterations,
                      char **verifier_r, const char **error_r)
{
	unsigned char salted[KEY_LEN], client_key[KEY_LEN];
	struct verifier v = {.iterations = iterations,
	                     .salt_len = MC_SCRAM_SALT_LEN};
	char *out = NULL;
	int ret = -1;

	if (len == 0 || len > MC_SCRAM_PASSWORD_MAX) {
		*error_r = mc_errorf("password must be 1 to %u bytes",
		                     MC_SCRAM_PASSWORD_MAX);
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if (password[i] < 0x20 || password[i] > 0x7e) {
			*error_r = "password is not printable ASCII (SASLprep "
			           "is not implemented)";
			goto out;
		}
	if (iterations < MC_SCRAM_ITERATIONS_MIN ||
	    iterations > MC_SCRAM_ITERATIONS_MAX) {
		*error_r = mc_errorf("iteration count must be %u to %u",
		                     MC_SCRAM_ITERATIONS_MIN,
		                     MC_SCRAM_ITERATIONS_MAX);
		goto out;
	}
	if (RAND_bytes(v.salt, MC_SCRAM_SALT_LEN) != 1) {
		*error_r = "cannot get random bytes for the salt";
		goto out;
	}
	if (PKCS5_PBKDF2_HMAC(password, (int)len, v.salt, MC_SCRAM_SALT_LEN,
	                      (int)iterations, EVP_sha256(), KEY_LEN,
	                      salted) != 1 ||
	    !hmac(salted, KEY_LEN, "Client Key", 10, client_key) ||
	    !sha256(client_key, KEY_LEN, v.stored_key) ||
	    !hmac(salted, KEY_LEN, "Server Key", 10, v.server_key)) {
		*error_r = "PBKDF2-HMAC-SHA256 failed";
		goto out;
	}
	out = mc_malloc(MC_SCRAM_VERIFIER_MAX);
	verifier_format(&v, out, MC_SCRAM_VERIFIER_MAX);
	*verifier_r = out;
	ret = 0;
out:
	mc_wipe(salted, sizeof(salted));
	mc_wipe(client_key, sizeof(client_key));
	mc_wipe(&v, sizeof(v));
	return ret;
}

/* The fake verifiers' key: random, per process, never leaves it. */
static unsigned char fake_key[KEY_LEN];
static pthread_once_t fake_key_once = PTHREAD_ONCE_INIT;

static void
fake_key_init(void)
{
	/* Without randomness the fake salts would be predictable and could
	 * be told from real ones: nothing sensible to fall back to. */
	if (RAND_bytes(fake_key, sizeof(fake_key)) != 1) {
		fprintf(stderr, "scram: no random bytes for the fake key\n");
		abort();
	}
}

/* HMAC(fake_key, label NUL username). */
static void
fake_derive(const char *label, const char *username, unsigned char out[KEY_LEN])
{
	size_t ll = strlen(label) + 1, ul = strnlen(username, 4096);
	unsigned char *buf = mc_malloc(ll + ul);

	memcpy(buf, label, ll);
	memcpy(buf + ll, username, ul);
	if (!hmac(fake_key, sizeof(fake_key), buf, ll + ul, out))
		abort(); /* HMAC-SHA256 in memory cannot fail */
	free(buf);
}

void
mc_scram_verifier_fake(const char *username, char *buf, size_t size)
{
	struct verifier v = {.iterations = MC_SCRAM_ITERATIONS,
	                     .salt_len = MC_SCRAM_SALT_LEN};
	unsigned char salt[KEY_LEN];

	if (size < MC_SCRAM_VERIFIER_MAX)
		abort();
	pthread_once(&fake_key_once, fake_key_init);
	fake_derive("salt", username, salt);
	memcpy(v.salt, salt, MC_SCRAM_SALT_LEN);
	fake_derive("stored", username, v.stored_key);
	fake_derive("server", username, v.server_key);
	verifier_format(&v, buf, size);
	mc_wipe(&v, sizeof(v));
	mc_wipe(salt, sizeof(salt));
}

/* ---- the exchange ---- */

struct mc_scram_server *
mc_scram_server_new(void)
{
	return mc_malloc(sizeof(struct mc_scram_server));
}

void
mc_scram_server_free(struct mc_scram_server **s)
{
	if (*s == NULL)
		return;
	mc_wipe(*s, sizeof(**s));
	free(*s);
	*s = NULL;
}

const char *
mc_scram_server_username(const struct mc_scram_server *s)
{
	return s->username;
}

enum mc_scram_failure
mc_scram_server_failure(const struct mc_scram_server *s)
{
	return s->failure;
}

void
mc_scram_server_set_nonce_for_test(struct mc_scram_server *s,
                                   const char *suffix)
{
	size_t len = strlen(suffix);

	if (len == 0 || len > TEST_NONCE_MAX || !nonce_chars(suffix, len))
		abort();
	memcpy(s->test_nonce, suffix, len + 1);
}

/* Fail the exchange for good; returns -1 for the caller to return. */
static int
fail(struct mc_scram_server *s, enum mc_scram_failure why, const char *text,
     const char **error_r)
{
	s->state = SCRAM_FAILED;
	s->failure = why;
	*error_r = text;
	return -1;
}

/* One attribute "x=value" at *p (before end); advances *p past the comma
 * that ends it, or to end. False when there is none or it is not a
 * letter, '=' and a value (which may be empty: callers check). */
static bool
next_attr(const char **p, const char *end, char *name_r, const char **val_r,
          size_t *len_r)
{
	const char *s = *p, *comma;

	if (end - s < 2 || s[1] != '=' ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	comma = memchr(s, ',', (size_t)(end - s));
	*name_r = s[0];
	*val_r = s + 2;
	*len_r = (size_t)((comma != NULL ? comma : end) - (s + 2));
	*p = comma != NULL ? comma + 1 : end;
	/* A trailing comma would start an empty attribute. */
	return comma == NULL || comma + 1 < end;
}

/* RFC 5802 extensions are letters other than the ones the grammar uses,
 * each with a value; they carry nothing we understand and are skipped. */
static bool
skip_extensions(const char *p, const char *end)
{
	char name;
	const char *val;
	size_t len;

	while (p < end) {
		if (!next_attr(&p, end, &name, &val, &len) || len == 0 ||
		    strchr("acimnprsve", name) != NULL)
			return false;
	}
	return true;
}

/* Decode a saslname (',' never appears; '=' only as =2C or =3D) into out
 * (size bytes with the NUL); out is "" when it is not one. */
static bool
saslname_decode(const char *in, size_t len, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '=') {
			if (len - i < 3)
				goto fail;
			if (in[i + 1] == '2' && in[i + 2] == 'C')
				c = ',';
			else if (in[i + 1] == '3' && in[i + 2] == 'D')
				c = '=';
			else
				goto fail;
			i += 2;
		}
		if (o + 1 >= size)
			goto fail;
		out[o++] = c;
	}
	out[o] = '\0';
	if (o > 0 && utf8_printable((const unsigned char *)out, o))
		return true;
fail:
	out[0] = '\0';
	return false;
}

/* The GS2 header: "n," / "y," then "a=authzid," or ",". Sets s->bare and
 * checks the authzid (decoded into authzid, size bytes) later. */
static int
parse_gs2(struct mc_scram_server *s, const char *msg, size_t len, char *authzid,
          size_t size, const char **error_r)
{
	const char *p = msg, *end = msg + len, *comma;

	if (len >= 2 && msg[0] == 'p' && msg[1] == '=')
		return fail(s, MC_SCRAM_FAIL_UNSUPPORTED,
		            "channel binding requested: only SCRAM-SHA-256 "
		            "without -PLUS is offered",
		            error_r);
	/* 'y': the client could bind but thinks we cannot, which is true
	 * (were -PLUS ever offered, 'y' would signal a downgrade). */
	if (len < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "bad GS2 header",
		            error_r);
	p += 2;
	authzid[0] = '\0';
	if (p[0] == 'a' && end - p >= 2 && p[1] == '=') {
		if ((comma = memchr(p, ',', (size_t)(end - p))) == NULL ||
		    !saslname_decode(p + 2, (size_t)(comma - p - 2), authzid,
		                     size))
			return fail(s, MC_SCRAM_FAIL_MALFORMED,
			            "bad authorisation identity", error_r);
		p = comma;
	}
	if (p >= end || *p != ',')
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "bad GS2 header",
		            error_r);
	s->bare = (size_t)(p + 1 - msg);
	return 0;
}

int
mc_scram_server_first(struct mc_scram_server *s, const char *msg, size_t len,
                      const char **error_r)
{
	char authzid[MC_SCRAM_USERNAME_MAX], name;
	const char *p, *end, *val;
	size_t vlen;

	if (s->state != SCRAM_START)
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "called out of order",
		            error_r);
	if (len > MC_SCRAM_MESSAGE_MAX)
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "message too long",
		            error_r);
	if (memchr(msg, '\0', len) != NULL)
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "NUL in the message",
		            error_r);
	memcpy(s->client_first, msg, len);
	s->client_first[len] = '\0';
	s->client_first_len = len;
	msg = s->client_first;
	if (parse_gs2(s, msg, len, authzid, sizeof(authzid), error_r) < 0)
		return -1;
	p = msg + s->bare;
	end = msg + len;
	if (end - p >= 2 && p[0] == 'm' && p[1] == '=')
		return fail(s, MC_SCRAM_FAIL_UNSUPPORTED,
		            "mandatory extension not supported", error_r);
	if (!next_attr(&p, end, &name, &val, &vlen) || name != 'n' ||
	    !saslname_decode(val, vlen, s->username, sizeof(s->username)))
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "bad username",
		            error_r);
	if (!next_attr(&p, end, &name, &val, &vlen) || name != 'r' ||
	    vlen == 0 || !nonce_chars(val, vlen))
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "bad client nonce",
		            error_r);
	s->cnonce = (size_t)(val - msg);
	s->cnonce_len = vlen;
	if (!skip_extensions(p, end))
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "bad extension",
		            error_r);
	if (authzid[0] != '\0' && strcmp(authzid, s->username) != 0)
		return fail(s, MC_SCRAM_FAIL_UNSUPPORTED,
		            "authorisation identity differs from the username",
		            error_r);
	s->state = SCRAM_GOT_FIRST;
	return 0;
}

/* r=<client nonce><server nonce>,s=<salt>,i=<count> */
static int
write_server_first(struct mc_scram_server *s, const char **error_r)
{
	unsigned char rnd[MC_SCRAM_SERVER_NONCE_BYTES];
	char snonce[B64_LEN(sizeof(rnd)) + 1],
	        salt[B64_LEN(MC_SCRAM_SALT_MAX) + 1];
	const char *suffix = snonce;
	int n;

	if (s->test_nonce[0] != '\0') {
		suffix = s->test_nonce;
	} else {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return fail(s, MC_SCRAM_FAIL_INTERNAL,
			            "no random bytes for the nonce", error_r);
		b64_encode(rnd, sizeof(rnd), snonce);
	}
	b64_encode(s->v.salt, s->v.salt_len, salt);
	/* cnonce_len < MC_SCRAM_MESSAGE_MAX: SERVER_FIRST_MAX has room. */
	n = snprintf(s->server_first, sizeof(s->server_first),
	             "r=%.*s%s,s=%s,i=%u", (int)s->cnonce_len,
	             s->client_first + s->cnonce, suffix, salt,
	             s->v.iterations);
	if (n < 0 || (size_t)n >= sizeof(s->server_first))
		abort();
	s->server_first_len = (size_t)n;
	s->nonce_len = s->cnonce_len + strlen(suffix);
	return 0;
}

int
mc_scram_server_challenge(struct mc_scram_server *s, const char *verifier,
                          const char **out_r, size_t *len_r,
                          const char **error_r)
{
	char fake_text[MC_SCRAM_VERIFIER_MAX];
	struct verifier fake;
	bool real;

	if (s->state != SCRAM_GOT_FIRST)
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "called out of order",
		            error_r);
	/* The fake is computed every time, so unknown users cost the same
	 * as known ones. */
	mc_scram_verifier_fake(s->username, fake_text, sizeof(fake_text));
	if (!verifier_parse(fake_text, &fake))
		abort();
	real = verifier_parse(verifier, &s->v);
	if (!real)
		s->v = fake;
	s->fake = !real;
	mc_wipe(&fake, sizeof(fake));
	mc_wipe(fake_text, sizeof(fake_text));
	if (write_server_first(s, error_r) < 0)
		return -1;
	s->state = SCRAM_CHALLENGED;
	*out_r = s->server_first;
	*len_r = s->server_first_len;
	return 0;
}

/* HMAC(key, client-first-bare "," server-first "," final-without-proof) */
static bool
auth_hmac(const struct mc_scram_server *s, const unsigned char *key,
          const char *final, size_t final_len, unsigned char out[KEY_LEN])
{
	size_t bare_len = s->client_first_len - s->bare;
	size_t len = bare_len + 1 + s->server_first_len + 1 + final_len;
	char *msg = mc_malloc(len);
	size_t o = 0;
	bool ok;

	memcpy(msg, s->client_first + s->bare, bare_len);
	o += bare_len;
	msg[o++] = ',';
	memcpy(msg + o, s->server_first, s->server_first_len);
	o += s->server_first_len;
	msg[o++] = ',';
	memcpy(msg + o, final, final_len);
	ok = hmac(key, KEY_LEN, msg, len, out);
	free(msg);
	return ok;
}

/* The proof against the StoredKey, and the ServerSignature. */
static int
verify_proof(struct mc_scram_server *s, const char *without_proof,
             size_t wp_len, const unsigned char proof[KEY_LEN],
             const char **error_r)
{
	unsigned char sig[KEY_LEN], key[KEY_LEN], stored[KEY_LEN];
	unsigned char server_sig[KEY_LEN];
	int ret = -1;
	bool match;

	if (!auth_hmac(s, s->v.stored_key, without_proof, wp_len, sig) ||
	    !auth_hmac(s, s->v.server_key, without_proof, wp_len, server_sig)) {
		fail(s, MC_SCRAM_FAIL_INTERNAL, "HMAC failed", error_r);
		goto out;
	}
	for (size_t i = 0; i < KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	if (!sha256(key, KEY_LEN, stored)) {
		fail(s, MC_SCRAM_FAIL_INTERNAL, "SHA-256 failed", error_r);
		goto out;
	}
	match = CRYPTO_memcmp(stored, s->v.stored_key, KEY_LEN) == 0;
	if (!match || s->fake) {
		fail(s, MC_SCRAM_FAIL_AUTH, "wrong proof", error_r);
		goto out;
	}
	memcpy(s->server_final, "v=", 2);
	b64_encode(server_sig, KEY_LEN, s->server_final + 2);
	ret = 0;
out:
	mc_wipe(sig, sizeof(sig));
	mc_wipe(key, sizeof(key));
	mc_wipe(stored, sizeof(stored));
	mc_wipe(server_sig, sizeof(server_sig));
	return ret;
}

int
mc_scram_server_final(struct mc_scram_server *s, const char *msg, size_t len,
                      const char **out_r, size_t *len_r, const char **error_r)
{
	unsigned char cbind[MC_SCRAM_MESSAGE_MAX], proof[KEY_LEN];
	const char *p, *end, *last, *val;
	size_t vlen, n;
	char name;

	if (s->state != SCRAM_CHALLENGED)
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "called out of order",
		            error_r);
	if (len > MC_SCRAM_MESSAGE_MAX)
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "message too long",
		            error_r);
	if (memchr(msg, '\0', len) != NULL)
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "NUL in the message",
		            error_r);
	/* The proof is the last attribute; the AuthMessage has the rest. */
	end = msg + len;
	for (last = end; last > msg && last[-1] != ','; last--)
		;
	if (last == msg || end - last < 2 || last[0] != 'p' || last[1] != '=')
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "no proof", error_r);
	if (b64_decode(last + 2, (size_t)(end - last - 2), proof, sizeof(proof),
	               &n) < 0 ||
	    n != KEY_LEN)
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "bad proof", error_r);
	end = last - 1;
	p = msg;
	if (!next_attr(&p, end, &name, &val, &vlen) || name != 'c' ||
	    b64_decode(val, vlen, cbind, sizeof(cbind), &n) < 0)
		return fail(s, MC_SCRAM_FAIL_MALFORMED,
		            "bad channel-binding attribute", error_r);
	if (n != s->bare || memcmp(cbind, s->client_first, n) != 0)
		return fail(s, MC_SCRAM_FAIL_AUTH,
		            "channel-binding data differ from the GS2 header",
		            error_r);
	if (!next_attr(&p, end, &name, &val, &vlen) || name != 'r')
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "no nonce", error_r);
	if (vlen != s->nonce_len || memcmp(val, s->server_first + 2, vlen) != 0)
		return fail(s, MC_SCRAM_FAIL_AUTH, "nonce mismatch", error_r);
	if (!skip_extensions(p, end))
		return fail(s, MC_SCRAM_FAIL_MALFORMED, "bad extension",
		            error_r);
	if (verify_proof(s, msg, (size_t)(end - msg), proof, error_r) < 0) {
		mc_wipe(proof, sizeof(proof));
		return -1;
	}
	mc_wipe(proof, sizeof(proof));
	s->state = SCRAM_DONE;
	*out_r = s->server_final;
	*len_r = strlen(s->server_final);
	return 0;
}
