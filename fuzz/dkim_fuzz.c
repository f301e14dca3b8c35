/* Fuzz target: DKIM signing of arbitrary message bytes with a fixed
 * Ed25519 key (RFC 8032 7.1 test 1, the key of RFC 8463's example). The
 * first byte picks options (explicit h= list, i=, x=, q=); the rest is
 * the message. Checked on the way: a refusal leaves the output alone and
 * says why; a signature is one "DKIM-Signature:" field ending in CRLF
 * whose lines are CRLF-terminated continuation lines; and, since both
 * canonicalisation and Ed25519 are deterministic, the message as
 * lib/smtp_client would put it on the wire (bare LF -> CRLF, a last
 * partial line ended) gets the very same signature. Also the relaxed body
 * of the bytes never ends in an empty line nor holds a blank before a
 * CRLF. Nothing may crash, leak or read out of bounds, whatever the
 * bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim.h"

#define MUST(cond)                                                             \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "dkim_fuzz: %s failed\n", #cond);      \
			abort();                                               \
		}                                                              \
	} while (0)

static const char key_pem[] =
        "-----BEGIN PRIVATE KEY-----\n"
        "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
        "-----END PRIVATE KEY-----\n";

static const struct mc_dkim_key key = {
        .domain = "example.com",
        .selector = "fuzz",
        .alg = MC_DKIM_ED25519_SHA256,
        .private_pem = key_pem,
};

/* Parsed once: OpenSSL 3.0 takes longer to decode the PEM than to sign. */
static const struct mc_dkim_signer *
signer(void)
{
	static struct mc_dkim_signer *s;
	const char *error;

	if (s == NULL)
		MUST((s = mc_dkim_signer_new(&key, &error)) != NULL);
	return s;
}

/* The message as the SMTP client sends it (smtp_client_wire.c). */
static void
wire(struct mc_strbuf *b, const uint8_t *p, size_t n)
{
	bool cr = false, mid = false;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && !cr)
			mc_strbuf_addc(b, '\r');
		mc_strbuf_addc(b, (char)p[i]);
		mid = p[i] != '\n';
		cr = p[i] == '\r';
	}
	if (mid)
		mc_strbuf_adds(b, cr ? "\n" : "\r\n");
}

static void
check_field(const struct mc_strbuf *out)
{
	MUST(out->len > 17 &&
	     memcmp(out->data, "DKIM-Signature: v=1;", 20) == 0);
	MUST(memcmp(out->data + out->len - 2, "\r\n", 2) == 0);
	for (size_t i = 0; i + 1 < out->len; i++) {
		if (out->data[i] == '\n')
			MUST(out->data[i - 1] == '\r');
		if (out->data[i] == '\r') {
			MUST(out->data[i + 1] == '\n');
			MUST(i + 2 == out->len || out->data[i + 2] == ' ');
		}
	}
}

static void
check_body(const uint8_t *p, size_t n)
{
	struct mc_strbuf b = {0};

	mc_dkim_relaxed_body(&b, p, n);
	if (b.len > 0) {
		MUST(b.len >= 3 && memcmp(b.data + b.len - 2, "\r\n", 2) == 0);
		MUST(b.data[b.len - 3] != '\n');
	}
	for (size_t i = 0; i + 2 < b.len; i++) {
		if (b.data[i + 1] == '\r' && b.data[i + 2] == '\n')
			MUST(b.data[i] != ' ' && b.data[i] != '\t');
	}
	mc_strbuf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct mc_dkim_signer *s = signer();
	struct mc_dkim_options opts = {0};
	struct mc_strbuf out = {0}, out2 = {0}, w = {0};
	const char *msg, *error = NULL;
	size_t len;
	int r, r1;

	if (size < 1)
		return 0;
	if (data[0] & 1)
		opts.header_list = "from : to:subject :x-none";
	if (data[0] & 2)
		opts.identity = "@mail.example.com";
	if (data[0] & 4)
		opts.expire = 86400;
	opts.query_method = (data[0] & 8) != 0;
	msg = (const char *)data + 1;
	len = size - 1;

	mc_strbuf_adds(&out, "x");
	r = r1 = mc_dkim_sign_with(msg, len, &s, 1, &opts, 1700000000, &out,
	                           &error);
	if (r < 0) {
		MUST(error != NULL && error[0] != '\0');
		MUST(out.len == 1);
	} else {
		MUST(r == 0);
		mc_strbuf_consume(&out, 1);
		check_field(&out);
	}

	wire(&w, data + 1, len);
	r = mc_dkim_sign_with(w.data, w.len, &s, 1, &opts, 1700000000, &out2,
	                      &error);
	MUST(r == r1);
	if (r == 0)
		MUST(out.len == out2.len &&
		     memcmp(out.data, out2.data, out.len) == 0);

	check_body(data + 1, len);
	mc_strbuf_fini(&out);
	mc_strbuf_fini(&out2);
	mc_strbuf_fini(&w);
	return 0;
}

/* Seeds: ordinary messages, line-end and folding corners. The first byte
 * of each is the option selector above. */
struct seed {
	const char *s;
	size_t len;
};
#define SEED(s)                                                                \
	{                                                                      \
		s, sizeof(s) - 1                                               \
	}

static const struct seed seeds[] = {
        SEED("\x00"
             "From: Joe SixPack <joe@football.example.com>\r\n"
             "To: Suzie Q <suzie@shopping.example.net>\r\n"
             "Subject: Is dinner ready?\r\n"
             "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
             "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
             "\r\nHi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\n"
             "Joe.\r\n\r\n"),
        SEED("\x0f"
             "from: a@example.com\nTo: b@x.test,\n\tc@y.test\n"
             "Subject: folded\n  twice \t\n\nbody \t \nline\n\n\n"),
        SEED("\x01"
             "Received: x\r\nFrom: a@b\r\nCc: 1\r\ncc: 2\r\n"
             "List-Id: <l.example>\r\nList-Unsubscribe-Post: x\r\n\r\n"
             "\xc3\xa9t\xc3\xa9 \r\n.\r\n..\r\n"),
        SEED("\x02"
             "From: a@b.test\r\n \r\n\r\n\r\n  \r\n\ta\r\r\n\r"),
        SEED("\x04"
             "From: a@b.test"),
        SEED("\x08"
             "From: a@b\r\nFrom: c@d\r\n\r\nx"),
        SEED("\x00"
             "Subject: no from\n\n"),
};
#define NSEEDS (sizeof(seeds) / sizeof(seeds[0]))

static const uint8_t *seed_ptrs[NSEEDS];
static size_t seed_sizes[NSEEDS];

size_t mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r);

size_t
mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r)
{
	for (size_t i = 0; i < NSEEDS; i++) {
		seed_ptrs[i] = (const uint8_t *)seeds[i].s;
		seed_sizes[i] = seeds[i].len;
	}
	*seeds_r = seed_ptrs;
	*sizes_r = seed_sizes;
	return NSEEDS;
}
