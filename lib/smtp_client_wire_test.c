/* The SMTP client's pure pieces (smtp_client_wire.c): the reply parser,
 * table-driven with valid and hostile replies, each fed whole, one byte
 * at a time and in random chunks (the results must agree); EHLO
 * capabilities; the dot-stuffer, checked by round trip through the
 * server's DATA reader (smtp_parser.h) on fixed and random content. */
#include <stdint.h>
#include <stdlib.h>

#include "mem.h"
#include "smtp_client.h"
#include "smtp_parser.h"
#include "test.h"

/* ---- Replies ----------------------------------------------------------- */

struct reply_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	int rc;     /* of the first parse */
	unsigned code;
	const char *enhanced;
	const char *text;
	size_t lines;
};

/* clang-format off */
static const struct reply_case reply_cases[] = {
	{"220 mx.example ESMTP ready\r\n", 0, 1, 220, "", "mx.example ESMTP ready", 1},
	{"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 0, 1, 250, "",
	 "mx.example\nPIPELINING\nSIZE 1000", 3},
	{"550 5.1.1 <a@b.test>: user unknown\r\n", 0, 1, 550, "5.1.1",
	 "<a@b.test>: user unknown", 1},
	{"550-5.7.1 first\r\n550 5.7.1 second\r\n", 0, 1, 550, "5.7.1",
	 "first\nsecond", 2},
	{"452-4.2.2 a\r\n452 b\r\n", 0, 1, 452, "4.2.2", "a\nb", 2},
	{"250 5.1.1 not mine\r\n", 0, 1, 250, "", "5.1.1 not mine", 1},
	{"250 2.0.0x\r\n", 0, 1, 250, "", "2.0.0x", 1},
	{"250 2.1234.0 no\r\n", 0, 1, 250, "", "2.1234.0 no", 1},
	{"550 5.1.1\r\n", 0, 1, 550, "5.1.1", "", 1},
	{"250 2.999.999 ok\r\n", 0, 1, 250, "2.999.999", "ok", 1},
	{"250\r\n", 0, 1, 250, "", "", 1},
	{"250-\r\n250 x\r\n", 0, 1, 250, "", "\nx", 2},
	{"250 ok\n", 0, 1, 250, "", "ok", 1},
	{"354 go ahead\r\n", 0, 1, 354, "", "go ahead", 1},
	{"250 a\x01" "b\xff" "c\x7f\r\n", 0, 1, 250, "", "a?b?c?", 1},
	{"250 a\0b\r\n", 9, 1, 250, "", "a?b", 1},
	{"250 a\rb\r\n", 0, 1, 250, "", "a?b", 1},
	{"250 incomplete", 0, 0, 0, NULL, NULL, 0},
	{"250-a\r\n", 0, 0, 0, NULL, NULL, 0},
	{"", 0, 0, 0, NULL, NULL, 0},
	{"250-a\r\n251 b\r\n", 0, -1, 0, NULL, NULL, 0},
	{"hello there\r\n", 0, -1, 0, NULL, NULL, 0},
	{"600 x\r\n", 0, -1, 0, NULL, NULL, 0},
	{"199 x\r\n", 0, -1, 0, NULL, NULL, 0},
	{"260 x\r\n", 0, -1, 0, NULL, NULL, 0},
	{"25\r\n", 0, -1, 0, NULL, NULL, 0},
	{"\r\n", 0, -1, 0, NULL, NULL, 0},
	{"250x\r\n", 0, -1, 0, NULL, NULL, 0},
	{"250\tx\r\n", 0, -1, 0, NULL, NULL, 0},
	{"2a0 x\r\n", 0, -1, 0, NULL, NULL, 0},
};
/* clang-format on */

/* Feed in chunks of `chunk` bytes (0: all at once, SIZE_MAX: random). */
static int
feed(struct mc_smtp_client_reply_parser *p, const char *in, size_t len,
     size_t chunk, const struct mc_smtp_client_reply **reply_r,
     size_t *consumed_r)
{
	size_t off = 0, used;
	const char *error;
	int rc = 0;

	while (off < len) {
		size_t n = len - off;

		if (chunk == SIZE_MAX)
			n = 1 + (size_t)rand() % n;
		else if (chunk > 0 && n > chunk)
			n = chunk;
		rc = mc_smtp_client_reply_parse(p, in + off, n, &used, reply_r,
		                                &error);
		off += used;
		if (rc != 0)
			break;
		CHECK(used == n);
	}
	*consumed_r = off;
	return rc;
}

