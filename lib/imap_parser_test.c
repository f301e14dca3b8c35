/* Unit tests for the IMAP command reader: a table of client sessions, each
 * run through the reader the way the server drives it and turned into a
 * transcript (one line per command, error and continuation request). Every
 * session is fed whole, one byte at a time and in random chunk sizes, and
 * must give the same transcript each way; continuation requests must come
 * exactly where a synchronising literal waits for them. Then the sequence
 * set and number helpers. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#include "imap_parser.h"
#include "mem.h"
#include "test.h"

struct str {
	char *p;
	size_t len, cap;
};

static void
str_addn(struct str *s, const void *data, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->p = mc_realloc(s->p, s->cap);
	}
	memcpy(s->p + s->len, data, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void
str_add(struct str *s, const char *text)
{
	str_addn(s, text, strlen(text));
}

static void
str_escaped(struct str *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		char hex[8];

		if (c < 32 || c >= 127) {
			snprintf(hex, sizeof(hex), "\\x%02x", c);
			str_add(s, hex);
		} else {
			str_addn(s, &p[i], 1);
		}
	}
}

static const char *const type_names[] = {
        "?", "A", "Q", "L", "L8", "NIL", "F", "(",
};

/* Tokens as a line: A:FETCH Q:"x" L+:{3}abc (A:x A:y). */
static void
describe_tokens(struct str *s, const struct mc_imap_token *t, unsigned n)
{
	unsigned close[64], depth = 0;

	for (unsigned i = 0; i < n; i++) {
		char num[32];

		str_add(s, " ");
		if (t[i].type == MC_IMAP_LIST) {
			str_add(s, "(");
			close[depth++] = i + t[i].count;
			snprintf(num, sizeof(num), "%u:", t[i].items);
			str_add(s, num);
		} else {
			str_add(s, type_names[t[i].type]);
			if (t[i].type == MC_IMAP_LITERAL ||
			    t[i].type == MC_IMAP_LITERAL8)
				str_add(s, t[i].sync ? "" : "+");
			if (t[i].wildcard)
				str_add(s, "*");
			if (t[i].bracket)
				str_add(s, "[");
			str_add(s, ":");
			str_escaped(s, t[i].text, t[i].len);
			CHECK(t[i].text[t[i].len] == '\0');
		}
		while (depth > 0 && close[depth - 1] == i) {
			str_add(s, ")");
			depth--;
		}
	}
}

static void
describe_cmd(struct str *s, const struct mc_imap_command *c)
{
	str_add(s, c->tag);
	str_add(s, c->uid ? " UID " : " ");
	str_add(s, c->name);
	describe_tokens(s, c->args, c->nargs);
	str_add(s, "\n");
}

static void
describe_err(struct str *s, const struct mc_imap_command *c,
             const struct mc_imap_reply *reply)
{
	str_add(s, c->tag ? c->tag : "*");
	str_add(s, " ");
	str_add(s, reply->status);
	if (reply->code) {
		str_add(s, " [");
		str_add(s, reply->code);
		str_add(s, "]");
	}
	str_add(s, " ");
	str_add(s, reply->text);
	str_add(s, "\n");
}

static uint32_t rng = 12345;

static size_t
rnd(size_t n)
{
	rng = rng * 1103515245u + 12345u;
	return (rng >> 16) % n;
}

/* Where a client sending in[off..] must wait for a continuation: just
 * after the next line ending in a synchronising "{n}". */
static size_t
next_wait(const char *in, size_t len, size_t off)
{
	for (size_t i = off >= 2 ? off - 2 : 0; i + 2 < len; i++) {
		size_t j = i;

		if (i + 3 <= off || in[i] != '}' || in[i + 1] != '\r' ||
		    in[i + 2] != '\n')
			continue;
		while (j > 0 && in[j - 1] >= '0' && in[j - 1] <= '9')
			j--;
		if (j < i && j > 0 && in[j - 1] == '{')
			return i + 3;
	}
	return len;
}

/* Run input through a reader in chunks (0: whole, 1: bytes, 2: random);
 * "+" lines mark continuation requests. */
static char *
run(const char *in, size_t len, const struct mc_imap_limits *lim, int mode)
{
	struct mc_imap_reader r;
	struct str s = {0};
	size_t off = 0;

	mc_imap_reader_init(&r, lim);
	str_add(&s, "");
	for (;;) {
		struct mc_imap_command cmd;
		const struct mc_imap_reply *reply;
		int ret;

		while ((ret = mc_imap_reader_next(&r, &cmd, &reply)) != 0) {
			if (ret > 0)
				describe_cmd(&s, &cmd);
			else
				describe_err(&s, &cmd, reply);
		}
		if (mc_imap_reader_continuation(&r))
			str_add(&s, "+\n");
		if (off == len)
			break;
		size_t n = mode == 0 ? len - off : mode == 1 ? 1 : 1 + rnd(7);
		size_t wait = next_wait(in, len, off);

		/* Like a client: not past a {n} line before the "+". */
		if (n > wait - off)
			n = wait - off;
		off += mc_imap_reader_feed(&r, in + off, n);
	}
	mc_imap_reader_fini(&r);
	return s.p;
}

