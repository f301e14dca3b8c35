/* Tests for imf: header splitting and unfolding, address lists (RFC 5322
 * examples, real-world shapes, broken input), the ENVELOPE of messages as
 * Thunderbird, Gmail, Outlook and list servers write them (compared in
 * IMAP's own ENVELOPE notation), the exact JSON kept in Postgres and its
 * round trip, and hostile input against the limits. */
#include <stdlib.h>
#include <string.h>

#include "imf.h"
#include "mem.h"
#include "test.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- IMAP notation for comparisons ------------------------------------ */

static char out[1 << 16];
static size_t outlen;

static void
put(const char *s)
{
	size_t n = strlen(s);

	if (outlen + n >= sizeof(out))
		n = sizeof(out) - outlen - 1;
	memcpy(out + outlen, s, n);
	outlen += n;
	out[outlen] = '\0';
}

static void
put_nstr(const char *s)
{
	char c[2] = {0, 0};

	if (s == NULL) {
		put("NIL");
		return;
	}
	put("\"");
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			put("\\");
		c[0] = *s;
		put(c);
	}
	put("\"");
}

static void
put_list(const struct mc_imf_addr_list *l)
{
	if (l->count == 0) {
		put("NIL");
		return;
	}
	put("(");
	for (size_t i = 0; i < l->count; i++) {
		put("(");
		put_nstr(l->addrs[i].name);
		put(" ");
		put_nstr(l->addrs[i].adl);
		put(" ");
		put_nstr(l->addrs[i].mailbox);
		put(" ");
		put_nstr(l->addrs[i].host);
		put(")");
	}
	put(")");
}

static const char *
fmt_list(const struct mc_imf_addr_list *l)
{
	outlen = 0;
	out[0] = '\0';
	put_list(l);
	return out;
}

static const char *
fmt_env(const struct mc_imf_envelope *e)
{
	outlen = 0;
	put("(");
	put_nstr(e->date);
	put(" ");
	put_nstr(e->subject);
	put(" ");
	put_list(&e->from);
	put(" ");
	put_list(&e->sender);
	put(" ");
	put_list(&e->reply_to);
	put(" ");
	put_list(&e->to);
	put(" ");
	put_list(&e->cc);
	put(" ");
	put_list(&e->bcc);
	put(" ");
	put_nstr(e->in_reply_to);
	put(" ");
	put_nstr(e->message_id);
	put(")");
	return out;
}

/* ---- header block ----------------------------------------------------- */

static void
test_header_basic(void)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_imf_header h;
	const char *crlf = "A: 1\r\nB:  two \r\n\r\nbody\r\n";
	const char *lf = "A: 1\nB: 2\n\nbody\n";
	const char *fold = "Subject: a\r\n b\r\n\tc\r\nX: y\r\n\r\n";

	mc_imf_header_parse(&h, pool, crlf, strlen(crlf), NULL);
	CHECK(h.count == 2);
	CHECK(h.size == 18 && h.has_body && h.truncated == 0);
	CHECK_STR(h.fields[0].name, "A");
	CHECK_STR(h.fields[0].value, "1");
	CHECK(h.fields[0].offset == 0 && h.fields[0].size == 6);
	CHECK_STR(h.fields[1].value, "two");
	CHECK(h.fields[1].value_len == 3);
	CHECK(h.fields[1].offset == 6 && h.fields[1].size == 10);
	CHECK(mc_imf_header_find(&h, "b") == &h.fields[1]);
	CHECK(mc_imf_header_find(&h, "C") == NULL);

	mc_imf_header_parse(&h, pool, lf, strlen(lf), NULL);
	CHECK(h.count == 2 && h.size == 11 && h.has_body);
	CHECK_STR(h.fields[1].value, "2");

	mc_imf_header_parse(&h, pool, fold, strlen(fold), NULL);
	CHECK(h.count == 2);
	CHECK_STR(h.fields[0].value, "a b\tc");
	CHECK(h.fields[0].size == 20);
	CHECK_STR(h.fields[1].name, "X");
	CHECK(h.fields[1].offset == 20);
	mc_pool_free(&pool);
}

struct header_case {
	const char *what;
	const char *msg;
	size_t len; /* 0: strlen */
	size_t count, skipped, size;
	bool has_body;
	const char *name0, *value0; /* first field, or NULL */
};