static void
test_reply_cases(void)
{
	static const size_t chunks[] = {0, 1, 2, 7, SIZE_MAX};

	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]);
	     i++) {
		const struct reply_case *c = &reply_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->in);

		for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]);
		     k++) {
			struct mc_smtp_client_reply_parser p;
			const struct mc_smtp_client_reply *r = NULL;
			size_t consumed;
			int rc;

			mc_smtp_client_reply_init(&p, NULL);
			rc = feed(&p, c->in, len, chunks[k], &r, &consumed);
			if (rc != c->rc)
				fprintf(stderr, "case %zu chunk %zu: rc %d\n",
				        i, chunks[k], rc);
			CHECK(rc == c->rc);
			if (rc == 1 && c->rc == 1) {
				CHECK(r->code == c->code);
				CHECK_STR(r->enhanced, c->enhanced);
				CHECK_STR(r->text, c->text);
				CHECK(r->lines == c->lines);
				CHECK(consumed == len);
			}
			mc_smtp_client_reply_fini(&p);
		}
	}
}

static void
test_reply_sequence(void)
{
	const char *in = "220 hi\r\n250-a\r\n250 b\r\n550 5.1.1 no\r\n354 go";
	struct mc_smtp_client_reply_parser p;
	const struct mc_smtp_client_reply *r;
	const char *error;
	size_t used, off = 0, len = strlen(in);
	unsigned codes[3];
	int n = 0;

	mc_smtp_client_reply_init(&p, NULL);
	while (mc_smtp_client_reply_parse(&p, in + off, len - off, &used, &r,
	                                  &error) == 1 &&
	       n < 3) {
		codes[n++] = r->code;
		off += used;
	}
	CHECK(n == 3);
	CHECK(codes[0] == 220 && codes[1] == 250 && codes[2] == 550);
	/* The incomplete "354 go" was taken in and waits for its LF. */
	CHECK(used == len - off);
	CHECK(mc_smtp_client_reply_parse(&p, "\r\n", 2, &used, &r, &error) ==
	      1);
	CHECK(r->code == 354);
	CHECK_STR(r->text, "go");
	/* Reset drops a partial reply (after STARTTLS). */
	CHECK(mc_smtp_client_reply_parse(&p, "250-x\r\n25", 9, &used, &r,
	                                 &error) == 0);
	mc_smtp_client_reply_reset(&p);
	CHECK(mc_smtp_client_reply_parse(&p, "220 y\r\n", 7, &used, &r,
	                                 &error) == 1);
	CHECK(r->code == 220 && r->lines == 1);
	mc_smtp_client_reply_fini(&p);
}

static void
test_reply_limits(void)
{
	struct mc_smtp_client_reply_limits lim = {.max_line = 512,
	                                          .max_lines = 3};
	struct mc_smtp_client_reply_parser p;
	const struct mc_smtp_client_reply *r;
	const char *error = NULL;
	char line[600];
	size_t used;

	/* 510 octets + CRLF = 512: accepted. */
	mc_smtp_client_reply_init(&p, &lim);
	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	memcpy(line + 510, "\r\n", 2);
	CHECK(mc_smtp_client_reply_parse(&p, line, 512, &used, &r, &error) ==
	      1);
	CHECK(strlen(r->text) == 506);
	/* 511 + CRLF: too long, even in pieces, and sticky. */
	memcpy(line + 510, "x\r\n", 3);
	CHECK(mc_smtp_client_reply_parse(&p, line, 300, &used, &r, &error) ==
	      0);
	CHECK(mc_smtp_client_reply_parse(&p, line + 300, 213, &used, &r,
	                                 &error) == -1);
	CHECK_STR(error, "reply line too long");
	CHECK(mc_smtp_client_reply_parse(&p, "250 ok\r\n", 8, &used, &r,
	                                 &error) == -1);
	mc_smtp_client_reply_fini(&p);

	/* Three lines allowed, four refused. */
	mc_smtp_client_reply_init(&p, &lim);
	CHECK(mc_smtp_client_reply_parse(&p, "250-a\r\n250-b\r\n250 c\r\n", 21,
	                                 &used, &r, &error) == 1);
	CHECK(mc_smtp_client_reply_parse(&p,
	                                 "250-a\r\n250-b\r\n250-c\r\n250 d\r\n",
	                                 28, &used, &r, &error) == -1);
	CHECK_STR(error, "reply has too many lines");
	mc_smtp_client_reply_fini(&p);

	/* Defaults: a 100 KiB line without LF and a 101-line reply. */
	mc_smtp_client_reply_init(&p, NULL);
	{
		char *big = mc_malloc(100000);
		int rc;

		memset(big, 'z', 100000);
		rc = mc_smtp_client_reply_parse(&p, big, 100000, &used, &r,
		                                &error);
		CHECK(rc == -1);
		CHECK(used <= MC_SMTP_CLIENT_REPLY_LINE_DEFAULT);
		free(big);
	}
	mc_smtp_client_reply_fini(&p);
	mc_smtp_client_reply_init(&p, NULL);
	for (int i = 0; i < 101; i++) {
		int rc = mc_smtp_client_reply_parse(&p, "250-x\r\n", 7, &used,
		                                    &r, &error);

		CHECK(rc == (i < 100 ? 0 : -1));
	}
	mc_smtp_client_reply_fini(&p);

	/* max_line below the RFC minimum is raised to it. */
	lim.max_line = 10;
	mc_smtp_client_reply_init(&p, &lim);
	CHECK(mc_smtp_client_reply_parse(&p, line, 512, &used, &r, &error) ==
	      -1);
	memcpy(line + 510, "\r\n", 2);
	mc_smtp_client_reply_fini(&p);
	mc_smtp_client_reply_init(&p, &lim);
	CHECK(mc_smtp_client_reply_parse(&p, line, 512, &used, &r, &error) ==
	      1);
	mc_smtp_client_reply_fini(&p);
}