struct session {
	const char *in;
	const char *out;
	size_t in_len; /* 0: strlen */
	int limits;    /* 0 default, 1 small, 2 small {n+} only */
};

/* Most rows leave in_len and limits at 0. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct session sessions[] = {
        {"a1 NOOP\r\n", "a1 NOOP\n"},
        {"a2 login joe \"se\\\"cr\\\\et\"\r\n",
         "a2 LOGIN A:joe Q:se\"cr\\et\n"},
        {"a3 LOGIN {3}\r\njoe {6}\r\nsecret\r\n",
         "+\n+\na3 LOGIN L:joe L:secret\n"},
        {"a4 SELECT \"INBOX\"\r\n", "a4 SELECT Q:INBOX\n"},
        {"a5 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS "
         "(SUBJECT)]<0.100>)\r\n",
         "a5 UID FETCH A*:1:* (2: A:FLAGS A[:BODY.PEEK[HEADER.FIELDS "
         "(SUBJECT)]<0.100>)\n"},
        {"a6 SEARCH OR (FROM \"x\" NOT SEEN) (SUBJECT y) UNDELETED\r\n",
         "a6 SEARCH A:OR (4: A:FROM Q:x A:NOT A:SEEN) (2: A:SUBJECT A:y) "
         "A:UNDELETED\n"},
        {"a7 APPEND INBOX (\\Seen $Junk) \"21-Nov-2026 14:00:00 +0000\" "
         "{5}\r\nhello\r\n",
         "+\na7 APPEND A:INBOX (2: F:\\Seen A:$Junk) Q:21-Nov-2026 14:00:00 "
         "+0000 L:hello\n"},
        {"a8 APPEND INBOX {5+}\r\nhello\r\na9 NOOP\r\n",
         "a8 APPEND A:INBOX L+:hello\na9 NOOP\n"},
        {"b1 STORE 1:3 +FLAGS.SILENT (\\Seen)\r\n",
         "b1 STORE A:1:3 A:+FLAGS.SILENT (1: F:\\Seen)\n"},
        {"b2 LIST \"\" %/*\r\n", "b2 LIST Q: A*:%/*\n"},
        {"b3 fetch 1 (body[] binary.peek[1]<0.5>) nil\r\n",
         "b3 FETCH A:1 (2: A[:body[] A[:binary.peek[1]<0.5>) NIL:nil\n"},
        {"b4 APPEND x ~{3}\r\na\0b\r\n", "+\nb4 APPEND A:x L8:a\\x00b\n", 23},
        {"b5 CHECK (((a)) ())\r\n", "b5 CHECK (2: (1: (1: A:a)) (0:))\n"},
        {"\r\n\r\nb6 NOOP\n", "b6 NOOP\n"},
        {"b7 LOGIN {0}\r\n {0+}\r\n\r\n", "+\nb7 LOGIN L: L+:\n"},
        {"b8 ID (\"name\" \"x{3}\")\r\n", "b8 ID (2: Q:name Q:x{3})\n"},
        /* hostile */
        {"c1 NOOP (a\r\nc2 NOOP a)\r\nc3 NOOP )\r\n",
         "c1 BAD Unbalanced parentheses\nc2 BAD Unbalanced parentheses\n"
         "c3 BAD Arguments must be separated by one space\n"},
        {"c4 LOGIN \"joe\r\nc5 LOGIN \"jo\\e\"\r\n",
         "c4 BAD Invalid quoted string\nc5 BAD Invalid quoted string\n"},
        {"c6 APPEND x {99999999999999999999}\r\nc7 NOOP\r\n",
         "c6 BAD Invalid literal size\nc7 NOOP\n"},
        {"c8 APPEND x {67108865}\r\nc9 NOOP\r\n",
         "c8 NO [TOOBIG] Literal too big\nc9 NOOP\n"},
        {"d1 APPEND x {20+}\r\n0123456789abcdefghij {3+}\r\nabc\r\n"
         "d3 NOOP\r\n",
         "d1 BAD [TOOBIG] Non-synchronizing literal too big\nd3 NOOP\n", 0, 1},
        {"d4 APPEND x {20}\r\nd5 NOOP\r\n",
         "d4 NO [TOOBIG] Literal too big\nd5 NOOP\n", 0, 1},
        {"NOOP\r\n \r\n* NOOP\r\nd6\r\nd7 \r\n+x NOOP\r\n",
         "NOOP BAD Missing or invalid command name\n"
         "* BAD Missing or invalid tag\n* BAD Missing or invalid tag\n"
         "d6 BAD Missing or invalid command name\n"
         "d7 BAD Missing or invalid command name\n"
         "* BAD Missing or invalid tag\n"},
        {"d8 NOOP a\0b\r\nd9 LOGIN a\0 {3}\r\ne1 NOOP\r\n",
         "d8 BAD NUL byte in command\nd9 BAD NUL byte in command\ne1 NOOP\n",
         40},
        {"e2 SELECT caf\xc3\xa9\r\ne3 SELECT \"caf\xc3\xa9\"\r\n",
         "e2 BAD Invalid characters in atom\ne3 SELECT Q:caf\\xc3\\xa9\n"},
        {"e4 NOOP a  b\r\ne5 NOOP a \r\ne6 NOOP \\\r\ne7 NOOP a\x01\r\n",
         "e4 BAD Arguments must be separated by one space\n"
         "e5 BAD Arguments must be separated by one space\n"
         "e6 BAD Invalid flag\ne7 BAD Invalid characters in atom\n"},
        {"e8 NOOP ((((((((((((((((((a))))))))))))))))))\r\ne9 NOOP\r\n",
         "e8 BAD Parentheses nested too deep\ne9 NOOP\n"},
        {"f1 APPEND x {3}\r\na\0b\r\nf2 UID\r\nf3 UID fetch\r\n",
         "+\nf1 BAD NUL byte in literal (use literal8)\nf2 UID\n"
         "f3 UID FETCH\n",
         44},
        {"f4 NOOP 0123456789012345678901234567890123456789012345678901234567"
         "89 {4+}\r\nabcd more {2}\r\nf5 NOOP\r\n",
         "f4 BAD [TOOBIG] Command line too long\nf5 NOOP\n", 0, 1},
        {"f6 NOOP {2+}\r\nab 0123456789012345678901234567890123456789012345678"
         "901234567890123456789 x\r\nf7 NOOP\r\n",
         "f6 BAD [TOOBIG] Command line too long\nf7 NOOP\n", 0, 1},
        {"f9 APPEND x {9+}\r\n123456789\r\ng1 NOOP ~x\r\n",
         "f9 BAD [TOOBIG] Non-synchronizing literal too big\n"
         "g1 NOOP A:~x\n",
         0, 2},
        {"f8 NOOP a b c d e f g h i\r\n", "f8 BAD Too many arguments\n", 0, 1},
};
#pragma GCC diagnostic pop

