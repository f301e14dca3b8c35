/* Tests for imap_format: IMAP strings, ENVELOPE from the stored JSON
 * (groups, missing fields, 8-bit), BODY and BODYSTRUCTURE of real message
 * shapes (text, alternative, mixed with an RFC 2231 attachment, forwarded
 * message/rfc822), every FETCH section form with partials and missing
 * parts, BINARY decoding, and hostile JSON and fetch items. Messages are
 * built here and go through mc_mime_parse + mc_mime_to_json and
 * mc_imf_envelope_to_json, as the server stores them; expected output is
 * written out in full, literals included. */
#include "imap_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imf.h"
#include "mem.h"
#include "test.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* An expected byte string that may hold NUL: text and length. */
#define BYTES(lit) lit, sizeof(lit) - 1

static void
print_escaped(const char *what, const char *s, size_t n)
{
	fprintf(stderr, "  %s: \"", what);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r')
			fputs("\\r", stderr);
		else if (c == '\n')
			fputs("\\n", stderr);
		else if (c == '"' || c == '\\')
			fprintf(stderr, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
	fputs("\"\n", stderr);
}

/* The buffer holds exactly want/want_len. */
static void
check_buf(int line, const char *what, const struct mc_strbuf *b,
          const char *want, size_t want_len)
{
	const char *got = b->data != NULL ? b->data : "";

	if (b->len == want_len && memcmp(got, want, want_len) == 0) {
		mc_test_passed++;
		return;
	}
	mc_test_failed++;
	fprintf(stderr, "%s:%d: %s: output differs\n", __FILE__, line, what);
	print_escaped("got ", got, b->len);
	print_escaped("want", want, want_len);
}

/* ---- strings ---------------------------------------------------------- */

static void
test_strings(void)
{
	struct mc_strbuf b = {0};
	char *big = mc_malloc(1100);

	mc_imap_nstring(&b, NULL, 0);
	check_buf(__LINE__, "NULL", &b, BYTES("NIL"));
	mc_strbuf_reset(&b);
	mc_imap_nstring(&b, "", 0);
	check_buf(__LINE__, "empty", &b, BYTES("\"\""));
	mc_strbuf_reset(&b);
	mc_imap_nstring(&b, "a \"q\" \\b\x01", 9);
	check_buf(__LINE__, "escapes", &b, BYTES("\"a \\\"q\\\" \\\\b\x01\""));
	mc_strbuf_reset(&b);
	mc_imap_nstring(&b, "a\r\nb", 4);
	check_buf(__LINE__, "CRLF", &b, BYTES("{4}\r\na\r\nb"));
	mc_strbuf_reset(&b);
	mc_imap_nstring(&b, "a\0b", 3);
	check_buf(__LINE__, "NUL", &b, BYTES("{3}\r\na\0b"));
	mc_strbuf_reset(&b);
	mc_imap_nstring(&b, "caf\xc3\xa9", 5);
	check_buf(__LINE__, "8-bit", &b, BYTES("{5}\r\ncaf\xc3\xa9"));
	mc_strbuf_reset(&b);
	mc_imap_nstring_utf8(&b, "caf\xc3\xa9 \"x\"", 9);
	check_buf(__LINE__, "utf8", &b, BYTES("\"caf\xc3\xa9 \\\"x\\\"\""));
	mc_strbuf_reset(&b);
	/* Latin-1, an overlong, a surrogate, a cut sequence: not UTF-8. */
	mc_imap_nstring_utf8(&b, "caf\xe9", 4);
	check_buf(__LINE__, "latin1", &b, BYTES("{4}\r\ncaf\xe9"));
	mc_strbuf_reset(&b);
	mc_imap_nstring_utf8(&b, "\xc0\xaf", 2);
	check_buf(__LINE__, "overlong", &b, BYTES("{2}\r\n\xc0\xaf"));
	mc_strbuf_reset(&b);
	mc_imap_nstring_utf8(&b, "\xed\xa0\x80", 3);
	check_buf(__LINE__, "surrogate", &b, BYTES("{3}\r\n\xed\xa0\x80"));
	mc_strbuf_reset(&b);
	mc_imap_nstring_utf8(&b, "a\xe2\x82", 3);
	check_buf(__LINE__, "cut", &b, BYTES("{3}\r\na\xe2\x82"));
	mc_strbuf_reset(&b);
	mc_imap_nstring_utf8(&b, "\xf0\x9f\x98\x80\r", 5);
	check_buf(__LINE__, "utf8 CR", &b, BYTES("{5}\r\n\xf0\x9f\x98\x80\r"));
	mc_strbuf_reset(&b);
	/* 1024 octets still quoted, 1025 a literal. */
	memset(big, 'x', 1025);
	mc_imap_nstring(&b, big, 1024);
	CHECK(b.len == 1026 && b.data[0] == '"' && b.data[1025] == '"');
	mc_strbuf_reset(&b);
	mc_imap_nstring(&b, big, 1025);
	CHECK(b.len == 8 + 1025 && memcmp(b.data, "{1025}\r\n", 8) == 0);
	mc_strbuf_reset(&b);

	static const struct {
		const char *in, *want;
	} astrings[] = {
	        {"INBOX", "INBOX"},
	        {"Lists/mc-dev]", "Lists/mc-dev]"},
	        {"NIL", "\"NIL\""},
	        {"nil", "\"nil\""},
	        {"NILS", "NILS"},
	        {"", "\"\""},
	        {"a b", "\"a b\""},
	        {"50%", "\"50%\""},
	        {"a*", "\"a*\""},
	        {"(x)", "\"(x)\""},
	        {"{3}", "\"{3}\""},
	        {"\\Seen", "\"\\\\Seen\""},
	        {"q\"", "\"q\\\"\""},
	        {"tab\there", "\"tab\there\""},
	        {"Entw\xc3\xbcrfe", "{9}\r\nEntw\xc3\xbcrfe"},
	        {NULL, "NIL"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(astrings); i++) {
		mc_strbuf_reset(&b);
		mc_imap_astring(&b, astrings[i].in);
		check_buf(__LINE__, astrings[i].want, &b, astrings[i].want,
		          strlen(astrings[i].want));
	}
	free(big);
	mc_strbuf_fini(&b);
}

/* ---- ENVELOPE ----------------------------------------------------------- */

struct env_case {
	const char *what;
	const char *msg;
	size_t msg_len; /* 0: strlen */
	const char *want;
	size_t want_len;
};

static const struct env_case env_cases[] = {
        {"every field",
         "Date: Mon, 3 Jun 2024 10:15:42 +0200\r\n"
         "Subject: Re: \"plans\" \\o/\r\n"
         "From: Alice Example <alice@example.com>\r\n"
         "Sender: list-bounces@lists.example.net\r\n"
         "Reply-To: list@lists.example.net\r\n"
         "To: bob@example.org, \"Carol, C.\" <carol@c.test>\r\n"
         "Cc: <@relay.test:dan@d.test>\r\n"
         "Bcc: eve@e.test\r\n"
         "In-Reply-To: <0@example.org>\r\n"
         "Message-ID: <1@example.com>\r\n\r\nbody\r\n",
         0,
         BYTES("(\"Mon, 3 Jun 2024 10:15:42 +0200\" \"Re: \\\"plans\\\" "
               "\\\\o/\" ((\"Alice Example\" NIL \"alice\" \"example.com\")) "
               "((NIL NIL \"list-bounces\" \"lists.example.net\")) "
               "((NIL NIL \"list\" \"lists.example.net\")) "
               "((NIL NIL \"bob\" \"example.org\")(\"Carol, C.\" NIL "
               "\"carol\" \"c.test\")) ((NIL \"@relay.test\" \"dan\" "
               "\"d.test\")) ((NIL NIL \"eve\" \"e.test\")) "
               "\"<0@example.org>\" \"<1@example.com>\")")},
        {"sender and reply-to default to from", "From: a@b.test\r\n\r\n", 0,
         BYTES("(NIL NIL ((NIL NIL \"a\" \"b.test\")) "
               "((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"a\" \"b.test\")) "
               "NIL NIL NIL NIL NIL)")},
        {"no header at all", "", 0,
         BYTES("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)")},
        {"empty subject, groups",
         "Subject:\r\nTo: undisclosed-recipients:;\r\n"
         "Cc: Team: a@x.test, \"B\" <b@y.test>;, c@z.test\r\n\r\n",
         0,
         BYTES("(NIL \"\" NIL NIL NIL ((NIL NIL \"undisclosed-recipients\" "
               "NIL)(NIL NIL NIL NIL)) ((NIL NIL \"Team\" NIL)"
               "(NIL NIL \"a\" \"x.test\")(\"B\" NIL \"b\" \"y.test\")"
               "(NIL NIL NIL NIL)(NIL NIL \"c\" \"z.test\")) NIL NIL NIL)")},
        {"8-bit header bytes go out as literals",
         "Subject: caf\xe9\r\nFrom: J\xc3\xb6rg <j@x.test>\r\n\r\n", 0,
         BYTES("(NIL {4}\r\ncaf\xe9 (("
               "{5}\r\nJ\xc3\xb6rg NIL \"j\" "
               "\"x.test\")) (({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x.test\")) "
               "(({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x.test\")) NIL NIL NIL "
               "NIL NIL)")},
        {"NUL in a header is 0x80", "Subject: a\0b\r\n\r\n", 16,
         BYTES("(NIL {3}\r\na\x80"
               "b NIL NIL NIL NIL NIL NIL NIL NIL)")},
        {"encoded-words stay as they are",
         "Subject: =?UTF-8?Q?caf=C3=A9?=\r\n"
         "From: =?ISO-8859-1?Q?J=F6rg?= <j@x.test>\r\n\r\n",
         0,
         BYTES("(NIL \"=?UTF-8?Q?caf=C3=A9?=\" ((\"=?ISO-8859-1?Q?J=F6rg?=\" "
               "NIL \"j\" \"x.test\")) ((\"=?ISO-8859-1?Q?J=F6rg?=\" NIL "
               "\"j\" \"x.test\")) ((\"=?ISO-8859-1?Q?J=F6rg?=\" NIL \"j\" "
               "\"x.test\")) NIL NIL NIL NIL NIL)")},
};

static void
test_envelope(void)
{
	struct mc_strbuf b = {0};
	const char *error = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(env_cases); i++) {
		const struct env_case *c = &env_cases[i];
		struct mc_pool *pool = mc_pool_new();
		size_t len = c->msg_len ? c->msg_len : strlen(c->msg);
		struct mc_imf_envelope env;
		json_t *j;
		char *text, *stored;

		mc_imf_envelope_parse(&env, pool, c->msg, len, NULL);
		j = mc_imf_envelope_to_json(&env);
		text = json_dumps(j, JSON_COMPACT);
		mc_strbuf_reset(&b);
		CHECK(mc_imap_format_envelope(&b, text, &error) == 0);
		check_buf(__LINE__, c->what, &b, c->want, c->want_len);
		/* the stored text form is the same bytes, when it exists */
		stored = mc_imap_envelope_text(text);
		CHECK(stored == NULL || (strlen(stored) == b.len &&
		                         memcmp(stored, b.data, b.len) == 0));
		free(stored);
		free(text);
		json_decref(j);
		mc_pool_free(&pool);
	}

	/* Stored JSON written by hand: base64 strings, an older row without
	 * sender/reply_to, unknown keys. */
	mc_strbuf_reset(&b);
	CHECK(mc_imap_format_envelope(
	              &b,
	              "{\"v\":2,\"subject\":{\"base64\":\"Uul1bmlvbg==\"},"
	              "\"from\":[[{\"base64\":\"SvZyZw==\"},null,\"j\",\"x\"]],"
	              "\"message_id\":\"<m@x>\"}",
	              &error) == 0);
	check_buf(
	        __LINE__, "hand JSON", &b,
	        BYTES("(NIL {7}\r\nR\xe9union (({4}\r\nJ\xf6rg NIL \"j\" "
	              "\"x\")) "
	              "(({4}\r\nJ\xf6rg NIL \"j\" \"x\")) (({4}\r\nJ\xf6rg NIL "
	              "\"j\" \"x\")) NIL NIL NIL NIL \"<m@x>\")"));

	/* Kept as text only when valid UTF-8: Latin-1 bytes are not. */
	CHECK(mc_imap_envelope_text("{\"subject\":{\"base64\":\"Uul1bmlvbg==\"}}") ==
	      NULL);
	{
		char *t = mc_imap_envelope_text("{\"subject\":\"R\u00e9union\"}");

		CHECK(t != NULL && strcmp(t, "(NIL {8}\r\nR\xc3\xa9union NIL NIL NIL "
		                             "NIL NIL NIL NIL NIL)") == 0);
		free(t);
	}
	CHECK(mc_imap_envelope_text(NULL) == NULL);

	/* NULL: NILs; broken: NILs and -1. */
	mc_strbuf_reset(&b);
	CHECK(mc_imap_format_envelope(&b, NULL, &error) == 0);
	check_buf(__LINE__, "NULL", &b,
	          BYTES("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"));
	static const char *const broken[] = {
	        "",
	        "{",
	        "[]",
	        "5",
	        "{\"subject\": 5}",
	        "{\"from\": [[1, 2, 3, 4]]}",
	        "{\"subject\":{\"base64\":\"!\"}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(broken); i++) {
		mc_strbuf_reset(&b);
		error = NULL;
		CHECK(mc_imap_format_envelope(&b, broken[i], &error) == -1);
		CHECK(error != NULL);
		check_buf(__LINE__, broken[i], &b,
		          BYTES("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"));
	}
	mc_strbuf_fini(&b);
}

/* ---- messages ------------------------------------------------------------ */

static const char SIMPLE[] = "From: Alice <alice@example.com>\r\n"
                             "To: bob@example.org\r\n"
                             "Subject: hi\r\n"
                             " there\r\n"
                             "X-Note: yes\r\n"
                             "\r\n"
                             "line one\r\nline two\r\n";

static const char ALT[] = "From: a@example.com\r\n"
                          "Content-Type: multipart/alternative; "
                          "boundary=\"b1\"\r\n"
                          "\r\n"
                          "preamble\r\n"
                          "--b1\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n"
                          "\r\n"
                          "plain\r\n"
                          "--b1\r\n"
                          "Content-Type: text/html; charset=utf-8\r\n"
                          "Content-Transfer-Encoding: quoted-printable\r\n"
                          "\r\n"
                          "<p>caf=C3=A9 =\r\nsoft</p>  \r\n"
                          "--b1--\r\n";

static const char MIXED[] = "From: a@example.com\r\n"
                            "Content-Type: multipart/mixed; boundary=XyZ\r\n"
                            "\r\n"
                            "--XyZ\r\n"
                            "Content-Type: text/plain; charset=iso-8859-1\r\n"
                            "Content-Transfer-Encoding: 8bit\r\n"
                            "\r\n"
                            "see attached\r\n"
                            "--XyZ\r\n"
                            "Content-Type: application/pdf; name=\"r.pdf\"\r\n"
                            "Content-Disposition: attachment;\r\n"
                            " filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
                            "Content-Transfer-Encoding: base64\r\n"
                            "Content-ID: <pdf@x>\r\n"
                            "Content-Description: the CV\r\n"
                            "Content-Language: en, de\r\n"
                            "Content-Location: http://x/r.pdf\r\n"
                            "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
                            "\r\n"
                            "SGVsbG8s\r\nIFdvcmxkIQ==\r\n"
                            "--XyZ--\r\n";

static const char FWD[] = "From: outer@example.com\r\n"
                          "Subject: fwd\r\n"
                          "Content-Type: multipart/mixed; boundary=\"o\"\r\n"
                          "\r\n"
                          "--o\r\n"
                          "Content-Type: text/plain\r\n"
                          "\r\n"
                          "see below\r\n"
                          "--o\r\n"
                          "Content-Type: message/rfc822\r\n"
                          "\r\n"
                          "From: Bob <bob@example.org>\r\n"
                          "Subject: inner\r\n"
                          "Message-ID: <in@example.org>\r\n"
                          "\r\n"
                          "inner body\r\n"
                          "--o--\r\n";

/* Base64 with a NUL in the decoded bytes, and an unknown encoding. */
static const char B64NUL[] = "Content-Type: application/octet-stream\r\n"
                             "Content-Transfer-Encoding: Base64\r\n"
                             "\r\n"
                             "AGFi\r\n";
static const char UUENC[] = "Content-Transfer-Encoding: x-uuencode\r\n"
                            "\r\n"
                            "begin 644 x\r\n";

static char *
body_json(const char *msg, size_t len)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_mime_message m;
	json_t *j;
	char *text;

	mc_mime_parse(&m, pool, msg, len, NULL);
	j = mc_mime_to_json(&m);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	mc_pool_free(&pool);
	return text;
}