static void
test_oneline(void)
{
	struct mc_smtp_client_reply r = {.code = 550, .text = "a\nb\nc"};
	char buf[8];

	mc_smtp_client_reply_oneline(&r, buf, sizeof(buf));
	CHECK_STR(buf, "a b c");
	mc_smtp_client_reply_oneline(&r, buf, 4);
	CHECK_STR(buf, "a b");
}

/* ---- Capabilities ------------------------------------------------------ */

static void
caps_of(const char *text, struct mc_smtp_client_caps *caps)
{
	struct mc_smtp_client_reply r = {.code = 250, .text = text};

	mc_smtp_client_caps_parse(&r, caps);
}

static void
test_caps(void)
{
	struct mc_smtp_client_caps caps;
	char many[2000] = "mx\nAUTH";

	caps_of("mx.example greets you\nPIPELINING\nSIZE 10240000\n8BITMIME\n"
	        "smtputf8\nSTARTTLS\nENHANCEDSTATUSCODES\nAUTH PLAIN login\n"
	        "AUTH=CRAM-MD5\nDSN\nCHUNKING\nXFOO bar\nVRFY",
	        &caps);
	CHECK(caps.ext ==
	      (MC_SMTP_CLIENT_EXT_PIPELINING | MC_SMTP_CLIENT_EXT_SIZE |
	       MC_SMTP_CLIENT_EXT_8BITMIME | MC_SMTP_CLIENT_EXT_SMTPUTF8 |
	       MC_SMTP_CLIENT_EXT_STARTTLS |
	       MC_SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES |
	       MC_SMTP_CLIENT_EXT_AUTH | MC_SMTP_CLIENT_EXT_DSN |
	       MC_SMTP_CLIENT_EXT_CHUNKING));
	CHECK(caps.size_max == 10240000);
	CHECK_STR(caps.auth, "PLAIN LOGIN CRAM-MD5");

	/* The greeting line is not a keyword; SIZE without a number. */
	caps_of("PIPELINING\nSIZE\nPIPELININGX\n8BITMIMEx", &caps);
	CHECK(caps.ext == MC_SMTP_CLIENT_EXT_SIZE);
	CHECK(caps.size_max == 0);
	caps_of("mx", &caps);
	CHECK(caps.ext == 0);
	caps_of("mx\nSIZE 99999999999999999999999", &caps);
	CHECK(caps.size_max == 0);
	caps_of("mx\nSIZE 0", &caps);
	CHECK(caps.size_max == 0 && (caps.ext & MC_SMTP_CLIENT_EXT_SIZE));

	/* Mechanisms are cut to fit, never overflow. */
	for (int i = 0; i < 100; i++)
		strcat(many, " SCRAM-SHA-1");
	caps_of(many, &caps);
	CHECK(strlen(caps.auth) < sizeof(caps.auth));
	CHECK(strncmp(caps.auth, "SCRAM-SHA-1 SCRAM-SHA-1", 23) == 0);
}

/* ---- Dot-stuffing ------------------------------------------------------ */

struct sink {
	char *data;
	size_t len, cap;
};

static void
sink_cb(void *ctx, const void *data, size_t len)
{
	struct sink *s = ctx;

	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->data = mc_realloc(s->data, s->cap);
	}
	memcpy(s->data + s->len, data, len);
	s->len += len;
}

