/* Fuzz target: lib/imap_format as FETCH uses it. The first byte picks the
 * mode (and tight MIME limits):
 * - even: the next line is a fetch item for mc_imap_section_parse, the
 *   rest a message. The item, and a fixed set of items covering every
 *   section form, are fetched from the message's MIME tree; BODY and
 *   BODYSTRUCTURE are built from its JSON and the ENVELOPE from its
 *   envelope JSON, as the server stores them.
 * - odd: the rest is stored JSON, hostile, for BODY/BODYSTRUCTURE and
 *   ENVELOPE.
 * Checked: whatever is appended is well-formed IMAP (balanced lists,
 * quoted strings, literals whose octet count is right), a fetch response
 * starts with its item name, a failing call appends nothing (envelope:
 * NILs), and stored JSON from mc_mime_to_json always formats. Nothing may
 * crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_format.h"
#include "imf.h"
#include "mime.h"

#define MUST(cond)                                                             \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "imap_section_fuzz: %s failed\n",      \
			        #cond);                                        \
			abort();                                               \
		}                                                              \
	} while (0)

/* Longest fetch item taken from the input: the IMAP reader bounds the
 * command line, here a short item keeps the mutations on the grammar. */
#define MAX_ITEM 256

/* One IMAP value at s: NIL, a number, a quoted string, a literal or
 * literal8, or a parenthesised list of values separated by single
 * blanks. Returns the end, or NULL when malformed. */
static const char *
value_end(const char *s, const char *end, unsigned depth)
{
	if (s >= end || depth > 300)
		return NULL;
	if (*s == '(') {
		s++;
		if (s < end && *s == ')')
			return NULL; /* () is not IMAP */
		for (;;) {
			if ((s = value_end(s, end, depth + 1)) == NULL)
				return NULL;
			if (s < end && *s == ')')
				return s + 1;
			/* bodies of a multipart follow each other directly */
			if (s < end && *s == ' ')
				s++;
			else if (s >= end || *s != '(')
				return NULL;
		}
	}
	if (*s == '"') {
		for (s++; s < end && *s != '"'; s++) {
			if (*s == '\\') {
				if (s + 1 >= end ||
				    (s[1] != '"' && s[1] != '\\'))
					return NULL;
				s++;
			} else if (*s == '\r' || *s == '\n' || *s == '\0' ||
			           (unsigned char)*s >= 0x80) {
				return NULL;
			}
		}
		return s < end ? s + 1 : NULL;
	}
	if (*s == '{' || (*s == '~' && s + 1 < end && s[1] == '{')) {
		size_t n = 0;

		s += *s == '~' ? 2 : 1;
		if (s >= end || *s < '0' || *s > '9')
			return NULL;
		for (; s < end && *s >= '0' && *s <= '9'; s++)
			n = n * 10 + (size_t)(*s - '0');
		if (end - s < 3 || memcmp(s, "}\r\n", 3) != 0 ||
		    (size_t)(end - s - 3) < n)
			return NULL;
		return s + 3 + n;
	}
	if ((size_t)(end - s) >= 3 && memcmp(s, "NIL", 3) == 0)
		return s + 3;
	if (*s >= '0' && *s <= '9') {
		while (s < end && *s >= '0' && *s <= '9')
			s++;
		return s;
	}
	return NULL;
}

static void
must_be_value(const struct mc_strbuf *b, size_t from)
{
	const char *end = b->data + b->len;

	MUST(b->len > from);
	MUST(value_end(b->data + from, end, 0) == end);
}

static const char *const items[] = {
        "BODY[]",
        "BODY.PEEK[HEADER]",
        "BODY[TEXT]<1.7>",
        "BODY[HEADER.FIELDS (From Subject Content-Type)]",
        "BODY[HEADER.FIELDS.NOT (Received)]<3.40>",
        "BODY[1]",
        "BODY[1.MIME]",
        "BODY[1.2]",
        "BODY[2.HEADER]",
        "BODY[2.TEXT]",
        "BODY[2.1.HEADER.FIELDS (SUBJECT)]",
        "BODY[3.1.2.MIME]",
        "BINARY[1]",
        "BINARY.PEEK[2]<2.3>",
        "BINARY.SIZE[1.1]",
        "BINARY[]",
        "RFC822.HEADER",
        "BODY[4294967295]",
        "BODY[TEXT]<4294967296.18446744073709551615>",
};

