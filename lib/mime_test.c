/* Tests for lib/mime: simple and multipart messages, RFC 2231 parameters,
 * message/rfc822 nesting, broken delimiters, LF-only line ends, offsets
 * checked against the bytes, IMAP section lookup, the JSON form, and
 * hostile inputs (deep nesting, 100k boundaries, no header). */
#include "mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "test.h"

static struct mc_pool *pool;
static const char *cur; /* message under test */

static void
parse(struct mc_mime_message *m, const char *s)
{
	cur = s;
	mc_mime_parse(m, pool, s, strlen(s), NULL);
}

/* The body (or header) bytes of a part equal want. */
static bool
body_is(const struct mc_mime_part *p, const char *want)
{
	return p != NULL && p->body_size == strlen(want) &&
	       memcmp(cur + p->body_offset, want, p->body_size) == 0;
}

static bool
header_is(const struct mc_mime_part *p, const char *want)
{
	return p != NULL && p->header_size == strlen(want) &&
	       memcmp(cur + p->header_offset, want, p->header_size) == 0;
}

static const char *
param(const struct mc_mime_part *p, const char *name)
{
	const struct mc_mime_param *pr =
	        mc_mime_param_find(p->params, p->param_count, name);

	return pr != NULL ? pr->value : NULL;
}

static void
test_simple(void)
{
	struct mc_mime_message m;
	const struct mc_mime_part *r;

	parse(&m, "Subject: hi\r\n\r\nline one\r\nline two\r\n");
	r = m.root;
	CHECK_STR(r->type, "text");
	CHECK_STR(r->subtype, "plain");
	CHECK_STR(param(r, "charset"), "us-ascii");
	CHECK_STR(r->encoding, "7BIT");
	CHECK(r->lines == 2);
	CHECK(header_is(r, "Subject: hi\r\n\r\n"));
	CHECK(body_is(r, "line one\r\nline two\r\n"));
	CHECK(r->child_count == 0 && m.part_count == 1 && m.truncated == 0);
	CHECK(mc_mime_find(&m, "1") == r);
	CHECK(mc_mime_find(&m, "") == r);
	CHECK(mc_mime_find(&m, "2") == NULL);
	CHECK(mc_mime_find(&m, "1.1") == NULL);

	parse(&m, "Content-Type: TEXT/HTML; CharSet=\"UTF-8\" (c)\r\n"
	          "Content-Transfer-Encoding: quoted-printable\r\n"
	          "Content-ID: <a@b>\r\nContent-Description: desc\r\n"
	          "Content-Language: en, de (German)\r\n"
	          "Content-Location: http://x/y\r\nContent-MD5: abc=\r\n"
	          "\r\nno newline");
	r = m.root;
	CHECK_STR(r->type, "text");
	CHECK_STR(r->subtype, "html");
	CHECK(r->param_count == 1);
	CHECK_STR(param(r, "charset"), "UTF-8");
	CHECK_STR(r->encoding, "QUOTED-PRINTABLE");
	CHECK_STR(r->id, "<a@b>");
	CHECK_STR(r->description, "desc");
	CHECK_STR(r->location, "http://x/y");
	CHECK_STR(r->md5, "abc=");
	CHECK(r->language_count == 2);
	if (r->language_count == 2) {
		CHECK_STR(r->languages[0], "en");
		CHECK_STR(r->languages[1], "de");
	}
	CHECK(r->lines == 1);
	CHECK(body_is(r, "no newline"));

	/* Invalid type: the RFC 2045 default. */
	parse(&m, "Content-Type: garbage; name=x\r\n\r\nb");
	CHECK_STR(m.root->type, "text");
	CHECK_STR(param(m.root, "charset"), "us-ascii");
	CHECK(param(m.root, "name") == NULL);
}

static const char ALT[] =
        "From: a@example.com\r\n"
        "Content-Type: multipart/alternative; boundary=\"b1 x\"\r\n"
        "\r\n"
        "preamble\r\n"
        "--b1 x\r\n"
        "\r\n"
        "plain\r\n"
        "--b1 x \t\r\n"
        "Content-Type: text/html\r\n"
        "\r\n"
        "<p>html</p>\r\n"
        "--b1 x--\r\n"
        "epilogue\r\n";