static const struct header_case header_cases[] = {
	{"empty message", "", 0, 0, 0, 0, false, NULL, NULL},
	{"body only", "\r\nbody", 0, 0, 0, 2, true, NULL, NULL},
	{"LF body only", "\nbody", 0, 0, 0, 1, true, NULL, NULL},
	{"no blank line", "A: 1\r\nB: 2", 0, 2, 0, 10, false, "A", "1"},
	{"no final line end", "A: 1", 0, 1, 0, 4, false, "A", "1"},
	{"empty value", "A:\r\n\r\n", 0, 1, 0, 6, true, "A", ""},
	{"blank before colon", "Subject\t : spaced\r\n\r\n", 0, 1, 0, 21, true,
	 "Subject", "spaced"},
	{"no colon", "Bogus line\r\nA: 1\r\n\r\n", 0, 1, 1, 20, true, "A", "1"},
	{"mbox From line", "From a@b.test Mon Jun  3 10:00:00 2024\nA: 1\n\n", 0,
	 1, 1, 45, true, "A", "1"},
	{"leading continuation", " x\r\n y\r\nA: 1\r\n\r\n", 0, 1, 1, 16, true,
	 "A", "1"},
	{"8-bit name", "S\xc3\xbc" "bject: x\r\nA: 1\r\n\r\n", 0, 1, 1, 21, true,
	 "A", "1"},
	{"control in name", "A\x01: x\r\nB: 1\r\n\r\n", 0, 1, 1, 15, true, "B",
	 "1"},
	{"empty name", ": x\r\nB: 1\r\n\r\n", 0, 1, 1, 13, true, "B", "1"},
	{"8-bit value", "A: R\xe9union\r\n\r\n", 0, 1, 0, 14, true, "A",
	 "R\xe9union"},
	{"NUL in value", "A: x\0y\r\n\r\n", 10, 1, 0, 10, true, "A", "x\x80y"},
	{"bare CR in value", "A: x\ry\r\n\r\n", 0, 1, 0, 10, true, "A", "x\ry"},
	{"blank-only continuation", "A: 1\r\n \r\nB: 2\r\n\r\n", 0, 2, 0, 17,
	 true, "A", "1"},
	{"bare CR line ends", "A: 1\rB: 2\r\r", 0, 1, 0, 11, false, "A",
	 "1\rB: 2\r\r"},
	{"CR CR LF", "A: 1\r\r\n\r\n", 0, 1, 0, 9, true, "A", "1\r"},
	{"fold with LF only", "A: 1\n 2\n\n", 0, 1, 0, 9, true, "A", "1 2"},
	{"blank line is LF after CRLF lines", "A: 1\r\n\nB: 2\r\n\r\n", 0, 1, 0,
	 7, true, "A", "1"},
};

static void
test_header_cases(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(header_cases); i++) {
		const struct header_case *c = &header_cases[i];
		struct mc_pool *pool = mc_pool_new();
		size_t len = c->len ? c->len : strlen(c->msg);
		struct mc_imf_header h;
		bool ok;

		mc_imf_header_parse(&h, pool, c->msg, len, NULL);
		ok = h.count == c->count && h.skipped == c->skipped &&
		     h.size == c->size && h.has_body == c->has_body &&
		     h.truncated == 0;
		if (ok && c->name0 != NULL)
			ok = strcmp(h.fields[0].name, c->name0) == 0 &&
			     strcmp(h.fields[0].value, c->value0) == 0;
		if (!ok)
			fprintf(stderr, "header case '%s': count %zu skipped %zu "
			        "size %zu body %d trunc %u\n", c->what, h.count,
			        h.skipped, h.size, h.has_body, h.truncated);
		CHECK(ok);
		mc_pool_free(&pool);
	}
}

static void
test_header_limits(void)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_imf_limits lim;
	struct mc_imf_header h;
	size_t n = 100000, len;
	char *msg = mc_malloc(n + 64), *p;

	/* A 100,000-octet Subject: cut at 64 KiB, the next field kept. */
	len = (size_t)sprintf(msg, "Subject: ");
	memset(msg + len, 'x', n);
	len += n;
	len += (size_t)sprintf(msg + len, "\r\nTo: a@b.test\r\n\r\n");
	mc_imf_header_parse(&h, pool, msg, len, NULL);
	CHECK(h.count == 2 && h.has_body && h.size == len);
	CHECK(h.truncated == MC_IMF_TRUNC_FIELD);
	CHECK(h.fields[0].value_len == MC_IMF_MAX_FIELD_DEFAULT - 9);
	CHECK(h.fields[0].size == 9 + n + 2);
	CHECK_STR(h.fields[1].value, "a@b.test");
	free(msg);

	/* 10,000 fields: 1000 kept, the end of the header still found. */
	msg = mc_malloc(10000 * 16 + 16);
	for (len = 0, n = 0; n < 10000; n++)
		len += (size_t)sprintf(msg + len, "X-F%zu: %zu\r\n", n, n);
	len += (size_t)sprintf(msg + len, "\r\nbody");
	mc_imf_header_parse(&h, pool, msg, len, NULL);
	CHECK(h.count == MC_IMF_MAX_FIELDS_DEFAULT);
	CHECK(h.truncated == MC_IMF_TRUNC_FIELDS);
	CHECK(h.has_body && h.size == len - 4);
	CHECK_STR(h.fields[999].name, "X-F999");

	/* The same under a small max_header: the last complete line that
	 * fits is where the scan stops. */
	memset(&lim, 0, sizeof(lim));
	lim.max_header = 30; /* "X-F0: 0\r\n" is 9, then X-F1, X-F2 */
	mc_imf_header_parse(&h, pool, msg, len, &lim);
	CHECK(h.count == 3 && h.size == 27 && !h.has_body);
	CHECK(h.truncated == MC_IMF_TRUNC_HEADER);
	/* A limit landing right before the empty line: not found. */
	lim.max_header = 9;
	mc_imf_header_parse(&h, pool, "A: 1234\r\n\r\n", 11, &lim);
	CHECK(h.count == 1 && h.size == 9 && !h.has_body);
	CHECK(h.truncated == MC_IMF_TRUNC_HEADER);
	lim.max_header = 11;
	mc_imf_header_parse(&h, pool, "A: 1234\r\n\r\n", 11, &lim);
	CHECK(h.count == 1 && h.size == 11 && h.has_body && h.truncated == 0);

	/* max_fields with non-field lines after the last kept field. */
	lim.max_header = 0;
	lim.max_fields = 1;
	mc_imf_header_parse(&h, pool, "A: 1\r\nbogus\r\n\r\n", 15, &lim);
	CHECK(h.count == 1 && h.skipped == 1 && h.truncated == 0);
	mc_imf_header_parse(&h, pool, "A: 1\r\nB: 2\r\n\r\n", 14, &lim);
	CHECK(h.count == 1 && h.truncated == MC_IMF_TRUNC_FIELDS);

	/* Only CRs: one long line, no field, no crash. */
	p = mc_malloc(200000);
	memset(p, '\r', 200000);
	mc_imf_header_parse(&h, pool, p, 200000, NULL);
	CHECK(h.count == 0 && h.skipped == 1 && h.size == 200000);
	CHECK(!h.has_body && h.truncated == 0);
	/* Only LFs: an empty header. */
	memset(p, '\n', 200000);
	mc_imf_header_parse(&h, pool, p, 200000, NULL);
	CHECK(h.count == 0 && h.size == 1 && h.has_body);
	/* Only NULs: one line that is not a field. */
	memset(p, 0, 200000);
	mc_imf_header_parse(&h, pool, p, 200000, NULL);
	CHECK(h.count == 0 && h.skipped == 1);
	/* More than max_header without a line end. */
	p = mc_realloc(p, 2 * 1024 * 1024);
	memset(p, 'a', 2 * 1024 * 1024);
	memcpy(p, "A: ", 3);
	mc_imf_header_parse(&h, pool, p, 2 * 1024 * 1024, NULL);
	CHECK(h.count == 0 && h.size == 0);
	CHECK(h.truncated == MC_IMF_TRUNC_HEADER);
	free(p);
	free(msg);
	mc_pool_free(&pool);
}