/* ---- BODY / BODYSTRUCTURE -------------------------------------------- */

struct body_case {
	const char *what;
	const char *msg;
	const char *body, *bodystructure;
	size_t body_len, bs_len;
};

#define TWO(a, b) a, b, sizeof(a) - 1, sizeof(b) - 1

static const struct body_case body_cases[] = {
        {"text", SIMPLE,
         TWO("(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" "
             "20 2)",
             "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" "
             "20 2 NIL NIL NIL NIL)")},
        {"alternative", ALT,
         TWO("((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 5 "
             "1)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL "
             "\"QUOTED-PRINTABLE\" 26 2) \"alternative\")",
             "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 5 "
             "1 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") "
             "NIL NIL \"QUOTED-PRINTABLE\" 26 2 NIL NIL NIL NIL) "
             "\"alternative\" (\"boundary\" \"b1\") NIL NIL NIL)")},
        {"mixed with an RFC 2231 attachment", MIXED,
         TWO("((\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL "
             "\"8BIT\" 12 1)(\"application\" \"pdf\" (\"name\" \"r.pdf\") "
             "\"<pdf@x>\" \"the CV\" \"BASE64\" 22) \"mixed\")",
             "((\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL "
             "\"8BIT\" 12 1 NIL NIL NIL NIL)(\"application\" \"pdf\" "
             "(\"name\" \"r.pdf\") \"<pdf@x>\" \"the CV\" \"BASE64\" 22 "
             "\"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"attachment\" (\"filename\" "
             "{12}\r\nr\xc3\xa9sum\xc3\xa9.pdf)) (\"en\" \"de\") "
             "\"http://x/r.pdf\") \"mixed\" (\"boundary\" \"XyZ\") NIL NIL "
             "NIL)")},
        {"forwarded message/rfc822", FWD,
         TWO("((\"text\" \"plain\" NIL NIL NIL \"7BIT\" 9 1)(\"message\" "
             "\"rfc822\" NIL NIL NIL \"7BIT\" 87 (NIL \"inner\" "
             "((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Bob\" NIL \"bob\" "
             "\"example.org\")) ((\"Bob\" NIL \"bob\" \"example.org\")) NIL "
             "NIL NIL NIL \"<in@example.org>\") (\"text\" \"plain\" "
             "(\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 10 1) 5) "
             "\"mixed\")",
             "((\"text\" \"plain\" NIL NIL NIL \"7BIT\" 9 1 NIL NIL NIL "
             "NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 87 (NIL "
             "\"inner\" ((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Bob\" NIL "
             "\"bob\" \"example.org\")) ((\"Bob\" NIL \"bob\" "
             "\"example.org\")) NIL NIL NIL NIL \"<in@example.org>\") "
             "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" "
             "10 1 NIL NIL NIL NIL) 5 NIL NIL NIL NIL) \"mixed\" "
             "(\"boundary\" \"o\") NIL NIL NIL)")},
        {"no multipart boundary: a repaired leaf",
         "Content-Type: multipart/mixed\r\n\r\nx\r\n",
         TWO("(\"application\" \"octet-stream\" NIL NIL NIL \"7BIT\" 3)",
             "(\"application\" \"octet-stream\" NIL NIL NIL \"7BIT\" 3 NIL "
             "NIL NIL NIL)")},
};