static void
test_alternative(void)
{
	struct mc_mime_message m;
	const struct mc_mime_part *r, *a, *b;

	parse(&m, ALT);
	r = m.root;
	CHECK_STR(r->type, "multipart");
	CHECK_STR(r->subtype, "alternative");
	CHECK_STR(param(r, "boundary"), "b1 x");
	CHECK(r->child_count == 2 && m.part_count == 3);
	a = r->children;
	b = a != NULL ? a->next : NULL;
	CHECK(a != NULL && b != NULL && b->next == NULL);
	if (b == NULL)
		return;
	CHECK_STR(a->type, "text");
	CHECK(header_is(a, "\r\n"));
	CHECK(body_is(a, "plain"));
	CHECK(a->lines == 1);
	CHECK_STR(b->subtype, "html");
	CHECK(header_is(b, "Content-Type: text/html\r\n\r\n"));
	CHECK(body_is(b, "<p>html</p>"));
	CHECK(a->parent == r);
	CHECK(mc_mime_find(&m, "1") == a);
	CHECK(mc_mime_find(&m, "2") == b);
	CHECK(mc_mime_find(&m, "3") == NULL);
	CHECK(mc_mime_find(&m, "0") == NULL);
	CHECK(mc_mime_find(&m, "1.") == NULL);
}

static const char MIXED[] =
        "Content-Type: multipart/mixed; boundary=XyZ\n"
        "\n"
        "--XyZ\n"
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "\n"
        "see --XyZ attached\n"
        "\n"
        "--XyZ\n"
        "Content-Type: application/pdf;\n"
        " name*0*=UTF-8'en'%E2%82%AC%20rep;\n"
        " name*1*=ort.pdf\n"
        "Content-Disposition: ATTACHMENT;\n"
        " filename*1=\"t.pdf\"; filename*0*=utf-8''r%C3%A9por;\n"
        " filename=\"fallback.pdf\"; size=42\n"
        "Content-Transfer-Encoding: Base64\n"
        "\n"
        "AAAA\n"
        "--XyZ--\n";

static void
test_mixed_2231_lf(void)
{
	struct mc_mime_message m;
	const struct mc_mime_part *t, *a;
	const struct mc_mime_param *fn;

	parse(&m, MIXED);
	CHECK(m.root->child_count == 2);
	t = m.root->children;
	a = t != NULL ? t->next : NULL;
	if (a == NULL)
		return;
	CHECK_STR(param(t, "charset"), "iso-8859-1");
	CHECK(body_is(t, "see --XyZ attached\n"));
	CHECK(t->lines == 1);
	CHECK_STR(a->type, "application");
	CHECK_STR(a->subtype, "pdf");
	CHECK_STR(a->encoding, "BASE64");
	CHECK_STR(param(a, "name"), "\xe2\x82\xac report.pdf");
	CHECK_STR(a->params[0].charset, "UTF-8");
	CHECK_STR(a->params[0].language, "en");
	CHECK_STR(a->disposition, "attachment");
	CHECK(a->disp_param_count == 2);
	fn = mc_mime_param_find(a->disp_params, a->disp_param_count,
	                        "filename");
	CHECK(fn != NULL);
	if (fn != NULL) {
		CHECK_STR(fn->value, "r\xc3\xa9port.pdf");
		CHECK_STR(fn->charset, "utf-8");
		CHECK(fn->language == NULL);
	}
	CHECK_STR(
	        mc_mime_param_find(a->disp_params, a->disp_param_count, "size")
	                ->value,
	        "42");
	CHECK(body_is(a, "AAAA"));
	CHECK(a->lines == 0);
}

static const char NESTED[] =
        "Subject: outer\r\n"
        "Content-Type: multipart/mixed; boundary=out\r\n"
        "\r\n"
        "--out\r\n"
        "\r\n"
        "text\r\n"
        "--out\r\n"
        "Content-Type: message/rfc822\r\n"
        "\r\n"
        "Subject: inner\r\n"
        "From: Bob <bob@example.org>\r\n"
        "Content-Type: multipart/alternative; boundary=in\r\n"
        "\r\n"
        "--in\r\n"
        "\r\n"
        "one\r\n"
        "--in\r\n"
        "Content-Type: text/html\r\n"
        "\r\n"
        "two\r\n"
        "--in--\r\n"
        "--out--\r\n";