/* ---- address lists ---------------------------------------------------- */

struct addr_case {
	const char *in;
	const char *want; /* IMAP notation */
};

static const struct addr_case addr_cases[] = {
	{"John Doe <john@example.com>",
	 "((\"John Doe\" NIL \"john\" \"example.com\"))"},
	{"john@example.com", "((NIL NIL \"john\" \"example.com\"))"},
	{"<john@example.com>", "((NIL NIL \"john\" \"example.com\"))"},
	{"\"Doe, John\" <john@example.com>, jane@example.org",
	 "((\"Doe, John\" NIL \"john\" \"example.com\")"
	 "(NIL NIL \"jane\" \"example.org\"))"},
	{"\"John \\\"JJ\\\" Doe\" <jj@x.test>",
	 "((\"John \\\"JJ\\\" Doe\" NIL \"jj\" \"x.test\"))"},
	{"\"a\\\\b\" <ab@x.test>", "((\"a\\\\b\" NIL \"ab\" \"x.test\"))"},
	{"John Q. Public <jqp@x.test>",
	 "((\"John Q. Public\" NIL \"jqp\" \"x.test\"))"},
	{"John   (the man)  Doe <john@x.test>",
	 "((\"John Doe\" NIL \"john\" \"x.test\"))"},
	{"\"Müller, Jörg\" <j@x.test>",
	 "((\"Müller, Jörg\" NIL \"j\" \"x.test\"))"},
	{"=?UTF-8?B?SsO2cmc=?= <jorg@x.test>",
	 "((\"=?UTF-8?B?SsO2cmc=?=\" NIL \"jorg\" \"x.test\"))"},
	{"=?utf-8?q?J=C3=B6rg?=\r\n =?utf-8?q?_M?= <j@x.test>",
	 "((\"=?utf-8?q?J=C3=B6rg?= =?utf-8?q?_M?=\" NIL \"j\" \"x.test\"))"},
	{"\"=?utf-8?q?Doe=2C_J?=\" <j@x.test>",
	 "((\"=?utf-8?q?Doe=2C_J?=\" NIL \"j\" \"x.test\"))"},
	/* groups */
	{"undisclosed-recipients:;",
	 "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))"},
	{"team: a@x.test, B <b@x.test>; c@y.test",
	 "((NIL NIL \"team\" NIL)(NIL NIL \"a\" \"x.test\")"
	 "(\"B\" NIL \"b\" \"x.test\")(NIL NIL NIL NIL)"
	 "(NIL NIL \"c\" \"y.test\"))"},
	{"\"The Team\": a@x.test",
	 "((NIL NIL \"The Team\" NIL)(NIL NIL \"a\" \"x.test\")"
	 "(NIL NIL NIL NIL))"},
	/* RFC 5322 A.1.3 */
	{"A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	 "((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")"
	 "(NIL NIL \"joe\" \"where.test\")(\"John\" NIL \"jdoe\" \"one.test\")"
	 "(NIL NIL NIL NIL))"},
	/* RFC 5322 A.5: comments everywhere */
	{"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
	 "((\"Pete\" NIL \"pete\" \"silly.test\"))"},
	{"A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public."
	 "example>,\r\n         joe@example.org,\r\n  John <jdoe@one.test> (my "
	 "dear friend); (the end of the group)",
	 "((NIL NIL \"A Group\" NIL)"
	 "(\"Chris Jones\" NIL \"c\" \"public.example\")"
	 "(NIL NIL \"joe\" \"example.org\")(\"John\" NIL \"jdoe\" \"one.test\")"
	 "(NIL NIL NIL NIL))"},
	/* RFC 5322 A.6.1: obsolete route, empty members, CFWS around dots */
	{"Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example",
	 "((\"Mary Smith\" \"@node.test\" \"mary\" \"example.net\")"
	 "(NIL NIL \"jdoe\" \"test.example\"))"},
	{"<@relay1.test,@relay2.test:user@dest.test>",
	 "((NIL \"@relay1.test,@relay2.test\" \"user\" \"dest.test\"))"},
	{"<@a.test,,@b.test:u@c.test>",
	 "((NIL \"@a.test,,@b.test\" \"u\" \"c.test\"))"},
	{"john (comment (nested)) @ example . com (trailing)",
	 "((NIL NIL \"john\" \"example.com\"))"},
	{"john . doe@example.com", "((NIL NIL \"john.doe\" \"example.com\"))"},
	/* local parts and domains */
	{"\"john doe\"@example.com",
	 "((NIL NIL \"\\\"john doe\\\"\" \"example.com\"))"},
	{"\"a@b\"@example.com", "((NIL NIL \"\\\"a@b\\\"\" \"example.com\"))"},
	{"user@[192.168.0.1]", "((NIL NIL \"user\" \"[192.168.0.1]\"))"},
	{"Admin <root@[IPv6:2001:db8::1]>",
	 "((\"Admin\" NIL \"root\" \"[IPv6:2001:db8::1]\"))"},
	{"user@[ 10.0.0.1 ]", "((NIL NIL \"user\" \"[ 10.0.0.1 ]\"))"},
	{"jörg@bücher.example", "((NIL NIL \"jörg\" \"bücher.example\"))"},
	/* empty and degenerate */
	{"", "NIL"},
	{"   ", "NIL"},
	{", ,,", "NIL"},
	{"<>", "NIL"},
	{"(only a comment)", "NIL"},
	{"\"\" <a@b.test>", "((NIL NIL \"a\" \"b.test\"))"},
	{"Foo <>", "((\"Foo\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))"},
	{"<@a.test>", "((NIL NIL \"MISSING_MAILBOX\" \"a.test\"))"},
	{"@a.test", "((NIL NIL \"MISSING_MAILBOX\" \"a.test\"))"},
	{"john@", "((NIL NIL \"john\" \"MISSING_DOMAIN\"))"},
	{"root", "((NIL NIL \"root\" \"MISSING_DOMAIN\"))"},
	{"John Doe", "((\"John Doe\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))"},
	{"<john>", "((NIL NIL \"john\" \"MISSING_DOMAIN\"))"},
	{"John Doe john@x.test", "((\"John Doe\" NIL \"john\" \"x.test\"))"},
	/* broken */
	{"John <john@x.test", "((\"John\" NIL \"john\" \"x.test\"))"},
	{"John <john@x.test, Jane <jane@x.test>",
	 "((\"John\" NIL \"john\" \"x.test\")(\"Jane\" NIL \"jane\" \"x.test\"))"},
	{"<<john@x.test>>", "((NIL NIL \"john\" \"x.test\"))"},
	{"john@x.test>, b@c.test",
	 "((NIL NIL \"john\" \"x.test\")(NIL NIL \"b\" \"c.test\"))"},
	{">>> a@b.test", "NIL"},
	{"John <john@x.test> trailing junk, b@c.test",
	 "((\"John\" NIL \"john\" \"x.test\")(NIL NIL \"b\" \"c.test\"))"},
	{"a@b.test c@d.test", "((NIL NIL \"a\" \"b.test\"))"},
	{"a@b.test (unterminated comment, c@d.test",
	 "((NIL NIL \"a\" \"b.test\"))"},
	{"\"unterminated <a@b.test>",
	 "((NIL NIL \"\\\"unterminated <a@b.test>\" \"MISSING_DOMAIN\"))"},
	{"Name <a@[1.2.3.4", "((\"Name\" NIL \"a\" \"[1.2.3.4\"))"},
	{"group: a@b.test", "((NIL NIL \"group\" NIL)(NIL NIL \"a\" \"b.test\")"
	                    "(NIL NIL NIL NIL))"},
	{"a@b.test; c@d.test",
	 "((NIL NIL \"a\" \"b.test\")(NIL NIL \"c\" \"d.test\"))"},
	{"g1: a@b.test; ; x@y.test",
	 "((NIL NIL \"g1\" NIL)(NIL NIL \"a\" \"b.test\")(NIL NIL NIL NIL)"
	 "(NIL NIL \"x\" \"y.test\"))"},
	{"g1: g2: a@b.test;", "((NIL NIL \"g1\" NIL)"
	                      "(NIL NIL \"g2\" \"MISSING_DOMAIN\")"
	                      "(NIL NIL NIL NIL))"},
	{";;;>>>,,,<<<", "NIL"},
	{"\\\\\\", "((NIL NIL \"\\\\\\\\\\\\\" \"MISSING_DOMAIN\"))"},
	{"a@b.test\r\n", "((NIL NIL \"a\" \"b.test\"))"},
};

static void
test_addr_cases(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(addr_cases); i++) {
		const struct addr_case *c = &addr_cases[i];
		struct mc_pool *pool = mc_pool_new();
		struct mc_imf_addr_list l;

		mc_imf_addr_parse(&l, pool, c->in, strlen(c->in), 0);
		if (strcmp(fmt_list(&l), c->want) != 0)
			fprintf(stderr, "address case %zu: %s\n", i, c->in);
		CHECK_STR(fmt_list(&l), c->want);
		CHECK(!l.truncated);
		mc_pool_free(&pool);
	}
}

static void
test_addr_flags(void)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_imf_addr_list l;
	const char *s;

	s = "John <john@x.test";
	mc_imf_addr_parse(&l, pool, s, strlen(s), 0);
	CHECK(l.count == 1 && l.addrs[0].invalid);
	s = "John <john@x.test>";
	mc_imf_addr_parse(&l, pool, s, strlen(s), 0);
	CHECK(l.count == 1 && !l.addrs[0].invalid);
	s = "root";
	mc_imf_addr_parse(&l, pool, s, strlen(s), 0);
	CHECK(l.count == 1 && l.addrs[0].invalid);

	/* The limit, in a list and inside a group (closed anyway). */
	s = "a@b.test, c@d.test, e@f.test, g@h.test";
	mc_imf_addr_parse(&l, pool, s, strlen(s), 3);
	CHECK(l.count == 3 && l.truncated);
	CHECK_STR(l.addrs[2].mailbox, "e");
	mc_imf_addr_parse(&l, pool, s, strlen(s), 4);
	CHECK(l.count == 4 && !l.truncated);
	s = "g: a@b.test, c@d.test, e@f.test;";
	mc_imf_addr_parse(&l, pool, s, strlen(s), 2);
	CHECK_STR(fmt_list(&l), "((NIL NIL \"g\" NIL)(NIL NIL \"a\" \"b.test\")"
	                        "(NIL NIL NIL NIL))");
	CHECK(l.truncated);
	mc_imf_addr_parse(&l, pool, s, strlen(s), 1);
	CHECK(l.count == 1 || l.count == 2);
	CHECK(l.addrs[l.count - 1].mailbox == NULL); /* ends closed */

	/* A NUL inside a value passed directly. */
	mc_imf_addr_parse(&l, pool, "a\0b@c.test", 10, 0);
	CHECK(l.count == 1 && strcmp(l.addrs[0].mailbox, "a\x80" "b") == 0);
	mc_pool_free(&pool);
}