static void
fetch_one(struct mc_strbuf *b, const char *item, size_t len,
          struct mc_pool *pool, const char *msg, size_t size,
          const struct mc_mime_message *m)
{
	struct mc_imap_section sec;
	const char *error = NULL;
	size_t n;
	int ret;

	ret = mc_imap_section_parse(item, len, pool, &sec, &error);
	MUST(ret >= -1 && ret <= 1);
	if (ret < 0)
		MUST(error != NULL);
	if (ret != 1)
		return;
	MUST(sec.name != NULL && sec.part != NULL);
	MUST(!sec.partial || sec.length > 0);
	mc_strbuf_reset(b);
	if (mc_imap_section_fetch(b, &sec, msg, size, m, &error) < 0) {
		MUST(b->len == 0 && error != NULL && sec.binary);
		return;
	}
	n = strlen(sec.name);
	MUST(b->len > n + 1 && memcmp(b->data, sec.name, n) == 0 &&
	     b->data[n] == ' ');
	must_be_value(b, n + 1);
	if (!sec.binary) /* NUL only ever travels in a literal8 */
		MUST(memchr(b->data, '\0', b->len) == NULL);
}

static void
check_body(const char *json, bool trusted)
{
	struct mc_strbuf b = {0};
	const char *error = NULL;

	for (int ext = 0; ext <= 1; ext++) {
		int ret;

		mc_strbuf_reset(&b);
		mc_strbuf_adds(&b, "(");
		ret = mc_imap_format_body(&b, json, ext, &error);
		MUST(ret == 0 || ret == -1);
		MUST(!trusted || ret == 0);
		if (ret == 0)
			must_be_value(&b, 1);
		else
			MUST(b.len == 1 && error != NULL);
	}
	mc_strbuf_fini(&b);
}

/* An envelope always comes out, NILs for broken JSON. */
static void
check_envelope(const char *json, bool trusted)
{
	struct mc_strbuf b = {0};
	const char *error = NULL;
	int ret = mc_imap_format_envelope(&b, json, &error);

	MUST(ret == 0 || (ret == -1 && !trusted && error != NULL));
	must_be_value(&b, 0);
	mc_strbuf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_pool *pool;
	struct mc_mime_limits lim;
	struct mc_mime_message m;
	struct mc_imf_envelope env;
	struct mc_strbuf b = {0};
	const char *msg, *nl;
	size_t item_len;
	unsigned mode;
	json_t *j;
	char *txt;

	if (size == 0)
		return 0;
	mode = data[0];
	msg = (const char *)data + 1;
	size--;
	if (mode & 1) {
		char *json = malloc(size + 1);

		MUST(json != NULL);
		memcpy(json, msg, size);
		json[size] = '\0';
		check_body(json, false);
		check_envelope(json, false);
		free(json);
		return 0;
	}
	pool = mc_pool_new();
	mc_mime_limits_default(&lim);
	if (mode & 2) {
		lim.max_depth = 4;
		lim.max_parts = 8;
		lim.imf.max_header = 256;
		lim.imf.max_fields = 8;
		lim.imf.max_field = 64;
	}
	nl = memchr(msg, '\n', size < MAX_ITEM ? size : MAX_ITEM);
	item_len = nl != NULL ? (size_t)(nl - msg) : 0;
	if (nl != NULL) {
		msg = nl + 1;
		size -= item_len + 1;
	}
	mc_mime_parse(&m, pool, msg, size, &lim);
	if (nl != NULL)
		fetch_one(&b, nl - item_len, item_len, pool, msg, size, &m);
	for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
		fetch_one(&b, items[i], strlen(items[i]), pool, msg, size, &m);

	j = mc_mime_to_json(&m);
	txt = json_dumps(j, JSON_COMPACT);
	MUST(txt != NULL);
	check_body(txt, true);
	free(txt);
	json_decref(j);
	mc_imf_envelope_parse(&env, pool, msg, size, &lim.imf);
	j = mc_imf_envelope_to_json(&env);
	txt = json_dumps(j, JSON_COMPACT);
	MUST(txt != NULL);
	check_envelope(txt, true);
	free(txt);
	json_decref(j);
	mc_strbuf_fini(&b);
	mc_pool_free(&pool);
	return 0;
}