static void
test_nested_rfc822(void)
{
	struct mc_mime_message m;
	const struct mc_mime_part *msgp, *inner, *one, *two;
	json_t *j;
	char *txt;

	parse(&m, NESTED);
	CHECK(m.part_count == 6);
	msgp = mc_mime_find(&m, "2");
	CHECK(msgp != NULL && strcmp(msgp->subtype, "rfc822") == 0);
	if (msgp == NULL || msgp->children == NULL)
		return;
	CHECK(msgp->envelope != NULL);
	CHECK_STR(msgp->envelope->subject, "inner");
	CHECK(msgp->envelope->from.count == 1);
	inner = msgp->children;
	CHECK(inner->header_offset == msgp->body_offset);
	CHECK(inner->body_offset + inner->body_size ==
	      msgp->body_offset + msgp->body_size);
	CHECK(msgp->lines == 12);
	one = mc_mime_find(&m, "2.1");
	two = mc_mime_find(&m, "2.2");
	CHECK(body_is(one, "one"));
	CHECK(body_is(two, "two"));
	CHECK(mc_mime_find(&m, "2.3") == NULL);
	CHECK(mc_mime_find(&m, "1.1") == NULL);

	j = mc_mime_to_json(&m);
	txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK(txt != NULL && strstr(txt, "\"envelope\":{") != NULL);
	CHECK(txt != NULL && strstr(txt, "\"subject\":\"inner\"") != NULL);
	CHECK(json_integer_value(json_object_get(json_object_get(j, "root"),
	                                         "body_offset")) ==
	      (json_int_t)m.root->body_offset);
	free(txt);
	json_decref(j);
}

static void
test_broken(void)
{
	struct mc_mime_message m;
	const struct mc_mime_part *p;

	/* No close delimiter: the last part runs to the end. */
	parse(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	          "--b\r\n\r\nfirst\r\n--b\r\n\r\nlast line\r\n");
	CHECK(m.root->child_count == 2);
	p = mc_mime_find(&m, "2");
	CHECK(body_is(p, "last line\r\n"));

	/* Inner close delimiter missing: ends at the outer delimiter. */
	parse(&m, "Content-Type: multipart/mixed; boundary=o\r\n\r\n"
	          "--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n"
	          "--i\r\n\r\ninner\r\n--o\r\n\r\nsecond\r\n--o--\r\n");
	CHECK(m.root->child_count == 2);
	CHECK(body_is(mc_mime_find(&m, "1.1"), "inner"));
	CHECK(body_is(mc_mime_find(&m, "2"), "second"));

	/* No boundary parameter / no delimiter line: a leaf. */
	parse(&m, "Content-Type: multipart/mixed\r\n\r\nbody\r\n");
	CHECK_STR(m.root->type, "application");
	CHECK(m.root->repaired && m.root->child_count == 0);
	parse(&m, "Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
	          "no zz --zz here\r\n");
	CHECK(m.root->repaired && body_is(m.root, "no zz --zz here\r\n"));
	/* Only a close delimiter. */
	parse(&m, "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz--");
	CHECK(m.root->repaired);
	/* Longer boundary sharing the prefix is not a delimiter. */
	parse(&m, "Content-Type: multipart/mixed; boundary=a\r\n\r\n"
	          "--a\r\n\r\n--ab\r\n--a--\r\n");
	CHECK(m.root->child_count == 1 && body_is(m.root->children, "--ab"));
	/* Empty parts. */
	parse(&m, "Content-Type: multipart/mixed; boundary=a\r\n\r\n"
	          "--a\r\n--a\r\n\r\n--a--");
	CHECK(m.root->child_count == 2);
	CHECK(m.root->children->body_size == 0 &&
	      m.root->children->header_size == 0);
	/* No header at all, no blank line. */
	parse(&m, "");
	CHECK(m.root != NULL && m.root->header_size == 0 &&
	      m.root->body_size == 0);
	parse(&m, "just text without colon\r\n");
	CHECK_STR(m.root->type, "text");
	/* Digest default. */
	parse(&m, "Content-Type: multipart/digest; boundary=d\r\n\r\n"
	          "--d\r\n\r\nSubject: s\r\n\r\nx\r\n--d--\r\n");
	p = mc_mime_find(&m, "1");
	CHECK(p != NULL && strcmp(p->type, "message") == 0 &&
	      p->envelope != NULL);
}