/* ---- envelopes -------------------------------------------------------- */

struct env_case {
	const char *what;
	const char *msg;
	const char *want;
};

static const struct env_case env_cases[] = {
	{"Thunderbird",
	 "Message-ID: <5f3c1d2e-1111-2222-3333-444455556666@example.com>\r\n"
	 "Date: Mon, 3 Jun 2024 10:15:42 +0200\r\n"
	 "MIME-Version: 1.0\r\n"
	 "User-Agent: Mozilla Thunderbird\r\n"
	 "Content-Language: en-US\r\n"
	 "To: Bob Example <bob@example.org>\r\n"
	 "From: Alice Example <alice@example.com>\r\n"
	 "Subject: Meeting notes\r\n"
	 "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
	 "Content-Transfer-Encoding: 7bit\r\n"
	 "\r\n"
	 "Hi Bob,\r\n",
	 "(\"Mon, 3 Jun 2024 10:15:42 +0200\" \"Meeting notes\" "
	 "((\"Alice Example\" NIL \"alice\" \"example.com\")) "
	 "((\"Alice Example\" NIL \"alice\" \"example.com\")) "
	 "((\"Alice Example\" NIL \"alice\" \"example.com\")) "
	 "((\"Bob Example\" NIL \"bob\" \"example.org\")) NIL NIL NIL "
	 "\"<5f3c1d2e-1111-2222-3333-444455556666@example.com>\")"},
	{"Gmail reply",
	 "Received: by mail-lf1-f41.google.com with SMTP id 2adb3069b0e04-52b\r\n"
	 "        for <bob@example.org>; Tue, 04 Jun 2024 01:02:03 -0700 (PDT)\r\n"
	 "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
	 "        d=gmail.com; s=20230601; t=1717488123; x=1718092923;\r\n"
	 "        h=to:subject:message-id:date:from:in-reply-to:references\r\n"
	 "        bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
	 "        b=abcdefghijklmnopqrstuvwxyz0123456789\r\n"
	 "MIME-Version: 1.0\r\n"
	 "References: <5f3c1d2e-1111-2222-3333-444455556666@example.com>\r\n"
	 "In-Reply-To: <5f3c1d2e-1111-2222-3333-444455556666@example.com>\r\n"
	 "From: Carol Example <carol.example@gmail.com>\r\n"
	 "Date: Tue, 4 Jun 2024 10:02:01 +0200\r\n"
	 "Message-ID: <CAF=+xyz123-ABC_def@mail.gmail.com>\r\n"
	 "Subject: Re: Meeting notes\r\n"
	 "To: Alice Example <alice@example.com>\r\n"
	 "Cc: bob@example.org, \"Dan O'Brien\" <dan@example.net>\r\n"
	 "Content-Type: multipart/alternative; "
	 "boundary=\"000000000000a1b2c3d4e5f6\"\r\n"
	 "\r\n"
	 "--000000000000a1b2c3d4e5f6\r\n",
	 "(\"Tue, 4 Jun 2024 10:02:01 +0200\" \"Re: Meeting notes\" "
	 "((\"Carol Example\" NIL \"carol.example\" \"gmail.com\")) "
	 "((\"Carol Example\" NIL \"carol.example\" \"gmail.com\")) "
	 "((\"Carol Example\" NIL \"carol.example\" \"gmail.com\")) "
	 "((\"Alice Example\" NIL \"alice\" \"example.com\")) "
	 "((NIL NIL \"bob\" \"example.org\")"
	 "(\"Dan O'Brien\" NIL \"dan\" \"example.net\")) NIL "
	 "\"<5f3c1d2e-1111-2222-3333-444455556666@example.com>\" "
	 "\"<CAF=+xyz123-ABC_def@mail.gmail.com>\")"},
	{"Outlook, encoded-words kept",
	 "From: =?iso-8859-1?Q?Ren=E9_Dupont?= <rene@outlook.example>\r\n"
	 "To: \"bob@example.org\" <bob@example.org>\r\n"
	 "Subject: =?iso-8859-1?Q?R=E9union_de_lundi?=\r\n"
	 "Thread-Topic: =?iso-8859-1?Q?R=E9union_de_lundi?=\r\n"
	 "Thread-Index: AdqzY2k0ZTRmNjc4OTBhYmNkZWY=\r\n"
	 "Date: Wed, 5 Jun 2024 08:00:00 +0000\r\n"
	 "Message-ID:\r\n"
	 " <AM0PR01MB1234ABCD5678EF90@AM0PR01MB1234.eurprd01.prod.outlook.com>\r\n"
	 "Accept-Language: fr-FR, en-US\r\n"
	 "Content-Language: fr-FR\r\n"
	 "X-MS-Has-Attach:\r\n"
	 "Content-Type: text/plain; charset=\"iso-8859-1\"\r\n"
	 "\r\n",
	 "(\"Wed, 5 Jun 2024 08:00:00 +0000\" "
	 "\"=?iso-8859-1?Q?R=E9union_de_lundi?=\" "
	 "((\"=?iso-8859-1?Q?Ren=E9_Dupont?=\" NIL \"rene\" \"outlook.example\")) "
	 "((\"=?iso-8859-1?Q?Ren=E9_Dupont?=\" NIL \"rene\" \"outlook.example\")) "
	 "((\"=?iso-8859-1?Q?Ren=E9_Dupont?=\" NIL \"rene\" \"outlook.example\")) "
	 "((\"bob@example.org\" NIL \"bob\" \"example.org\")) NIL NIL NIL "
	 "\"<AM0PR01MB1234ABCD5678EF90@AM0PR01MB1234.eurprd01.prod.outlook."
	 "com>\")"},
	{"mailing list, long folded subject, LF line ends",
	 "Return-Path: <dev-list-bounces@lists.example.org>\n"
	 "From: Eve Example via dev-list <dev-list@lists.example.org>\n"
	 "Reply-To: Eve Example <eve@example.net>\n"
	 "Sender: \"dev-list\" <dev-list-bounces@lists.example.org>\n"
	 "To: dev-list@lists.example.org\n"
	 "Subject: [dev-list] Re: [PATCH v3 07/12] net: add a rather long\n"
	 " subject line that the list software folded\n"
	 "\tacross three lines\n"
	 "List-Id: Development <dev-list.lists.example.org>\n"
	 "List-Unsubscribe: <mailto:dev-list-leave@lists.example.org>\n"
	 "Precedence: list\n"
	 "Date: Thu, 06 Jun 2024 12:00:00 -0400\n"
	 "Message-Id: <20240606160000.12345-1-eve@example.net>\n"
	 "In-Reply-To: <20240605.abc@example.net>\n"
	 "\n",
	 "(\"Thu, 06 Jun 2024 12:00:00 -0400\" "
	 "\"[dev-list] Re: [PATCH v3 07/12] net: add a rather long subject line "
	 "that the list software folded\tacross three lines\" "
	 "((\"Eve Example via dev-list\" NIL \"dev-list\" "
	 "\"lists.example.org\")) "
	 "((\"dev-list\" NIL \"dev-list-bounces\" \"lists.example.org\")) "
	 "((\"Eve Example\" NIL \"eve\" \"example.net\")) "
	 "((NIL NIL \"dev-list\" \"lists.example.org\")) NIL NIL "
	 "\"<20240605.abc@example.net>\" "
	 "\"<20240606160000.12345-1-eve@example.net>\")"},
	{"no From, groups, first field wins, empty Reply-To",
	 "To: undisclosed-recipients:;\r\n"
	 "Subject: first\r\n"
	 "Subject: second\r\n"
	 "Reply-To: \r\n"
	 "Bcc: Hidden <h@x.test>\r\n"
	 "\r\n",
	 "(NIL \"first\" NIL NIL NIL "
	 "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL "
	 "((\"Hidden\" NIL \"h\" \"x.test\")) NIL NIL)"},
	{"multiple From, explicit Sender, no body",
	 "From: a@x.test, B <b@y.test>\r\n"
	 "Sender: a@x.test\r\n"
	 "Subject:\r\n"
	 "Date: Fri, 7 Jun 2024 00:00:00 +0000",
	 "(\"Fri, 7 Jun 2024 00:00:00 +0000\" \"\" "
	 "((NIL NIL \"a\" \"x.test\")(\"B\" NIL \"b\" \"y.test\")) "
	 "((NIL NIL \"a\" \"x.test\")) "
	 "((NIL NIL \"a\" \"x.test\")(\"B\" NIL \"b\" \"y.test\")) "
	 "NIL NIL NIL NIL NIL)"},
	{"case-insensitive names, unparseable Sender defaults to From",
	 "FROM: x@y.test\r\nsender: ,,,\r\nsubject: hi\r\nCC: c@d.test\r\n\r\n",
	 "(NIL \"hi\" ((NIL NIL \"x\" \"y.test\")) ((NIL NIL \"x\" \"y.test\")) "
	 "((NIL NIL \"x\" \"y.test\")) NIL ((NIL NIL \"c\" \"d.test\")) NIL NIL "
	 "NIL)"},
	{"fields after the body are not header",
	 "Subject: s\r\n\r\nFrom: body@x.test\r\n",
	 "(NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL)"},
	{"empty message", "", "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"},
};