static void
test_body(void)
{
	struct mc_strbuf b = {0};
	const char *error = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(body_cases); i++) {
		const struct body_case *c = &body_cases[i];
		char *json = body_json(c->msg, strlen(c->msg));

		mc_strbuf_reset(&b);
		CHECK(mc_imap_format_body(&b, json, false, &error) == 0);
		check_buf(__LINE__, c->what, &b, c->body, c->body_len);
		mc_strbuf_reset(&b);
		CHECK(mc_imap_format_body(&b, json, true, &error) == 0);
		check_buf(__LINE__, c->what, &b, c->bodystructure, c->bs_len);
		free(json);
	}
	mc_strbuf_fini(&b);
}

/* Hostile stored JSON: -1 and nothing appended; odd but usable: output. */
static void
test_body_json(void)
{
	static const char *const bad[] = {
	        "",
	        "nope",
	        "[]",
	        "{\"root\": 5}",
	        "{\"root\": {}}",
	        "{\"root\": {\"type\": \"text\"}}",
	        "{\"root\": {\"type\": 5, \"subtype\": \"plain\"}}",
	        "{\"root\": {\"type\": \"multipart\", \"subtype\": \"mixed\"}}",
	        "{\"root\": {\"type\": \"multipart\", \"subtype\": \"mixed\", "
	        "\"parts\": []}}",
	        "{\"root\": {\"type\": \"multipart\", \"subtype\": \"mixed\", "
	        "\"parts\": [7]}}",
	        "{\"root\": {\"type\": \"text\", \"subtype\": \"plain\", "
	        "\"body_size\": -1}}",
	        "{\"root\": {\"type\": \"text\", \"subtype\": \"plain\", "
	        "\"body_size\": \"5\"}}",
	        "{\"root\": {\"type\": \"text\", \"subtype\": \"plain\", "
	        "\"params\": {}}}",
	        "{\"root\": {\"type\": \"text\", \"subtype\": \"plain\", "
	        "\"params\": [[\"charset\"]]}}",
	        "{\"root\": {\"type\": \"text\", \"subtype\": \"plain\", "
	        "\"params\": [[\"charset\", null]]}}",
	        "{\"root\": {\"type\": \"text\", \"subtype\": \"plain\", "
	        "\"id\": {\"b64\": \"eA==\"}}}",
	        "{\"root\": {\"type\": \"message\", \"subtype\": \"rfc822\"}}",
	        "{\"root\": {\"type\": \"message\", \"subtype\": \"rfc822\", "
	        "\"envelope\": 3, \"message\": {\"type\": \"text\", "
	        "\"subtype\": \"plain\"}}}",
	};
	struct mc_strbuf b = {0};
	const char *error;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		mc_strbuf_reset(&b);
		mc_strbuf_adds(&b, "* 1 FETCH (");
		error = NULL;
		CHECK(mc_imap_format_body(&b, bad[i], true, &error) == -1);
		CHECK(error != NULL);
		check_buf(__LINE__, bad[i], &b, BYTES("* 1 FETCH ("));
	}
	mc_strbuf_reset(&b);
	CHECK(mc_imap_format_body(&b, NULL, false, &error) == -1);
	CHECK(b.len == 0);

	/* A bare part, base64 strings (NUL -> 0x80), missing members take
	 * their defaults, a language given as one string. */
	mc_strbuf_reset(&b);
	CHECK(mc_imap_format_body(
	              &b,
	              "{\"type\": {\"base64\": \"VEVYVA==\"}, \"subtype\": "
	              "\"plain\", \"description\": {\"base64\": \"YQBi\"}, "
	              "\"language\": \"fr\", \"disposition\": {\"type\": "
	              "\"inline\", \"params\": []}}",
	              true, &error) == 0);
	check_buf(__LINE__, "bare part", &b,
	          BYTES("(\"TEXT\" \"plain\" NIL NIL {3}\r\na\x80"
	                "b \"7BIT\" 0 "
	                "0 NIL (\"inline\" NIL) \"fr\" NIL)"));

	/* Nesting: 100 levels of multipart are followed, 101 refused. */
	for (int depth = 100; depth <= 101; depth++) {
		struct mc_strbuf j = {0};

		for (int i = 0; i < depth; i++)
			mc_strbuf_adds(&j, "{\"type\":\"multipart\","
			                   "\"subtype\":\"mixed\",\"parts\":[");
		mc_strbuf_adds(&j, "{\"type\":\"text\",\"subtype\":\"plain\"}");
		for (int i = 0; i < depth; i++)
			mc_strbuf_adds(&j, "]}");
		mc_strbuf_reset(&b);
		CHECK(mc_imap_format_body(&b, j.data, false, &error) ==
		      (depth == 100 ? 0 : -1));
		CHECK(depth == 100 ? b.len > 0 : b.len == 0);
		mc_strbuf_fini(&j);
	}
	mc_strbuf_fini(&b);
}