static void
test_sessions(void)
{
	struct mc_imap_limits def, small, minus;

	mc_imap_limits_default(&def);
	small = def;
	small.max_line = 64;
	small.max_literal = 16;
	small.max_nonsync = 8;
	small.max_command = 32;
	small.max_tokens = 8;
	minus = def;
	minus.max_nonsync = 8; /* as LITERAL- with 4096 */
	for (size_t i = 0; i < sizeof(sessions) / sizeof(sessions[0]); i++) {
		const struct session *t = &sessions[i];
		size_t len = t->in_len ? t->in_len : strlen(t->in);
		const struct mc_imap_limits *lim = t->limits == 0   ? &def
		                                   : t->limits == 1 ? &small
		                                                    : &minus;

		for (int mode = 0; mode < 3; mode++) {
			char *out = run(t->in, len, lim, mode);

			if (mode == 0 || strcmp(out, t->out) != 0) {
				if (strcmp(out, t->out) != 0)
					fprintf(stderr, "session %zu mode %d\n",
					        i, mode);
				CHECK_STR(out, t->out);
			}
			free(out);
		}
	}
}

static void
test_seqset(void)
{
	struct mc_imap_range r[4];
	const char *err = NULL;
	size_t n = 0;
	static const char *const bad[] = {
	        "",          "0",   "1,",    ",1", "1::2",       "1:",
	        ":2",        "a",   "1:0",   "01", "4294967295", "4294967296",
	        "1,2,3,4,5", "1 2", "*:*:1", "-1",
	};

	CHECK(mc_imap_seqset_parse("1:*,4,12:10", 11, r, 4, &n, &err) == 0);
	CHECK(n == 3 && r[0].lo == 1 && r[0].hi == MC_IMAP_SEQ_STAR);
	CHECK(r[1].lo == 4 && r[1].hi == 4 && r[2].lo == 10 && r[2].hi == 12);
	mc_imap_seqset_resolve(r, n, 7);
	CHECK(r[0].lo == 1 && r[0].hi == 7 && r[2].lo == 10 && r[2].hi == 12);
	CHECK(mc_imap_seqset_parse("*:5", 3, r, 4, &n, &err) == 0);
	mc_imap_seqset_resolve(r, n, 3);
	CHECK(n == 1 && r[0].lo == 3 && r[0].hi == 5);
	CHECK(mc_imap_seqset_parse("4294967294", 10, r, 4, &n, &err) == 0);
	CHECK(r[0].lo == 4294967294u);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		CHECK(mc_imap_seqset_parse(bad[i], strlen(bad[i]), r, 4, &n,
		                           &err) == -1 &&
		      err != NULL);
	}
	CHECK(mc_imap_seqset_parse("1,2,3,4,5", 9, r, 4, &n, &err) == -1);
	CHECK_STR(err, "Sequence set too long");
}