static void
test_env_cases(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(env_cases); i++) {
		const struct env_case *c = &env_cases[i];
		struct mc_pool *pool = mc_pool_new();
		struct mc_imf_envelope env;

		mc_imf_envelope_parse(&env, pool, c->msg, strlen(c->msg), NULL);
		if (strcmp(fmt_env(&env), c->want) != 0)
			fprintf(stderr, "envelope case '%s'\n", c->what);
		CHECK_STR(fmt_env(&env), c->want);
		CHECK(env.truncated == 0);
		mc_pool_free(&pool);
	}
}

/* ---- JSON ------------------------------------------------------------- */

struct json_case {
	const char *msg;
	const char *want;
	size_t len; /* 0: strlen */
};

static const struct json_case json_cases[] = {
	{"From: Alice Example <alice@example.com>\r\n"
	 "To: bob@example.org, team:;\r\n"
	 "Subject: Hello\r\n"
	 "Date: Mon, 3 Jun 2024 10:15:42 +0200\r\n"
	 "Message-ID: <1@example.com>\r\n"
	 "\r\nbody\r\n",
	 "{\"date\":\"Mon, 3 Jun 2024 10:15:42 +0200\",\"subject\":\"Hello\","
	 "\"from\":[[\"Alice Example\",null,\"alice\",\"example.com\"]],"
	 "\"sender\":[[\"Alice Example\",null,\"alice\",\"example.com\"]],"
	 "\"reply_to\":[[\"Alice Example\",null,\"alice\",\"example.com\"]],"
	 "\"to\":[[null,null,\"bob\",\"example.org\"],"
	 "[null,null,\"team\",null],[null,null,null,null]],"
	 "\"cc\":null,\"bcc\":null,\"in_reply_to\":null,"
	 "\"message_id\":\"<1@example.com>\"}", 0},
	{"", "{\"date\":null,\"subject\":null,\"from\":null,\"sender\":null,"
	     "\"reply_to\":null,\"to\":null,\"cc\":null,\"bcc\":null,"
	     "\"in_reply_to\":null,\"message_id\":null}", 0},
	/* Latin-1 bytes: base64; UTF-8 and control characters: strings. */
	{"Subject: R\xe9union\r\n"
	 "From: J\xf6rg <j@x.test>\r\n"
	 "To: \"J\xc3\xb6rg \\\"Q\\\"\" <j@x.test>\r\n"
	 "In-Reply-To: a\x01" "b\r\n"
	 "Message-ID: \xed\xa0\x80\r\n"
	 "\r\n",
	 "{\"date\":null,\"subject\":{\"base64\":\"Uul1bmlvbg==\"},"
	 "\"from\":[[{\"base64\":\"SvZyZw==\"},null,\"j\",\"x.test\"]],"
	 "\"sender\":[[{\"base64\":\"SvZyZw==\"},null,\"j\",\"x.test\"]],"
	 "\"reply_to\":[[{\"base64\":\"SvZyZw==\"},null,\"j\",\"x.test\"]],"
	 "\"to\":[[\"J\xc3\xb6rg \\\"Q\\\"\",null,\"j\",\"x.test\"]],"
	 "\"cc\":null,\"bcc\":null,\"in_reply_to\":\"a\\u0001b\","
	 "\"message_id\":{\"base64\":\"7aCA\"}}", 0},
	/* A NUL byte reaches JSON as 0x80, never as \u0000. */
	{"Subject: a\0b\r\n\r\n",
	 "{\"date\":null,\"subject\":{\"base64\":\"YYBi\"},\"from\":null,"
	 "\"sender\":null,\"reply_to\":null,\"to\":null,\"cc\":null,"
	 "\"bcc\":null,\"in_reply_to\":null,\"message_id\":null}", 16},
};