/* ---- sections: grammar -------------------------------------------------- */

struct parse_case {
	const char *item;
	int ret;
	const char *name, *part;
	enum mc_imap_section_kind kind;
	bool peek, binary, binary_size, partial;
	uint64_t offset, length;
	size_t fields;
};

static const struct parse_case parse_cases[] = {
        {"FLAGS", 0, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY", 0, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODYSTRUCTURE", 0, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"RFC822.SIZE", 0, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODYX[]", 0, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[]", 1, "BODY[]", "", MC_IMAP_SECTION_ALL, 0, 0, 0, 0, 0, 0, 0},
        {"body.peek[]<0.1>", 1, "BODY[]<0>", "", MC_IMAP_SECTION_ALL, 1, 0, 0,
         1, 0, 1, 0},
        {"BODY[TEXT]", 1, "BODY[TEXT]", "", MC_IMAP_SECTION_TEXT, 0, 0, 0, 0, 0,
         0, 0},
        {"BODY.PEEK[HEADER]", 1, "BODY[HEADER]", "", MC_IMAP_SECTION_HEADER, 1,
         0, 0, 0, 0, 0, 0},
        {"BODY.PEEK[HEADER.FIELDS (From to X-Spam-Flag)]<10.200>", 1,
         "BODY[HEADER.FIELDS (FROM TO X-SPAM-FLAG)]<10>", "",
         MC_IMAP_SECTION_HEADER_FIELDS, 1, 0, 0, 1, 10, 200, 3},
        {"BODY[header.fields.not (\"Received\" \"X \\\"q\\\"\")]", 1,
         "BODY[HEADER.FIELDS.NOT (RECEIVED \"X \\\"Q\\\"\")]", "",
         MC_IMAP_SECTION_HEADER_FIELDS_NOT, 0, 0, 0, 0, 0, 0, 2},
        {"BODY[HEADER.FIELDS  ( a  b )]", 1, "BODY[HEADER.FIELDS (A B)]", "",
         MC_IMAP_SECTION_HEADER_FIELDS, 0, 0, 0, 0, 0, 0, 2},
        {"BODY[1]", 1, "BODY[1]", "1", MC_IMAP_SECTION_ALL, 0, 0, 0, 0, 0, 0,
         0},
        {"BODY[1.2.MIME]", 1, "BODY[1.2.MIME]", "1.2", MC_IMAP_SECTION_MIME, 0,
         0, 0, 0, 0, 0, 0},
        {"BODY[2.HEADER]", 1, "BODY[2.HEADER]", "2", MC_IMAP_SECTION_HEADER, 0,
         0, 0, 0, 0, 0, 0},
        {"BODY[1.TEXT]", 1, "BODY[1.TEXT]", "1", MC_IMAP_SECTION_TEXT, 0, 0, 0,
         0, 0, 0, 0},
        {"BODY[3.1.HEADER.FIELDS (subject)]", 1,
         "BODY[3.1.HEADER.FIELDS (SUBJECT)]", "3.1",
         MC_IMAP_SECTION_HEADER_FIELDS, 0, 0, 0, 0, 0, 0, 1},
        {"BODY[4294967295.10]", 1, "BODY[4294967295.10]", "4294967295.10",
         MC_IMAP_SECTION_ALL, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[TEXT]<18446744073709551615.18446744073709551615>", 1,
         "BODY[TEXT]<18446744073709551615>", "", MC_IMAP_SECTION_TEXT, 0, 0, 0,
         1, UINT64_MAX, UINT64_MAX, 0},
        {"BINARY[1]", 1, "BINARY[1]", "1", MC_IMAP_SECTION_ALL, 0, 1, 0, 0, 0,
         0, 0},
        {"Binary.Peek[1.2]<0.5>", 1, "BINARY[1.2]<0>", "1.2",
         MC_IMAP_SECTION_ALL, 1, 1, 0, 1, 0, 5, 0},
        {"BINARY[]", 1, "BINARY[]", "", MC_IMAP_SECTION_ALL, 0, 1, 0, 0, 0, 0,
         0},
        {"BINARY.SIZE[2]", 1, "BINARY.SIZE[2]", "2", MC_IMAP_SECTION_ALL, 1, 1,
         1, 0, 0, 0, 0},
        {"RFC822", 1, "RFC822", "", MC_IMAP_SECTION_ALL, 0, 0, 0, 0, 0, 0, 0},
        {"rfc822.header", 1, "RFC822.HEADER", "", MC_IMAP_SECTION_HEADER, 1, 0,
         0, 0, 0, 0, 0},
        {"RFC822.TEXT", 1, "RFC822.TEXT", "", MC_IMAP_SECTION_TEXT, 0, 0, 0, 0,
         0, 0, 0},
        /* malformed */
        {"BODY.PEEK", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BINARY", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BINARY.SIZE", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[]]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[0]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[01]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[1.0]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[1.]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[1..2]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[.1]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[1HEADER]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[4294967296]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[99999999999999999999999]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0,
         0},
        {"BODY[MIME]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[FOO]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[HEADERS]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[1.HEADER.FIELDS]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[HEADER.FIELDS ()]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[HEADER.FIELDS (A]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[HEADER.FIELDS A]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[HEADER.FIELDS (\"A]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[HEADER.FIELDS (\"\\x\")]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0,
         0},
        {"BODY[HEADER.FIELDS ({3}\r\nabc)]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0,
         0, 0},
        {"BODY[HEADER.FIELDS (A) ]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[TEXT]<0.0>", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[TEXT]<1>", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[TEXT]<.1>", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[TEXT]<1.>", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[TEXT]<a.b>", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[TEXT]<1.2", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[TEXT]<1.2>x", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BODY[TEXT]<18446744073709551616.1>", -1, NULL, NULL, 0, 0, 0, 0, 0, 0,
         0, 0},
        {"BODY[TEXT]x", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BINARY[HEADER]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BINARY[1.TEXT]", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
        {"BINARY.SIZE[1]<0.1>", -1, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0},
};

