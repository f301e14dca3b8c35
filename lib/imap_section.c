/* FETCH BODY[section]<partial>, BINARY[...] and BINARY.SIZE[...] (RFC 3501
 * 6.4.5, RFC 3516): the grammar of the items and the bytes they name inside
 * a message (the declarations are in imap_format.h). Pure functions. */
#include "imap_format.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parser.h"
#include "mem.h"
#include "mime_decode.h"

/* ---- BODY[section]<partial>: grammar ----------------------------------- */

/* Case-insensitive: does [*pp, end) start with word? Then skip it. */
static bool
eat(const char **pp, const char *end, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(end - *pp) < n || strncasecmp(*pp, word, n) != 0)
		return false;
	*pp += n;
	return true;
}

static bool
is_word(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

struct section_parse {
	const char *p, *end;
	struct mc_pool *pool;
	struct mc_imap_section *sec;
	struct mc_strbuf name; /* the response's item name, built as we go */
	size_t fields_cap;
};

/* section-part: nz-number *("." nz-number), each at most 2^32-1. Leaves
 * p on the '.' before a section text, or on what follows the numbers. */
static int
parse_part(struct section_parse *sp, const char **error_r)
{
	const char *start = sp->p, *last = sp->p;

	while (sp->p < sp->end && *sp->p >= '0' && *sp->p <= '9') {
		unsigned long long v = 0;

		if (*sp->p == '0') {
			*error_r = "bad section part number";
			return -1;
		}
		while (sp->p < sp->end && *sp->p >= '0' && *sp->p <= '9') {
			v = v * 10 + (unsigned)(*sp->p++ - '0');
			if (v > 0xffffffffull) {
				*error_r = "section part number too large";
				return -1;
			}
		}
		last = sp->p;
		if (sp->p + 1 < sp->end && sp->p[0] == '.' && sp->p[1] >= '0' &&
		    sp->p[1] <= '9')
			sp->p++;
		else
			break;
	}
	sp->sec->part =
	        mc_pool_strndup(sp->pool, start, (size_t)(last - start));
	mc_strbuf_add(&sp->name, start, (size_t)(last - start));
	return 0;
}

/* An atom of a field name: ATOM-CHAR but ']' (the section's end). */
static bool
field_atom_char(char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){\"\\]%*", c) == NULL;
}

/* One header-fld-name (astring) inside the list: an atom up to a blank,
 * ')' or ']', or a quoted string. Field names are printable ASCII. */
static int
parse_field_name(struct section_parse *sp, const char **error_r)
{
	struct mc_imap_section *sec = sp->sec;
	struct mc_strbuf n = {0};
	char *upper;

	if (*sp->p == '"') {
		for (sp->p++; sp->p < sp->end && *sp->p != '"'; sp->p++) {
			if (*sp->p == '\\' && sp->p + 1 < sp->end &&
			    (sp->p[1] == '"' || sp->p[1] == '\\'))
				sp->p++;
			else if (*sp->p == '\\' || *sp->p < 0x20 ||
			         *sp->p > 0x7e)
				break;
			mc_strbuf_addc(&n, *sp->p);
		}
		if (sp->p >= sp->end || *sp->p != '"')
			goto fail;
		sp->p++;
	} else {
		while (sp->p < sp->end && field_atom_char(*sp->p))
			mc_strbuf_addc(&n, *sp->p++);
		if (n.len == 0)
			goto fail;
	}
	if (sec->field_count == sp->fields_cap) {
		const char **f;

		sp->fields_cap = sp->fields_cap ? sp->fields_cap * 2 : 8;
		f = mc_pool_alloc(sp->pool, sp->fields_cap * sizeof(*f));
		if (sec->field_count > 0)
			memcpy(f, sec->fields, sec->field_count * sizeof(*f));
		sec->fields = f;
	}
	sec->fields[sec->field_count++] =
	        mc_pool_strndup(sp->pool, n.data != NULL ? n.data : "", n.len);
	upper = mc_pool_strndup(sp->pool, n.data != NULL ? n.data : "", n.len);
	for (char *u = upper; *u != '\0'; u++)
		if (*u >= 'a' && *u <= 'z')
			*u = (char)(*u - 'a' + 'A');
	if (sec->field_count > 1)
		mc_strbuf_addc(&sp->name, ' ');
	mc_imap_astring(&sp->name, upper);
	mc_strbuf_fini(&n);
	return 0;
fail:
	mc_strbuf_fini(&n);
	*error_r = "bad header field name";
	return -1;
}