static void
test_json_cases(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(json_cases); i++) {
		const struct json_case *c = &json_cases[i];
		struct mc_pool *pool = mc_pool_new();
		struct mc_imf_envelope env, back;
		size_t len = c->len ? c->len : strlen(c->msg);
		const char *error = NULL;
		char *text, *first;
		json_t *j, *parsed;

		mc_imf_envelope_parse(&env, pool, c->msg, len, NULL);
		j = mc_imf_envelope_to_json(&env);
		text = json_dumps(j, JSON_COMPACT);
		CHECK_STR(text, c->want);
		/* Round trip through text, as through Postgres. */
		parsed = json_loads(text, 0, NULL);
		CHECK(parsed != NULL);
		CHECK(mc_imf_envelope_from_json(&back, pool, parsed, &error) == 0);
		first = mc_strdup(fmt_env(&env));
		CHECK_STR(fmt_env(&back), first);
		free(first);
		free(text);
		json_decref(parsed);
		json_decref(j);
		mc_pool_free(&pool);
	}
}

static void
test_json_errors(void)
{
	static const char *const bad[] = {
		"[]",
		"{\"subject\": 5}",
		"{\"subject\": {\"b64\": \"YQ==\"}}",
		"{\"subject\": {\"base64\": \"YQ=\"}}",
		"{\"subject\": {\"base64\": \"Y!==\"}}",
		"{\"from\": {}}",
		"{\"to\": [[null, null, \"a\"]]}",
		"{\"cc\": [\"a@b\"]}",
		"{\"bcc\": [[null, null, \"a\", 7]]}",
	};
	struct mc_pool *pool = mc_pool_new();
	struct mc_imf_envelope env;
	const char *error;
	json_t *j;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		j = json_loads(bad[i], 0, NULL);
		error = NULL;
		CHECK(j != NULL);
		CHECK(mc_imf_envelope_from_json(&env, pool, j, &error) == -1);
		CHECK(error != NULL && strncmp(error, "envelope: ", 10) == 0);
		json_decref(j);
	}
	/* Missing keys are null; unknown keys ignored; \u0000 -> 0x80;
	 * sender/reply_to default to from; base64 of "" and of 1..3 bytes. */
	j = json_loads("{\"v\": 2, \"subject\": \"a\\u0000b\", \"date\": "
	               "{\"base64\": \"\"}, \"message_id\": {\"base64\": "
	               "\"YWI=\"}, \"in_reply_to\": {\"base64\": \"YWJj\"}, "
	               "\"from\": [[null, null, \"a\", \"b\"]]}",
	               JSON_ALLOW_NUL, NULL);
	CHECK(j != NULL);
	CHECK(mc_imf_envelope_from_json(&env, pool, j, &error) == 0);
	CHECK_STR(fmt_env(&env), "(\"\" \"a\x80" "b\" ((NIL NIL \"a\" \"b\")) "
	                         "((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) "
	                         "NIL NIL NIL \"abc\" \"ab\")");
	json_decref(j);
	mc_pool_free(&pool);
}