static void
test_parse(void)
{
	struct mc_pool *pool = mc_pool_new();

	for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct mc_imap_section sec;
		const char *error = NULL;
		int ret = mc_imap_section_parse(c->item, strlen(c->item), pool,
		                                &sec, &error);

		if (ret != c->ret)
			fprintf(stderr, "parse '%s': %d (%s)\n", c->item, ret,
			        error != NULL ? error : "");
		CHECK(ret == c->ret);
		CHECK(ret != -1 || error != NULL);
		if (ret != 1 || c->ret != 1)
			continue;
		CHECK_STR(sec.name, c->name);
		CHECK_STR(sec.part, c->part);
		CHECK(sec.kind == c->kind);
		CHECK(sec.peek == c->peek && sec.binary == c->binary &&
		      sec.binary_size == c->binary_size);
		CHECK(sec.partial == c->partial && sec.offset == c->offset &&
		      sec.length == c->length);
		CHECK(sec.field_count == c->fields);
	}
	/* Field names as sent, unquoted. */
	{
		static const char item[] =
		        "BODY[HEADER.FIELDS (From \"X \\\"q\\\"\" \"\")]";
		struct mc_imap_section sec;
		const char *error;

		CHECK(mc_imap_section_parse(item, strlen(item), pool, &sec,
		                            &error) == 1);
		CHECK(sec.field_count == 3);
		if (sec.field_count == 3) {
			CHECK_STR(sec.fields[0], "From");
			CHECK_STR(sec.fields[1], "X \"q\"");
			CHECK_STR(sec.fields[2], "");
		}
		CHECK_STR(sec.name, "BODY[HEADER.FIELDS (FROM \"X \\\"Q\\\"\" "
		                    "\"\")]");
	}
	/* The length is what the reader says, not strlen: NUL and 8-bit
	 * bytes are refused, never read past. */
	{
		struct mc_imap_section sec;
		const char *error;

		CHECK(mc_imap_section_parse("BODY[1]\0<0.1>", 13, pool, &sec,
		                            &error) == -1);
		CHECK(mc_imap_section_parse("BODY[1]<0.1>", 9, pool, &sec,
		                            &error) == -1);
		CHECK(mc_imap_section_parse("BODY[1]xyz", 7, pool, &sec,
		                            &error) == 1);
		CHECK(mc_imap_section_parse("BODY[HEADER.FIELDS (\xc3\xa9)]",
		                            24, pool, &sec, &error) == -1);
		CHECK(mc_imap_section_parse("", 0, pool, &sec, &error) == 0);
	}
	mc_pool_free(&pool);
}