static char *
repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = mc_malloc(hl + ul * n + tl + 1), *o = s;

	memcpy(o, head, hl);
	o += hl;
	for (size_t i = 0; i < n; i++, o += ul)
		memcpy(o, unit, ul);
	memcpy(o, tail, tl + 1);
	return s;
}

/* n multiparts, each the only part of the one before, boundaries b<i>. */
static char *
deep_multipart(size_t n)
{
	char *s = mc_malloc(n * 64 + 16), *o = s;

	for (size_t i = 0; i < n; i++)
		o += sprintf(o,
		             "Content-Type: multipart/mixed; boundary=b%zu\r\n"
		             "\r\n--b%zu\r\n",
		             i, i);
	strcpy(o, "end\r\n");
	return s;
}

static void
test_hostile(void)
{
	struct mc_mime_message m;
	struct mc_mime_limits lim;
	char *s;
	size_t depth = 0;
	json_t *j;

	s = deep_multipart(10000);
	parse(&m, s);
	CHECK(m.truncated & MC_MIME_TRUNC_DEPTH);
	for (const struct mc_mime_part *p = m.root; p != NULL; p = p->children)
		depth++;
	CHECK(depth == MC_MIME_MAX_DEPTH_DEFAULT);
	j = mc_mime_to_json(&m);
	CHECK(j != NULL);
	json_decref(j);
	free(s);

	s = repeat("Content-Type: multipart/mixed; boundary=x\r\n\r\n",
	           "--x\r\n\r\n", 100000, "--x--\r\n");
	parse(&m, s);
	CHECK(m.truncated & MC_MIME_TRUNC_PARTS);
	CHECK(m.part_count == MC_MIME_MAX_PARTS_DEFAULT);
	free(s);

	mc_mime_limits_default(&lim);
	lim.max_parts = 3;
	cur = NESTED;
	mc_mime_parse(&m, pool, NESTED, strlen(NESTED), &lim);
	CHECK(m.part_count == 3 && (m.truncated & MC_MIME_TRUNC_PARTS));
	CHECK(mc_mime_find(&m, "2") != NULL && mc_mime_find(&m, "2")->repaired);

	s = repeat("", "Content-Type: message/rfc822\r\n\r\n", 5000, "x");
	parse(&m, s);
	CHECK(m.truncated & MC_MIME_TRUNC_DEPTH);
	free(s);

	/* A huge header line without end. */
	s = repeat("X-Long: ", "a", 2000000, "");
	parse(&m, s);
	CHECK(m.root != NULL && m.root->body_offset <= strlen(s));
	free(s);
}

static void
test_json_8bit(void)
{
	struct mc_mime_message m;
	json_t *j, *params, *v;

	parse(&m, "Content-Type: text/plain; name=\"caf\xe9\"\r\n\r\nx");
	j = mc_mime_to_json(&m);
	params = json_object_get(json_object_get(j, "root"), "params");
	v = json_array_get(json_array_get(params, 0), 1);
	CHECK(json_is_object(v));
	CHECK_STR(json_string_value(json_object_get(v, "base64")), "Y2Fm6Q==");
	CHECK(json_integer_value(json_object_get(j, "truncated")) == 0);
	json_decref(j);
}

int
main(void)
{
	pool = mc_pool_new();
	test_simple();
	test_alternative();
	test_mixed_2231_lf();
	test_nested_rfc822();
	test_broken();
	test_hostile();
	test_json_8bit();
	mc_pool_free(&pool);
	return mc_test_done();
}