/* SP "(" header-fld-name *(SP header-fld-name) ")" */
static int
parse_field_list(struct section_parse *sp, const char **error_r)
{
	if (sp->p >= sp->end || *sp->p != ' ') {
		*error_r = "HEADER.FIELDS without field names";
		return -1;
	}
	while (sp->p < sp->end && *sp->p == ' ')
		sp->p++;
	if (sp->p >= sp->end || *sp->p != '(') {
		*error_r = "HEADER.FIELDS without a list";
		return -1;
	}
	sp->p++;
	mc_strbuf_adds(&sp->name, " (");
	for (;;) {
		while (sp->p < sp->end && *sp->p == ' ')
			sp->p++;
		if (sp->p >= sp->end) {
			*error_r = "unterminated HEADER.FIELDS list";
			return -1;
		}
		if (*sp->p == ')')
			break;
		if (parse_field_name(sp, error_r) < 0)
			return -1;
	}
	sp->p++;
	if (sp->sec->field_count == 0) {
		*error_r = "HEADER.FIELDS without field names";
		return -1;
	}
	mc_strbuf_addc(&sp->name, ')');
	return 0;
}

/* section-text after a part number and '.', or section-msgtext alone. */
static int
parse_text(struct section_parse *sp, bool has_part, const char **error_r)
{
	static const struct {
		const char *word;
		enum mc_imap_section_kind kind;
	} texts[] = {
	        /* longest first: HEADER is a prefix of the others */
	        {"HEADER.FIELDS.NOT", MC_IMAP_SECTION_HEADER_FIELDS_NOT},
	        {"HEADER.FIELDS", MC_IMAP_SECTION_HEADER_FIELDS},
	        {"HEADER", MC_IMAP_SECTION_HEADER},
	        {"TEXT", MC_IMAP_SECTION_TEXT},
	        {"MIME", MC_IMAP_SECTION_MIME},
	};
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (eat(&sp->p, sp->end, texts[i].word))
			break;
	if (i == sizeof(texts) / sizeof(texts[0])) {
		*error_r = "unknown section text";
		return -1;
	}
	sp->sec->kind = texts[i].kind;
	if (sp->sec->kind == MC_IMAP_SECTION_MIME && !has_part) {
		*error_r = "MIME without a part number";
		return -1;
	}
	if (has_part)
		mc_strbuf_addc(&sp->name, '.');
	mc_strbuf_adds(&sp->name, texts[i].word);
	if (sp->sec->kind == MC_IMAP_SECTION_HEADER_FIELDS ||
	    sp->sec->kind == MC_IMAP_SECTION_HEADER_FIELDS_NOT)
		return parse_field_list(sp, error_r);
	return 0;
}

/* "<" number "." nz-number ">" (number64 in RFC 9051); the response
 * names only the origin octet. */
static int
parse_partial(struct section_parse *sp, const char **error_r)
{
	const char *a = ++sp->p, *dot, *gt;
	struct mc_imap_section *sec = sp->sec;

	dot = memchr(a, '.', (size_t)(sp->end - a));
	gt = dot != NULL ? memchr(dot, '>', (size_t)(sp->end - dot)) : NULL;
	if (gt == NULL || gt + 1 != sp->end ||
	    !mc_imap_parse_u64(a, (size_t)(dot - a), &sec->offset) ||
	    !mc_imap_parse_u64(dot + 1, (size_t)(gt - dot - 1), &sec->length) ||
	    sec->length == 0) {
		*error_r = "bad partial <offset.length>";
		return -1;
	}
	sec->partial = true;
	mc_strbuf_addf(&sp->name, "<%llu>", (unsigned long long)sec->offset);
	sp->p = sp->end;
	return 0;
}