/* ---- sections: content --------------------------------------------------- */

struct fetch_case {
	const char *msg;
	size_t msg_len; /* 0: strlen */
	const char *item;
	const char *want;
	size_t want_len;
};

static const struct fetch_case fetch_cases[] = {
        /* the whole message, header, text, fields */
        {SIMPLE, 0, "BODY[]",
         BYTES("BODY[] {110}\r\nFrom: Alice <alice@example.com>\r\n"
               "To: bob@example.org\r\nSubject: hi\r\n there\r\n"
               "X-Note: yes\r\n\r\nline one\r\nline two\r\n")},
        {SIMPLE, 0, "RFC822",
         BYTES("RFC822 {110}\r\nFrom: Alice <alice@example.com>\r\n"
               "To: bob@example.org\r\nSubject: hi\r\n there\r\n"
               "X-Note: yes\r\n\r\nline one\r\nline two\r\n")},
        {SIMPLE, 0, "BODY.PEEK[HEADER]",
         BYTES("BODY[HEADER] {90}\r\nFrom: Alice <alice@example.com>\r\n"
               "To: bob@example.org\r\nSubject: hi\r\n there\r\n"
               "X-Note: yes\r\n\r\n")},
        {SIMPLE, 0, "RFC822.HEADER",
         BYTES("RFC822.HEADER {90}\r\nFrom: Alice <alice@example.com>\r\n"
               "To: bob@example.org\r\nSubject: hi\r\n there\r\n"
               "X-Note: yes\r\n\r\n")},
        {SIMPLE, 0, "BODY[TEXT]",
         BYTES("BODY[TEXT] {20}\r\nline one\r\nline two\r\n")},
        {SIMPLE, 0, "RFC822.TEXT",
         BYTES("RFC822.TEXT {20}\r\nline one\r\nline two\r\n")},
        {SIMPLE, 0, "BODY[HEADER.FIELDS (SUBJECT from)]",
         BYTES("BODY[HEADER.FIELDS (SUBJECT FROM)] {56}\r\n"
               "From: Alice <alice@example.com>\r\n"
               "Subject: hi\r\n there\r\n\r\n")},
        {SIMPLE, 0, "BODY[HEADER.FIELDS.NOT (From Subject)]",
         BYTES("BODY[HEADER.FIELDS.NOT (FROM SUBJECT)] {36}\r\n"
               "To: bob@example.org\r\nX-Note: yes\r\n\r\n")},
        {SIMPLE, 0, "BODY[HEADER.FIELDS (Nope)]",
         BYTES("BODY[HEADER.FIELDS (NOPE)] {2}\r\n\r\n")},
        /* "1" of a message that is not multipart is its body */
        {SIMPLE, 0, "BODY[1]",
         BYTES("BODY[1] {20}\r\nline one\r\nline two\r\n")},
        {SIMPLE, 0, "BODY[2]", BYTES("BODY[2] \"\"")},
        {SIMPLE, 0, "BODY[1.1]", BYTES("BODY[1.1] \"\"")},
        {SIMPLE, 0, "BODY[4294967295.4294967295]",
         BYTES("BODY[4294967295.4294967295] \"\"")},
        /* partials */
        {SIMPLE, 0, "BODY[TEXT]<0.4>", BYTES("BODY[TEXT]<0> {4}\r\nline")},
        {SIMPLE, 0, "BODY[TEXT]<10.1000>",
         BYTES("BODY[TEXT]<10> {10}\r\nline two\r\n")},
        {SIMPLE, 0, "BODY[TEXT]<19.1>", BYTES("BODY[TEXT]<19> {1}\r\n\n")},
        {SIMPLE, 0, "BODY[TEXT]<20.1>", BYTES("BODY[TEXT]<20> \"\"")},
        {SIMPLE, 0, "BODY[TEXT]<18446744073709551615.18446744073709551615>",
         BYTES("BODY[TEXT]<18446744073709551615> \"\"")},
        {SIMPLE, 0, "BODY[]<5.18446744073709551615>",
         BYTES("BODY[]<5> {105}\r\n Alice <alice@example.com>\r\n"
               "To: bob@example.org\r\nSubject: hi\r\n there\r\n"
               "X-Note: yes\r\n\r\nline one\r\nline two\r\n")},
        {SIMPLE, 0, "BODY.PEEK[HEADER.FIELDS (To)]<4.3>",
         BYTES("BODY[HEADER.FIELDS (TO)]<4> {3}\r\nbob")},
        {SIMPLE, 0, "BODY[9]<0.10>", BYTES("BODY[9]<0> \"\"")},
        /* multipart parts, MIME headers */
        {MIXED, 0, "BODY[1]", BYTES("BODY[1] {12}\r\nsee attached")},
        {MIXED, 0, "BODY[1.MIME]",
         BYTES("BODY[1.MIME] {81}\r\nContent-Type: text/plain; "
               "charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n"
               "\r\n")},
        {MIXED, 0, "BODY[2]<0.8>", BYTES("BODY[2]<0> {8}\r\nSGVsbG8s")},
        {MIXED, 0, "BODY[3]", BYTES("BODY[3] \"\"")},
        {MIXED, 0, "BODY[3.MIME]", BYTES("BODY[3.MIME] \"\"")},
        {MIXED, 0, "BODY[2.HEADER.FIELDS (CONTENT-ID)]",
         BYTES("BODY[2.HEADER.FIELDS (CONTENT-ID)] {23}\r\n"
               "Content-ID: <pdf@x>\r\n\r\n")},
        {MIXED, 0, "BODY[HEADER]",
         BYTES("BODY[HEADER] {68}\r\nFrom: a@example.com\r\n"
               "Content-Type: multipart/mixed; boundary=XyZ\r\n\r\n")},
        /* message/rfc822: HEADER and TEXT of the enclosed message */
        {FWD, 0, "BODY[2.HEADER]",
         BYTES("BODY[2.HEADER] {77}\r\nFrom: Bob <bob@example.org>\r\n"
               "Subject: inner\r\nMessage-ID: <in@example.org>\r\n\r\n")},
        {FWD, 0, "BODY[2.TEXT]", BYTES("BODY[2.TEXT] {10}\r\ninner body")},
        {FWD, 0, "BODY[2.MIME]",
         BYTES("BODY[2.MIME] {32}\r\nContent-Type: message/rfc822\r\n\r\n")},
        {FWD, 0, "BODY[2]",
         BYTES("BODY[2] {87}\r\nFrom: Bob <bob@example.org>\r\n"
               "Subject: inner\r\nMessage-ID: <in@example.org>\r\n\r\n"
               "inner body")},
        {FWD, 0, "BODY[2.1]", BYTES("BODY[2.1] {10}\r\ninner body")},
        {FWD, 0, "BODY[2.HEADER.FIELDS (Subject)]",
         BYTES("BODY[2.HEADER.FIELDS (SUBJECT)] {18}\r\n"
               "Subject: inner\r\n\r\n")},
        {FWD, 0, "BODY[2.2]", BYTES("BODY[2.2] \"\"")},
        {FWD, 0, "BODY[2.1.1]", BYTES("BODY[2.1.1] \"\"")},
        /* HEADER/TEXT of a part that is not message/rfc822 (RFC 3501
         * leaves them undefined): the part's own header and body */
        {FWD, 0, "BODY[1.TEXT]", BYTES("BODY[1.TEXT] {9}\r\nsee below")},
        {FWD, 0, "BODY[1.HEADER]",
         BYTES("BODY[1.HEADER] {28}\r\nContent-Type: text/plain\r\n\r\n")},
        /* BINARY: base64, quoted-printable, identity, NUL -> literal8 */
        {MIXED, 0, "BINARY[2]", BYTES("BINARY[2] {13}\r\nHello, World!")},
        {MIXED, 0, "BINARY.PEEK[2]<7.5>", BYTES("BINARY[2]<7> {5}\r\nWorld")},
        {MIXED, 0, "BINARY[2]<13.5>", BYTES("BINARY[2]<13> \"\"")},
        {MIXED, 0, "BINARY.SIZE[2]", BYTES("BINARY.SIZE[2] 13")},
        {MIXED, 0, "BINARY.SIZE[1]", BYTES("BINARY.SIZE[1] 12")},
        {MIXED, 0, "BINARY[1]", BYTES("BINARY[1] {12}\r\nsee attached")},
        {MIXED, 0, "BINARY[7]", BYTES("BINARY[7] \"\"")},
        {MIXED, 0, "BINARY.SIZE[7]", BYTES("BINARY.SIZE[7] 0")},
        {ALT, 0, "BINARY[2]",
         BYTES("BINARY[2] {17}\r\n<p>caf\xc3\xa9 soft</p>")},
        {ALT, 0, "BINARY.SIZE[2]", BYTES("BINARY.SIZE[2] 17")},
        {ALT, 0, "BODY[2]",
         BYTES("BODY[2] {26}\r\n<p>caf=C3=A9 =\r\nsoft</p>  ")},
        {B64NUL, 0, "BINARY[1]", BYTES("BINARY[1] ~{3}\r\n\0ab")},
        {B64NUL, 0, "BINARY[1]<1.2>", BYTES("BINARY[1]<1> {2}\r\nab")},
        {B64NUL, 0, "BINARY.SIZE[1]", BYTES("BINARY.SIZE[1] 3")},
        {B64NUL, 0, "BODY[1]", BYTES("BODY[1] {6}\r\nAGFi\r\n")},
        /* BINARY[] is the message as it is, no decoding */
        {B64NUL, 0, "BINARY[]",
         BYTES("BINARY[] {83}\r\nContent-Type: application/octet-stream\r\n"
               "Content-Transfer-Encoding: Base64\r\n\r\nAGFi\r\n")},
        /* NUL in a message: BODY sends 0x80, BINARY[] a literal8 */
        {"Subject: x\r\n\r\na\0b", 17, "BODY[TEXT]",
         BYTES("BODY[TEXT] {3}\r\na\x80"
               "b")},
        {"Subject: x\r\n\r\na\0b", 17, "BINARY[1]",
         BYTES("BINARY[1] ~{3}\r\na\0b")},
        {"Subject: x\r\n\r\na\0b", 17, "BINARY[]",
         BYTES("BINARY[] ~{17}\r\nSubject: x\r\n\r\na\0b")},
        /* LF-only message, header without a body, empty message */
        {"A: 1\nB: 2\n folded\n\nbody\n", 0, "BODY[HEADER.FIELDS (b)]",
         BYTES("BODY[HEADER.FIELDS (B)] {15}\r\nB: 2\n folded\n\r\n")},
        {"A: 1\r\nB: 2", 0, "BODY[HEADER.FIELDS (B)]",
         BYTES("BODY[HEADER.FIELDS (B)] {8}\r\nB: 2\r\n\r\n")},
        {"A: 1\r\nB: 2", 0, "BODY[TEXT]", BYTES("BODY[TEXT] \"\"")},
        {"", 0, "BODY[]", BYTES("BODY[] \"\"")},
        {"", 0, "BODY[HEADER.FIELDS (A)]",
         BYTES("BODY[HEADER.FIELDS (A)] {2}\r\n\r\n")},
        /* junk lines in a header are no fields */
        {" lead\r\nnocolon\r\nA : 1\r\nA:2\r\n\r\n", 0,
         "BODY[HEADER.FIELDS (a)]",
         BYTES("BODY[HEADER.FIELDS (A)] {14}\r\nA : 1\r\nA:2\r\n\r\n")},
        {" lead\r\nnocolon\r\nA : 1\r\nB:2\r\n\r\n", 0,
         "BODY[HEADER.FIELDS.NOT (a)]",
         BYTES("BODY[HEADER.FIELDS.NOT (A)] {7}\r\nB:2\r\n\r\n")},
};