static void
test_numbers(void)
{
	uint32_t v32 = 0;
	uint64_t v64 = 0;

	CHECK(mc_imap_parse_u32("4294967295", 10, &v32) && v32 == UINT32_MAX);
	CHECK(!mc_imap_parse_u32("4294967296", 10, &v32));
	CHECK(!mc_imap_parse_u32("00000000001", 11, &v32));
	CHECK(!mc_imap_parse_u32("", 0, &v32) &&
	      !mc_imap_parse_u32("1a", 2, &v32));
	CHECK(mc_imap_parse_u64("18446744073709551615", 20, &v64) &&
	      v64 == UINT64_MAX);
	CHECK(!mc_imap_parse_u64("18446744073709551616", 20, &v64));
}

/* The buffer grows for a big literal and the reader keeps working after
 * the limits change (tighter before authentication). */
static void
test_big_literal(void)
{
	struct mc_imap_limits lim;
	struct mc_imap_reader r;
	struct mc_imap_command cmd;
	const struct mc_imap_reply *reply = NULL;
	static char data[300000];
	char head[64];

	mc_imap_limits_default(&lim);
	lim.max_literal = MC_IMAP_LITERAL_PREAUTH;
	mc_imap_reader_init(&r, &lim);
	snprintf(head, sizeof(head), "x1 APPEND INBOX {%zu}\r\n", sizeof(data));
	mc_imap_reader_feed(&r, head, strlen(head));
	CHECK(mc_imap_reader_next(&r, &cmd, &reply) == -1);
	CHECK(reply != NULL && strcmp(reply->code, "TOOBIG") == 0);
	CHECK_STR(cmd.tag, "x1");
	CHECK(!mc_imap_reader_continuation(&r));
	mc_imap_limits_default(&lim);
	mc_imap_reader_limits(&r, &lim);
	mc_imap_reader_feed(&r, head, strlen(head));
	CHECK(mc_imap_reader_next(&r, &cmd, &reply) == 0);
	CHECK(mc_imap_reader_continuation(&r));
	CHECK(!mc_imap_reader_continuation(&r));
	memset(data, 'x', sizeof(data));
	for (size_t off = 0; off < sizeof(data);) {
		off += mc_imap_reader_feed(&r, data + off, sizeof(data) - off);
		CHECK(mc_imap_reader_next(&r, &cmd, &reply) == 0);
	}
	mc_imap_reader_feed(&r, "\r\n", 2);
	CHECK(mc_imap_reader_next(&r, &cmd, &reply) == 1);
	CHECK(cmd.nargs == 2 && cmd.args[1].len == sizeof(data));
	CHECK(cmd.literal_octets == sizeof(data));
	CHECK(mc_imap_reader_next(&r, &cmd, &reply) == 0);
	mc_imap_reader_fini(&r);
}

/* A client pipelining more than the buffer holds is held back until the
 * server takes commands; nothing is lost. */
static void
test_backpressure(void)
{
	struct mc_imap_limits lim;
	struct mc_imap_reader r;
	struct mc_imap_command cmd;
	const struct mc_imap_reply *reply;
	char in[20000];
	size_t len = 0, off = 0, taken;
	unsigned seen = 0;

	for (unsigned i = 0; i < 1000; i++)
		len += (size_t)snprintf(in + len, sizeof(in) - len,
		                        "t%u NOOP\r\n", i);
	mc_imap_limits_default(&lim);
	mc_imap_reader_init(&r, &lim);
	taken = mc_imap_reader_feed(&r, in, len);
	CHECK(taken < len);
	off = taken;
	for (;;) {
		int ret;

		while ((ret = mc_imap_reader_next(&r, &cmd, &reply)) == 1) {
			char tag[16];

			snprintf(tag, sizeof(tag), "t%u", seen++);
			if (strcmp(cmd.tag, tag) != 0)
				CHECK_STR(cmd.tag, tag);
		}
		CHECK(ret == 0);
		if (off == len)
			break;
		off += mc_imap_reader_feed(&r, in + off, len - off);
	}
	CHECK(seen == 1000);
	CHECK(r.cap == 4096);
	mc_imap_reader_fini(&r);
}

int
main(void)
{
	test_sessions();
	test_seqset();
	test_numbers();
	test_big_literal();
	test_backpressure();
	return mc_test_done();
}