/* ---- hostile ---------------------------------------------------------- */

static char *
repeat(const char *prefix, const char *unit, size_t times, const char *suffix,
       size_t *len_r)
{
	size_t u = strlen(unit), p = strlen(prefix), s = strlen(suffix);
	char *b = mc_malloc(p + u * times + s + 1);

	memcpy(b, prefix, p);
	for (size_t i = 0; i < times; i++)
		memcpy(b + p + i * u, unit, u);
	memcpy(b + p + u * times, suffix, s);
	*len_r = p + u * times + s;
	return b;
}

static void
test_hostile(void)
{
	static const char *const units[] = {
		"(", ")", "\"", "<", ">", "[", "]", ":", ";", "@", ",", ".",
		"\\", "a", " ", "\r", "a:", "<a@b>", "\"\\", "@a,", "((a)",
		"g:", "=?x?q?y?=",
	};
	struct mc_pool *pool = mc_pool_new();
	struct mc_imf_envelope env;
	size_t len;
	char *m;

	/* Each unit repeated to a 100k From line (cut at 64 KiB). */
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		m = repeat("From: ", units[i], 100000 / strlen(units[i]),
		           "\r\nSubject: ok\r\n\r\n", &len);
		mc_imf_envelope_parse(&env, pool, m, len, NULL);
		CHECK_STR(env.subject, "ok");
		CHECK(env.from.count <= MC_IMF_MAX_ADDRESSES_DEFAULT + 1);
		CHECK(env.truncated & MC_IMF_TRUNC_FIELD);
		free(m);
	}
	/* Many addresses: the list stops at the limit. */
	m = repeat("To: ", "a@b.test,", 7000, "\r\n\r\n", &len);
	mc_imf_envelope_parse(&env, pool, m, len, NULL);
	CHECK(env.to.count == MC_IMF_MAX_ADDRESSES_DEFAULT);
	CHECK(env.truncated == MC_IMF_TRUNC_ADDRESSES);
	free(m);
	/* Many folds. */
	m = repeat("Subject: x", "\r\n y", 20000, "\r\n\r\n", &len);
	mc_imf_envelope_parse(&env, pool, m, len, NULL);
	/* 65536 - "Subject:" = 65528 raw octets: " x" and 16381 folds of
	 * 4 octets, then a CR that the cut split from its LF (dropped). */
	CHECK(env.subject != NULL && strlen(env.subject) == 1 + 2 * 16381);
	free(m);
	/* Unterminated everything. */
	m = "From: \"a (b <c [d\r\nTo: ((((\r\nCc: <<<<\r\nBcc: [\r\n\r\n";
	mc_imf_envelope_parse(&env, pool, m, strlen(m), NULL);
	CHECK(env.from.count == 1 && env.cc.count == 0 && env.to.count == 0);
	CHECK(env.bcc.count == 1);
	mc_pool_free(&pool);
}

int
main(void)
{
	test_header_basic();
	test_header_cases();
	test_header_limits();
	test_addr_cases();
	test_addr_flags();
	test_env_cases();
	test_json_cases();
	test_json_errors();
	test_hostile();
	return mc_test_done();
}