static void
test_fetch(void)
{
	struct mc_strbuf b = {0};

	for (size_t i = 0; i < ARRAY_SIZE(fetch_cases); i++) {
		const struct fetch_case *c = &fetch_cases[i];
		size_t len = c->msg_len ? c->msg_len : strlen(c->msg);
		struct mc_pool *pool = mc_pool_new();
		struct mc_mime_message m;
		struct mc_imap_section sec;
		const char *error = NULL;

		mc_mime_parse(&m, pool, c->msg, len, NULL);
		CHECK(mc_imap_section_parse(c->item, strlen(c->item), pool,
		                            &sec, &error) == 1);
		mc_strbuf_reset(&b);
		CHECK(mc_imap_section_fetch(&b, &sec, c->msg, len, &m,
		                            &error) == 0);
		check_buf(__LINE__, c->item, &b, c->want, c->want_len);
		mc_pool_free(&pool);
	}
	mc_strbuf_fini(&b);
}

/* Unknown CTE: -1 "UNKNOWN-CTE", nothing appended; BODY still works. */
static void
test_fetch_errors(void)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_strbuf b = {0};
	struct mc_mime_message m, other;
	struct mc_imap_section sec;
	const char *error = NULL;

	mc_mime_parse(&m, pool, UUENC, strlen(UUENC), NULL);
	CHECK(mc_imap_section_parse("BINARY[1]", 9, pool, &sec, &error) == 1);
	mc_strbuf_adds(&b, "* 1 FETCH (");
	CHECK(mc_imap_section_fetch(&b, &sec, UUENC, strlen(UUENC), &m,
	                            &error) == -1);
	CHECK_STR(error, "UNKNOWN-CTE");
	check_buf(__LINE__, "UNKNOWN-CTE", &b, BYTES("* 1 FETCH ("));
	CHECK(mc_imap_section_parse("BINARY.SIZE[1]", 14, pool, &sec, &error) ==
	      1);
	CHECK(mc_imap_section_fetch(&b, &sec, UUENC, strlen(UUENC), &m,
	                            &error) == -1);
	CHECK(mc_imap_section_parse("BODY[1]", 7, pool, &sec, &error) == 1);
	mc_strbuf_reset(&b);
	CHECK(mc_imap_section_fetch(&b, &sec, UUENC, strlen(UUENC), &m,
	                            &error) == 0);
	check_buf(__LINE__, "uuencode BODY", &b,
	          BYTES("BODY[1] {13}\r\nbegin 644 x\r\n"));

	/* A tree from other (longer) bytes: offsets are clamped to the
	 * message given, nothing is read past it. */
	mc_mime_parse(&other, pool, FWD, strlen(FWD), NULL);
	CHECK(mc_imap_section_parse("BODY[2.TEXT]", 12, pool, &sec, &error) ==
	      1);
	mc_strbuf_reset(&b);
	CHECK(mc_imap_section_fetch(&b, &sec, "short", 5, &other, &error) == 0);
	check_buf(__LINE__, "clamped", &b, BYTES("BODY[2.TEXT] \"\""));
	CHECK(mc_imap_section_parse("BODY[]", 6, pool, &sec, &error) == 1);
	mc_strbuf_reset(&b);
	CHECK(mc_imap_section_fetch(&b, &sec, NULL, 0, &other, &error) == 0);
	check_buf(__LINE__, "no bytes", &b, BYTES("BODY[] \"\""));
	CHECK(mc_imap_section_fetch(&b, &sec, "x", 1, NULL, &error) == -1);
	mc_strbuf_fini(&b);
	mc_pool_free(&pool);
}