/* "[" section-spec "]" [partial]; p is past the '['. */
static int
parse_section(struct section_parse *sp, const char **error_r)
{
	struct mc_imap_section *sec = sp->sec;
	bool has_part;

	if (parse_part(sp, error_r) < 0)
		return -1;
	has_part = sec->part[0] != '\0';
	if (sp->p < sp->end && *sp->p != ']') {
		if (has_part && (*sp->p != '.' || sp->p + 1 == sp->end)) {
			*error_r = "bad section part number";
			return -1;
		}
		if (sec->binary) {
			*error_r = "BINARY takes a part number only";
			return -1;
		}
		if (has_part)
			sp->p++;
		if (parse_text(sp, has_part, error_r) < 0)
			return -1;
	}
	if (sp->p >= sp->end || *sp->p != ']') {
		*error_r = "bad section: ']' expected";
		return -1;
	}
	sp->p++;
	mc_strbuf_addc(&sp->name, ']');
	if (sp->p < sp->end && *sp->p == '<' && !sec->binary_size)
		return parse_partial(sp, error_r);
	if (sp->p != sp->end) {
		*error_r = "junk after the section";
		return -1;
	}
	return 0;
}

int
mc_imap_section_parse(const char *item, size_t len, struct mc_pool *pool,
                      struct mc_imap_section *sec_r, const char **error_r)
{
	struct section_parse sp = {
	        .p = item, .end = item + len, .pool = pool, .sec = sec_r};
	const char *prefix;
	int ret = -1;

	memset(sec_r, 0, sizeof(*sec_r));
	sec_r->part = "";
	sec_r->kind = MC_IMAP_SECTION_ALL;
	if (is_word(item, len, "RFC822")) {
		sec_r->name = "RFC822";
		return 1;
	}
	if (is_word(item, len, "RFC822.HEADER")) {
		sec_r->name = "RFC822.HEADER";
		sec_r->kind = MC_IMAP_SECTION_HEADER;
		sec_r->peek = true;
		return 1;
	}
	if (is_word(item, len, "RFC822.TEXT")) {
		sec_r->name = "RFC822.TEXT";
		sec_r->kind = MC_IMAP_SECTION_TEXT;
		return 1;
	}
	if (eat(&sp.p, sp.end, "BINARY.SIZE[")) {
		prefix = "BINARY.SIZE";
		sec_r->binary = sec_r->binary_size = sec_r->peek = true;
	} else if (eat(&sp.p, sp.end, "BINARY.PEEK[")) {
		prefix = "BINARY";
		sec_r->binary = sec_r->peek = true;
	} else if (eat(&sp.p, sp.end, "BINARY[")) {
		prefix = "BINARY";
		sec_r->binary = true;
	} else if (eat(&sp.p, sp.end, "BODY.PEEK[")) {
		prefix = "BODY";
		sec_r->peek = true;
	} else if (eat(&sp.p, sp.end, "BODY[")) {
		prefix = "BODY";
	} else if (is_word(item, len, "BODY.PEEK") ||
	           is_word(item, len, "BINARY") ||
	           is_word(item, len, "BINARY.PEEK") ||
	           is_word(item, len, "BINARY.SIZE")) {
		*error_r = "fetch item without a section";
		return -1;
	} else {
		return 0; /* FLAGS, BODY, BODYSTRUCTURE, RFC822.SIZE ... */
	}
	mc_strbuf_adds(&sp.name, prefix);
	mc_strbuf_addc(&sp.name, '[');
	if (parse_section(&sp, error_r) == 0) {
		sec_r->name = mc_pool_strndup(pool, sp.name.data, sp.name.len);
		ret = 1;
	}
	mc_strbuf_fini(&sp.name);
	if (ret < 0) {
		memset(sec_r, 0, sizeof(*sec_r));
		sec_r->part = "";
	}
	return ret;
}

