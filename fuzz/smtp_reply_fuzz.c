/* Fuzz target: bytes from an SMTP/LMTP server as the client reads them,
 * and the same bytes as message content the client sends. The first byte
 * picks the reply limits and how the rest is cut into reads. Replies go
 * through the parser twice, in as few reads as possible and chunked, and
 * the two transcripts must agree (resumability); every reply must have a
 * code in 200..599, printable text and no more lines than the limit, and
 * EHLO capability parsing of it must stay in bounds. As content, the
 * bytes are dot-stuffed in chunks and read back with the server's DATA
 * reader (smtp_parser.h): it must end exactly at the client's terminator
 * and give back the content with bare LF as CRLF and a final line end.
 * Nothing here may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_client.h"
#include "smtp_parser.h"

#define MUST(cond)                                                             \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "smtp_reply_fuzz: %s failed\n",        \
			        #cond);                                        \
			abort();                                               \
		}                                                              \
	} while (0)

static void
mix(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) { /* FNV-1a */
		*h ^= b[i];
		*h *= 0x100000001b3ull;
	}
}

static void
check_reply(const struct mc_smtp_client_reply *r, size_t max_lines)
{
	struct mc_smtp_client_caps caps;
	char one[64];

	MUST(r->code >= 200 && r->code <= 559);
	MUST(r->lines >= 1 && r->lines <= max_lines);
	MUST(strlen(r->enhanced) < sizeof(r->enhanced));
	for (const char *s = r->text; *s != '\0'; s++)
		MUST(*s == '\n' || (*s >= 0x20 && *s < 0x7f));
	mc_smtp_client_caps_parse(r, &caps);
	MUST(strlen(caps.auth) < sizeof(caps.auth));
	mc_smtp_client_reply_oneline(r, one, sizeof(one));
	MUST(strlen(one) < sizeof(one));
}

/* Parse everything in reads of at most chunk bytes; a transcript hash. */
static uint64_t
run_replies(const uint8_t *data, size_t size, size_t chunk,
            const struct mc_smtp_client_reply_limits *lim)
{
	struct mc_smtp_client_reply_parser p;
	const struct mc_smtp_client_reply *r;
	const char *error;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t off = 0, used;

	mc_smtp_client_reply_init(&p, lim);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		int rc = mc_smtp_client_reply_parse(&p, data + off, n, &used,
		                                    &r, &error);

		MUST(used <= n);
		off += used;
		if (rc < 0) {
			mix(&h, error, strlen(error));
			break;
		}
		if (rc == 1) {
			check_reply(r, p.max_lines);
			mix(&h, &r->code, sizeof(r->code));
			mix(&h, r->enhanced, strlen(r->enhanced));
			mix(&h, r->text, strlen(r->text));
		} else {
			MUST(used == n);
		}
	}
	mc_smtp_client_reply_fini(&p);
	return h;
}

struct out {
	char *p;
	size_t len, cap;
	bool overflow;
};

static void
collect(void *ctx, const void *data, size_t len)
{
	struct out *o = ctx;

	if (len > o->cap - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->p + o->len, data, len);
	o->len += len;
}

/* The content as the server must store it: bare LF as CRLF, a final
 * line end. */
static size_t
expected(const uint8_t *data, size_t size, char *exp)
{
	size_t n = 0;

	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			exp[n++] = '\r';
		exp[n++] = (char)data[i];
	}
	if (n > 0 && exp[n - 1] != '\n') {
		if (exp[n - 1] != '\r')
			exp[n++] = '\r';
		exp[n++] = '\n';
	}
	return n;
}

static void
run_content(const uint8_t *data, size_t size, size_t chunk)
{
	struct mc_smtp_client_stuffer st = {0};
	struct mc_smtp_limits lim;
	struct mc_smtp_data d;
	char *wire = malloc(2 * size + MC_SMTP_CLIENT_STUFF_END);
	char *exp = malloc(2 * size + 3);
	struct out out = {malloc(2 * size + 3), 0, 2 * size + 3, false};
	size_t n = 0, off = 0, used, elen, consumed;

	MUST(wire != NULL && exp != NULL && out.p != NULL);
	while (off < size) {
		size_t take = size - off < chunk ? size - off : chunk;

		n += mc_smtp_client_stuff(&st, data + off, take, &used,
		                          wire + n, 2 * take);
		MUST(used == take);
		off += used;
	}
	n += mc_smtp_client_stuff_end(&st, wire + n);
	elen = expected(data, size, exp);
	mc_smtp_limits_default(&lim);
	lim.max_message = UINT64_MAX;
	mc_smtp_data_init(&d, &lim, collect, &out);
	MUST(mc_smtp_data_parse(&d, wire, n, &consumed) == 1);
	MUST(consumed == n);
	MUST(!out.overflow && out.len == elen);
	MUST(elen == 0 || memcmp(out.p, exp, elen) == 0);
	free(out.p);
	free(exp);
	free(wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_smtp_client_reply_limits lim;
	size_t chunk;

	if (size < 1)
		return 0;
	lim.max_line = (data[0] & 1) ? 512 : 0;
	lim.max_lines = (data[0] & 2) ? 3 : 0;
	chunk = 1 + (data[0] >> 2);
	data++;
	size--;
	MUST(run_replies(data, size, SIZE_MAX, &lim) ==
	     run_replies(data, size, chunk, &lim));
	run_content(data, size, chunk);
	return 0;
}

/* clang-format off */
static const char *const seed_text[] = {
	"\x05" "220 mx.example.test ESMTP\r\n",
	"\x09" "250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-AUTH PLAIN LOGIN\r\n"
	"250-8BITMIME\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n",
	"\x02" "550-5.1.1 first\r\n550 5.1.1 second\r\n354 go\r\n",
	"\x13" "250 2.0.0 ok\n452 4.2.2 full\r\n.dot\r\n..\r\n.\r\nx",
	"\x00" "250-a\r\n251 b\r\n",
	"\x07" "line\nbare\rcr\r\n.\n.x",
};
/* clang-format on */

size_t
mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r)
{
	static const uint8_t *seeds[sizeof(seed_text) / sizeof(seed_text[0])];
	static size_t sizes[sizeof(seed_text) / sizeof(seed_text[0])];
	size_t n = sizeof(seed_text) / sizeof(seed_text[0]);

	for (size_t i = 0; i < n; i++) {
		seeds[i] = (const uint8_t *)seed_text[i];
		sizes[i] = strlen(seed_text[i]);
	}
	/* "\x00" seeds have a zero first byte: give them their length. */
	sizes[4] = 1 + strlen(seed_text[4] + 1);
	*seeds_r = seeds;
	*sizes_r = sizes;
	return n;
}