/* Deep nesting and many parts from mime's limits still format. */
static void
test_deep(void)
{
	struct mc_strbuf msg = {0}, b = {0};
	struct mc_pool *pool = mc_pool_new();
	struct mc_mime_message m;
	struct mc_imap_section sec;
	const char *error = NULL;
	char *json;

	for (int i = 0; i < 60; i++)
		mc_strbuf_addf(&msg,
		               "Content-Type: multipart/mixed; boundary=b%d\r\n"
		               "\r\n--b%d\r\n",
		               i, i);
	mc_strbuf_adds(&msg, "\r\ndeep\r\n");
	json = body_json(msg.data, msg.len);
	CHECK(mc_imap_format_body(&b, json, true, &error) == 0);
	CHECK(b.len > 0);
	free(json);
	mc_mime_parse(&m, pool, msg.data, msg.len, NULL);
	/* 1.1.1...: 18 levels exist (depth 20 is mime's default cut, the
	 * 19th multipart became a leaf), 40 do not. */
	for (int levels = 18; levels <= 40; levels += 22) {
		struct mc_strbuf item = {0};

		mc_strbuf_adds(&item, "BODY[1");
		for (int i = 1; i < levels; i++)
			mc_strbuf_adds(&item, ".1");
		mc_strbuf_adds(&item, ".MIME]");
		CHECK(mc_imap_section_parse(item.data, item.len, pool, &sec,
		                            &error) == 1);
		mc_strbuf_reset(&b);
		CHECK(mc_imap_section_fetch(&b, &sec, msg.data, msg.len, &m,
		                            &error) == 0);
		CHECK(b.len > item.len + 1 &&
		      memcmp(b.data, item.data, item.len) == 0);
		if (levels == 18)
			CHECK(strstr(b.data, "boundary=b18\r\n\r\n") != NULL);
		else
			CHECK(strcmp(b.data + item.len, " \"\"") == 0);
		mc_strbuf_fini(&item);
	}
	mc_strbuf_fini(&msg);
	mc_strbuf_fini(&b);
	mc_pool_free(&pool);
}

int
main(void)
{
	test_strings();
	test_envelope();
	test_body();
	test_body_json();
	test_parse();
	test_fetch();
	test_fetch_errors();
	test_deep();
	return mc_test_done();
}