/* ---- BODY[section]<partial>: content ----------------------------------- */

struct span {
	const char *p;
	size_t n;
};

/* [off, off + n) of the message, clamped to it: a tree from other bytes
 * must not make us read past the end. */
static struct span
cut(const char *msg, size_t len, size_t off, size_t n)
{
	struct span s;

	if (off > len)
		off = len;
	if (n > len - off)
		n = len - off;
	s.p = msg + off;
	s.n = n;
	return s;
}

static const char *
line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl != NULL ? nl + 1 : end;
}

static bool
field_wanted(const struct mc_imap_section *sec, const char *name, size_t n)
{
	for (size_t i = 0; i < sec->field_count; i++)
		if (strlen(sec->fields[i]) == n &&
		    strncasecmp(sec->fields[i], name, n) == 0)
			return true;
	return false;
}

/* The fields of header block h named (or, with not, not named) in sec,
 * each as it stands (folding kept), in the message's order, then the
 * empty line. Lines that are no field (no colon, stray continuations)
 * are left out. */
static void
header_fields(struct mc_strbuf *out, struct span h,
              const struct mc_imap_section *sec, bool not )
{
	const char *p = h.p, *end = h.p + h.n;

	while (p < end && *p != '\n' &&
	       !(*p == '\r' && p + 1 < end && p[1] == '\n')) {
		const char *first = line_end(p, end), *fe = first, *colon;
		size_t n;

		while (fe < end && (*fe == ' ' || *fe == '\t'))
			fe = line_end(fe, end);
		colon = memchr(p, ':', (size_t)(first - p));
		if (*p != ' ' && *p != '\t' && colon != NULL) {
			n = (size_t)(colon - p);
			while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
				n--;
			if (field_wanted(sec, p, n) != not ) {
				mc_strbuf_add(out, p, (size_t)(fe - p));
				if (fe[-1] != '\n')
					mc_strbuf_adds(out, "\r\n");
			}
		}
		p = fe;
	}
	mc_strbuf_adds(out, "\r\n");
}

static bool
is_rfc822(const struct mc_mime_part *p)
{
	return strcmp(p->type, "message") == 0 &&
	       strcmp(p->subtype, "rfc822") == 0;
}

/* The octets sec names before any decoding and before the partial
 * window, and the part they come from; false when there is no such
 * part. HEADER and TEXT of a message/rfc822 part are those of the message
 * it encloses; of any other part (RFC 3501 does not define them) the
 * part's own header and body. */
static bool
section_bytes(const struct mc_imap_section *sec, const char *msg, size_t len,
              const struct mc_mime_message *mime,
              const struct mc_mime_part **part_r, struct span *s_r)
{
	bool top = sec->part == NULL || sec->part[0] == '\0';
	const struct mc_mime_part *p =
	        top ? mime->root : mc_mime_find(mime, sec->part);

	*part_r = p;
	if (p == NULL)
		return false;
	switch (sec->kind) {
	case MC_IMAP_SECTION_ALL:
		*s_r = top ? cut(msg, len, 0, len)
		           : cut(msg, len, p->body_offset, p->body_size);
		return true;
	case MC_IMAP_SECTION_MIME:
		*s_r = cut(msg, len, p->header_offset, p->header_size);
		return true;
	default:
		break;
	}
	if (!top && is_rfc822(p) && p->children != NULL)
		p = p->children;
	if (sec->kind == MC_IMAP_SECTION_TEXT)
		*s_r = cut(msg, len, p->body_offset, p->body_size);
	else
		*s_r = cut(msg, len, p->header_offset, p->header_size);
	return true;
}