struct seed {
	const char *s;
	size_t len;
};

#define SEED(lit)                                                              \
	{                                                                      \
		lit, sizeof(lit) - 1                                           \
	}

static const struct seed seeds[] = {
        SEED("\x00"
             "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.10>\n"
             "From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n"
             "\r\nline one\r\nline two\r\n"),
        SEED("\x00"
             "BINARY[2]<1.100>\n"
             "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
             "preamble\r\n--b1\r\n\r\nplain\r\n--b1\r\n"
             "Content-Type: text/html; charset=utf-8\r\n"
             "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
             "<p>caf=C3=A9 =\r\nx=3D=\r\n</p>\r\n--b1--\r\nepilogue\r\n"),
        SEED("\x02"
             "BINARY.SIZE[2]\n"
             "Content-Type: multipart/mixed; boundary=XyZ\n\n--XyZ\n"
             "Content-Type: text/plain; charset=iso-8859-1\n\nsee\n--XyZ\n"
             "Content-Type: application/pdf; name*0*=UTF-8'en'%E2%82%AC;\n"
             " name*1=x.pdf\nContent-Disposition: attachment;"
             " filename*=utf-8''r%C3%A9\nContent-Language: en, de\n"
             "Content-Transfer-Encoding: base64\n\nAAEC/w==\n--XyZ--\n"),
        SEED("\x00"
             "BODY[2.1.HEADER]\n"
             "Content-Type: multipart/mixed; boundary=out\r\n\r\n"
             "--out\r\nContent-Type: message/rfc822\r\n\r\n"
             "Subject: inner\r\nFrom: Bob <bob@example.org>\r\n"
             "Content-Type: multipart/digest; boundary=in\r\n\r\n"
             "--in\r\n\r\nSubject: d\r\n\r\none\r\n--in--\r\n--out--\r\n"),
        SEED("\x00"
             "BODY[1.2.MIME]\n"
             "Subject: caf\xe9\r\nTo: g: a@x, \"B\" <b@y>;\r\n"
             "Content-Type: multipart/mixed; boundary=a\r\n\r\n"
             "--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
             "--b\r\nContent-Transfer-Encoding: x-uue\r\n\r\nx\0y\r\n"
             "--b\r\n\r\nz\r\n--a\r\n--a\r\n"),
        SEED("\x01"
             "{\"truncated\":0,\"root\":{\"type\":\"multipart\",\"subtype\":"
             "\"mixed\",\"params\":[[\"boundary\",\"x\"]],\"id\":null,"
             "\"description\":null,\"encoding\":\"7BIT\",\"md5\":null,"
             "\"disposition\":null,\"language\":null,\"location\":null,"
             "\"header_offset\":0,\"header_size\":10,\"body_offset\":10,"
             "\"body_size\":90,\"parts\":[{\"type\":\"text\",\"subtype\":"
             "\"plain\",\"params\":[[\"charset\",{\"base64\":\"6Q==\"}]],"
             "\"encoding\":\"8BIT\",\"body_size\":3,\"lines\":1,"
             "\"disposition\":{\"type\":\"inline\",\"params\":[[\"filename\","
             "\"a.txt\",\"utf-8\",\"en\"]]},\"language\":[\"en\"]},"
             "{\"type\":\"message\",\"subtype\":\"rfc822\",\"body_size\":9,"
             "\"lines\":2,\"envelope\":{\"subject\":\"s\",\"from\":[[null,"
             "null,\"a\",\"b\"],[null,null,\"g\",null],[null,null,null,"
             "null]]},\"message\":{\"type\":\"text\",\"subtype\":\"plain\","
             "\"body_size\":1,\"lines\":1}}]}}"),
        SEED("\x01"
             "{\"date\":\"d\",\"subject\":{\"base64\":\"Uul1bmlvbg==\"},"
             "\"from\":[[\"A \\\"B\\\"\",\"@r\",\"a\",\"b.test\"]],"
             "\"sender\":null,\"reply_to\":null,\"to\":[[null,null,\"g\","
             "null],[null,null,null,null]],\"cc\":null,\"bcc\":null,"
             "\"in_reply_to\":null,\"message_id\":\"<m@x>\"}"),
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