/* Stuff content in chunks of `chunk` (0: whole); return the wire form. */
static char *
stuff_all(const char *in, size_t len, size_t chunk, size_t *len_r)
{
	struct mc_smtp_client_stuffer st = {0};
	char *out = mc_malloc(2 * len + MC_SMTP_CLIENT_STUFF_END + 1);
	size_t off = 0, n = 0, used;

	while (off < len) {
		size_t take =
		        chunk == 0 || len - off < chunk ? len - off : chunk;

		n += mc_smtp_client_stuff(&st, in + off, take, &used, out + n,
		                          2 * take);
		CHECK(used == take);
		off += used;
	}
	n += mc_smtp_client_stuff_end(&st, out + n);
	*len_r = n;
	return out;
}

/* What the server must store: bare LF as CRLF, a final line end. */
static char *
expected_content(const char *in, size_t len, size_t *len_r)
{
	char *out = mc_malloc(2 * len + 3);
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[n++] = '\r';
		out[n++] = in[i];
	}
	if (n > 0 && out[n - 1] != '\n') {
		if (out[n - 1] != '\r')
			out[n++] = '\r';
		out[n++] = '\n';
	}
	*len_r = n;
	return out;
}

/* Stuffed wire form -> the server's DATA reader -> content. */
static bool
round_trip(const char *in, size_t len, size_t chunk)
{
	struct mc_smtp_limits lim;
	struct mc_smtp_data d;
	struct sink s = {0};
	size_t wlen, elen, consumed;
	char *wire = stuff_all(in, len, chunk, &wlen);
	char *exp = expected_content(in, len, &elen);
	bool ok;

	mc_smtp_limits_default(&lim);
	mc_smtp_data_init(&d, &lim, sink_cb, &s);
	ok = mc_smtp_data_parse(&d, wire, wlen, &consumed) == 1 &&
	     consumed == wlen && s.len == elen &&
	     (elen == 0 || memcmp(s.data, exp, elen) == 0);
	free(wire);
	free(exp);
	free(s.data);
	return ok;
}

static void
test_stuff_cases(void)
{
	static const struct {
		const char *in, *wire;
	} cases[] = {
	        {"", ".\r\n"},
	        {"a\r\n", "a\r\n.\r\n"},
	        {"a", "a\r\n.\r\n"},
	        {".", "..\r\n.\r\n"},
	        {".a\r\n..b\r\n.\r\nc", "..a\r\n...b\r\n..\r\nc\r\n.\r\n"},
	        {"a\nb\n", "a\r\nb\r\n.\r\n"},
	        {"a\n.b", "a\r\n..b\r\n.\r\n"},
	        {"a\r", "a\r\n.\r\n"},
	        {"x\r.y\r\n", "x\r.y\r\n.\r\n"},
	        {"\r\n.\r\n", "\r\n..\r\n.\r\n"},
	        {"a\r\r\n", "a\r\r\n.\r\n"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in), n;

		for (size_t chunk = 0; chunk < 3; chunk++) {
			char *w = stuff_all(cases[i].in, len, chunk, &n);

			CHECK(n == strlen(cases[i].wire) &&
			      memcmp(w, cases[i].wire, n) == 0);
			free(w);
		}
		CHECK(round_trip(cases[i].in, len, 0));
		CHECK(round_trip(cases[i].in, len, 1));
	}
}

static void
test_stuff_partial(void)
{
	struct mc_smtp_client_stuffer st = {0};
	char out[4];
	size_t used, n;

	/* Output space bounds consumption: two bytes per input byte. */
	n = mc_smtp_client_stuff(&st, ".\n..", 4, &used, out, sizeof(out));
	CHECK(n == 4 && used == 2 && memcmp(out, "..\r\n", 4) == 0);
	n = mc_smtp_client_stuff(&st, "..", 2, &used, out, 3);
	CHECK(n == 2 && used == 1 && memcmp(out, "..", 2) == 0);
	n = mc_smtp_client_stuff(&st, ".", 1, &used, out, 1);
	CHECK(n == 0 && used == 0);
}

static void
test_stuff_random(void)
{
	static const char alphabet[] = ".\r\nab.\n";
	char in[300];
	int bad = 0;

	srand(7);
	for (int t = 0; t < 3000; t++) {
		size_t len = (size_t)rand() % sizeof(in);

		for (size_t i = 0; i < len; i++)
			in[i] = rand() % 50 == 0
			                ? (char)(rand() % 256)
			                : alphabet[rand() %
			                           (sizeof(alphabet) - 1)];
		if (!round_trip(in, len, 1 + (size_t)rand() % 17))
			bad++;
	}
	CHECK(bad == 0);
}

int
main(void)
{
	test_reply_cases();
	test_reply_sequence();
	test_reply_limits();
	test_oneline();
	test_caps();
	test_stuff_cases();
	test_stuff_partial();
	test_stuff_random();
	return mc_test_done();
}