/* RFC 3516: identity for 7bit/8bit/binary, decoded base64 and
 * quoted-printable, -1 for anything else (UNKNOWN-CTE). */
static int
decode_cte(struct mc_strbuf *out, const char *enc, struct span s)
{
	if (enc == NULL || strcasecmp(enc, "7BIT") == 0 ||
	    strcasecmp(enc, "8BIT") == 0 || strcasecmp(enc, "BINARY") == 0)
		mc_strbuf_add(out, s.p, s.n);
	else if (strcasecmp(enc, "BASE64") == 0)
		mc_mime_decode_base64(out, s.p, s.n);
	else if (strcasecmp(enc, "QUOTED-PRINTABLE") == 0)
		mc_mime_decode_qp(out, s.p, s.n);
	else
		return -1;
	return 0;
}

/* The content as a string: "" when empty, else a literal; literal8 for
 * BINARY content holding NUL (RFC 3516 4.3). BODY content cannot carry
 * NUL in IMAP4rev1 literals: it goes out as 0x80, as headers are read. */
static void
add_content(struct mc_strbuf *b, struct span s, bool binary)
{
	size_t at;

	if (s.n == 0) {
		mc_strbuf_adds(b, "\"\"");
		return;
	}
	if (binary && memchr(s.p, '\0', s.n) != NULL)
		mc_strbuf_addc(b, '~');
	mc_strbuf_addf(b, "{%zu}\r\n", s.n);
	at = b->len;
	mc_strbuf_add(b, s.p, s.n);
	if (!binary)
		for (char *z = b->data + at;
		     (z = memchr(z, '\0', b->len - (size_t)(z - b->data))) !=
		     NULL;)
			*z++ = (char)0x80;
}

int
mc_imap_section_fetch(struct mc_strbuf *b, const struct mc_imap_section *sec,
                      const char *msg, size_t len,
                      const struct mc_mime_message *mime, const char **error_r)
{
	const struct mc_mime_part *p;
	struct mc_strbuf tmp = {0};
	struct span s = {"", 0};
	bool top = sec->part == NULL || sec->part[0] == '\0';
	int ret = -1;

	if (sec->name == NULL || mime == NULL || mime->root == NULL) {
		*error_r = "fetch: no section name or no MIME structure";
		return -1;
	}
	if (msg == NULL)
		msg = "", len = 0;
	if (!section_bytes(sec, msg, len, mime, &p, &s)) {
		s.p = "";
		s.n = 0;
	} else if (sec->kind == MC_IMAP_SECTION_HEADER_FIELDS ||
	           sec->kind == MC_IMAP_SECTION_HEADER_FIELDS_NOT) {
		header_fields(&tmp, s, sec,
		              sec->kind == MC_IMAP_SECTION_HEADER_FIELDS_NOT);
		s.p = tmp.data;
		s.n = tmp.len;
	} else if (sec->binary && !top && sec->kind == MC_IMAP_SECTION_ALL) {
		if (decode_cte(&tmp, p->encoding, s) < 0) {
			*error_r = "UNKNOWN-CTE";
			goto done;
		}
		s.p = tmp.data != NULL ? tmp.data : "";
		s.n = tmp.len;
	}
	if (sec->binary_size) {
		mc_strbuf_addf(b, "%s %zu", sec->name, s.n);
		ret = 0;
		goto done;
	}
	if (sec->partial) {
		if (sec->offset >= s.n) {
			s.n = 0;
		} else {
			s.p += sec->offset;
			s.n -= (size_t)sec->offset;
			if (sec->length < s.n)
				s.n = (size_t)sec->length;
		}
	}
	mc_strbuf_adds(b, sec->name);
	mc_strbuf_addc(b, ' ');
	add_content(b, s, sec->binary);
	ret = 0;
done:
	mc_strbuf_fini(&tmp);
	return ret;
}
